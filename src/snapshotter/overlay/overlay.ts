import { escapeOverlayPath } from '../mount.js';
import type { Mount } from '../snapshotter.js';
import { overlayFeatures } from './kernel.js';
import { OverlayLayoutSnapshotter, type UnionLayers } from './layout.js';

/** containerd's overlayfs snapshotter: the layout of layout.ts, unions mounted by the kernel's overlayfs. */
export class OverlaySnapshotter extends OverlayLayoutSnapshotter {
  readonly name = 'overlay';
  private readonly indexOff = overlayFeatures().indexOff;

  static async open(root: string): Promise<OverlaySnapshotter> {
    const s = new OverlaySnapshotter(root);
    await s.init();
    return s;
  }

  protected unionMount(layers: UnionLayers): Mount {
    return kernelOverlayMount(layers, { indexOff: this.indexOff, userxattr: this.userxattr });
  }
}

/** The kernel overlayfs mount of a union (lowers newest first), as containerd's overlay and erofs snapshotters give it. */
export function kernelOverlayMount({ lowers, upper }: UnionLayers, features: { indexOff: boolean; userxattr: boolean }): Mount {
  const options: string[] = [];
  if (features.indexOff) options.push('index=off');
  if (features.userxattr) options.push('userxattr');
  options.push(`lowerdir=${lowers.map(escapeOverlayPath).join(':')}`);
  if (upper) options.push(`upperdir=${upper.upper}`, `workdir=${upper.work}`);
  return { type: 'overlay', source: 'overlay', options };
}
