import type { NativeBinding } from '../sys/native.js';

type MountBinding = Pick<NativeBinding, 'mountOverlay' | 'bindMount' | 'unmount'>;

let cached: Promise<MountBinding | undefined> | undefined;

/**
 * The native addon's mount calls, or undefined while the addon is not built. src/sys/native.ts
 * owns loading it; this only looks for its loader so the snapshotter works before and after it lands.
 */
export function mountBinding(): Promise<MountBinding | undefined> {
  cached ??= load();
  return cached;
}

async function load(): Promise<MountBinding | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import('../sys/native.js')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  // native.ts may export the calls themselves…
  if (isMountBinding(mod)) return usable(mod);
  // …or a loader / an object holding them.
  for (const name of ['loadNative', 'loadNativeBinding', 'getNative', 'nativeBinding', 'native', 'binding']) {
    let candidate = mod[name];
    try {
      if (typeof candidate === 'function') candidate = await (candidate as () => unknown)();
    } catch {
      continue; // the loader throws while the addon is not compiled
    }
    if (isMountBinding(candidate)) return usable(candidate);
  }
  return undefined;
}

/**
 * The calls may exist while the compiled addon does not (a lazy loader throws ERR_NATIVE_ADDON):
 * probe once with an unmount of a path that is certainly not a mount point.
 */
function usable(b: MountBinding): MountBinding | undefined {
  try {
    b.unmount(`/proc/self/fdinfo/stratum-probe-${process.pid}`, false);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_NATIVE_ADDON') return undefined;
  }
  return b;
}

function isMountBinding(v: unknown): v is MountBinding {
  const b = v as Partial<MountBinding> | null | undefined;
  return (typeof b === 'object' || typeof b === 'function') && b !== null && typeof b.mountOverlay === 'function' && typeof b.bindMount === 'function' && typeof b.unmount === 'function';
}
