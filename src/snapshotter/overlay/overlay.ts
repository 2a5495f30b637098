import { StorageOptionError } from '../../errors.js';
import { overlayTestMount } from '../driver.js';
import { escapeOverlayPath } from '../mount.js';
import type { Mount } from '../snapshotter.js';
import { optionsFor, parseBoolOption, parseChoiceOption, unknownOption } from '../storage-opts.js';
import { overlayFeatures } from './kernel.js';
import { OverlayLayoutSnapshotter, type UnionLayers } from './layout.js';

export interface OverlayOptions {
  /** `metacopy=on`: a change of metadata only (chmod, chown) copies up the inode, not the data. */
  metacopy?: boolean;
  /** `redirect_dir=`: renaming a lower directory records a redirect instead of failing with EXDEV. */
  redirectDir?: 'on' | 'off' | 'follow' | 'nofollow';
  /** `index=`: the inode index (default off where the kernel knows the option, as containerd). */
  index?: boolean;
}

const OVERLAY_KEYS = ['metacopy', 'redirect_dir', 'index', 'override_kernel_check'] as const;

/**
 * The overlay options among a store's storage-opts: `overlay.metacopy`, `overlay.redirect_dir`,
 * `overlay.index` (mount options), Docker's `overlay2.` prefix too. Docker's `overlay2.size` needs
 * xfs project quotas and is refused; `overlay2.override_kernel_check` is accepted and does nothing,
 * as in Docker 20.10.
 */
export function parseOverlayOptions(storageOpts: readonly string[] = []): OverlayOptions {
  const out: OverlayOptions = {};
  for (const opt of optionsFor('overlay', storageOpts)) {
    if (opt.key === 'metacopy') out.metacopy = parseBoolOption(opt);
    else if (opt.key === 'redirect_dir') out.redirectDir = parseChoiceOption(opt, ['on', 'off', 'follow', 'nofollow'] as const);
    else if (opt.key === 'index') out.index = parseBoolOption(opt);
    else if (opt.key === 'override_kernel_check') parseBoolOption(opt);
    else if (opt.key === 'size') throw new StorageOptionError(opt.raw, 'not supported: a size limit on overlay needs xfs project quotas; use btrfs.size on btrfs or blockfile.size');
    else throw unknownOption(opt, OVERLAY_KEYS);
  }
  return out;
}

/** The mount options `options` adds to every union (index=off by default where the kernel knows it). */
export function overlayMountOptions(options: OverlayOptions): string[] {
  const out: string[] = [];
  if (options.index !== undefined) out.push(`index=${options.index ? 'on' : 'off'}`);
  else if (overlayFeatures().indexOff) out.push('index=off');
  if (options.redirectDir !== undefined) out.push(`redirect_dir=${options.redirectDir}`);
  if (options.metacopy !== undefined) out.push(`metacopy=${options.metacopy ? 'on' : 'off'}`);
  return out;
}

/** containerd's overlayfs snapshotter: the layout of layout.ts, unions mounted by the kernel's overlayfs. */
export class OverlaySnapshotter extends OverlayLayoutSnapshotter {
  readonly name = 'overlay';
  private readonly mountOptions: string[];

  private constructor(
    root: string,
    readonly options: Readonly<OverlayOptions>,
  ) {
    super(root);
    this.mountOptions = overlayMountOptions(options);
  }

  /** With options, a test union is mounted first: a kernel that refuses them is told at open, not at the first mount. */
  static async open(root: string, options: OverlayOptions = {}): Promise<OverlaySnapshotter> {
    const s = new OverlaySnapshotter(root, options);
    await s.init();
    if (Object.keys(options).length > 0) {
      const failed = await overlayTestMount(root, { options: s.mountOptions });
      if (failed) throw new StorageOptionError(s.mountOptions.join(','), `the kernel's overlay refused these mount options: ${failed.message}`);
    }
    return s;
  }

  protected unionMount(layers: UnionLayers): Mount {
    return kernelOverlayMount(layers, { options: this.mountOptions, userxattr: this.userxattr });
  }
}

/** The kernel overlayfs mount of a union (lowers newest first), as containerd's overlay and erofs snapshotters give it. */
export function kernelOverlayMount({ lowers, upper }: UnionLayers, features: { indexOff?: boolean; userxattr: boolean; options?: readonly string[] }): Mount {
  // `options` (overlay's storage options, index=off included) replace the indexOff default.
  const options: string[] = features.options ? [...features.options] : features.indexOff ? ['index=off'] : [];
  if (features.userxattr) options.push('userxattr');
  options.push(`lowerdir=${lowers.map(escapeOverlayPath).join(':')}`);
  if (upper) options.push(`upperdir=${upper.upper}`, `workdir=${upper.work}`);
  return { type: 'overlay', source: 'overlay', options };
}
