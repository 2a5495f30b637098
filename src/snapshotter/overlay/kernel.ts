import { existsSync, readFileSync } from 'node:fs';

/** What the running kernel's overlayfs needs and supports, read once. */
export interface OverlayFeatures {
  /** The `index` module parameter exists, so `index=off` is understood (containerd adds it then). */
  indexOff: boolean;
  /** Not root of the initial user namespace: trusted.* xattrs are off limits, use `userxattr`. */
  userxattr: boolean;
}

let features: OverlayFeatures | undefined;

export function overlayFeatures(): OverlayFeatures {
  features ??= {
    indexOff: existsSync('/sys/module/overlay/parameters/index'),
    userxattr: process.getuid?.() !== 0 || inUserNamespace(),
  };
  return features;
}

/** True unless this process's uid map is the initial namespace's identity map. */
export function inUserNamespace(): boolean {
  try {
    const fields = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return !(fields.length === 3 && fields[0] === '0' && fields[1] === '0' && fields[2] === '4294967295');
  } catch {
    return false;
  }
}

/** overlay is listed in /proc/filesystems (built in or loaded). */
export function kernelHasOverlay(): boolean {
  try {
    return /\toverlay\n/.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}
