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
  for (const name of ['loadNative', 'getNative', 'nativeBinding', 'native', 'binding']) {
    let candidate = mod[name];
    try {
      if (typeof candidate === 'function') candidate = await (candidate as () => unknown)();
    } catch {
      continue; // the loader throws while the addon is not compiled
    }
    if (isMountBinding(candidate)) return candidate;
  }
  return undefined;
}

function isMountBinding(v: unknown): v is MountBinding {
  const b = v as Partial<MountBinding> | null | undefined;
  return typeof b === 'object' && b !== null && typeof b.mountOverlay === 'function' && typeof b.bindMount === 'function' && typeof b.unmount === 'function';
}
