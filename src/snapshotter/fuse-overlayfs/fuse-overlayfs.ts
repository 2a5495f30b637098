import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { FUSE_OVERLAYFS_MOUNT_TYPE, fuseOverlayfsOption } from '../mount.js';
import { OverlayLayoutSnapshotter, type UnionLayers } from '../overlay/layout.js';
import type { Mount } from '../snapshotter.js';

/**
 * containerd's fuse-overlayfs snapshotter: the overlay backend's layout and whiteouts (layout.ts),
 * unions mounted by the `fuse-overlayfs` daemon instead of the kernel, so it works without
 * CAP_SYS_ADMIN in the initial namespace (inside a user namespace) and over filesystems the
 * kernel's overlay refuses as an upper. fuse-overlayfs reads char 0/0 whiteouts and
 * trusted./user.overlay.opaque (and its own `.wh.` files) in the lowers.
 */
export class FuseOverlayfsSnapshotter extends OverlayLayoutSnapshotter {
  readonly name = 'fuse-overlayfs';

  static async open(root: string): Promise<FuseOverlayfsSnapshotter> {
    const s = new FuseOverlayfsSnapshotter(root);
    await s.init();
    return s;
  }

  protected unionMount({ lowers, upper }: UnionLayers): Mount {
    const options = [fuseOverlayfsOption('lowerdir', lowers)];
    if (upper) options.push(fuseOverlayfsOption('upperdir', [upper.upper]), fuseOverlayfsOption('workdir', [upper.work]));
    return { type: FUSE_OVERLAYFS_MOUNT_TYPE, source: 'overlay', options };
  }
}

/**
 * Why fuse-overlayfs cannot mount here (no `fuse` in /proc/filesystems, /dev/fuse missing or not
 * openable read-write, no fuse-overlayfs binary), or undefined when all three are there.
 */
export async function fuseOverlayfsMissing(): Promise<string | undefined> {
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\tfuse$/m.test(filesystems)) return 'the kernel has no fuse filesystem (no fuse in /proc/filesystems)';
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? '/dev/fuse is missing' : `/dev/fuse cannot be opened read-write by this user (${code})`;
  }
  try {
    await promisify(execFile)('fuse-overlayfs', ['--version']);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'the fuse-overlayfs binary is not installed (Debian: apt-get install fuse-overlayfs)' : `fuse-overlayfs --version failed: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}
