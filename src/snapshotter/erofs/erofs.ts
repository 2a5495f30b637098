import { open, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FailedPreconditionError } from '../../errors.js';
import { runTool } from '../command.js';
import { writeDirImage } from '../../erofs/from-dir.js';
import { SUPER_OFFSET } from '../../erofs/format.js';
import { loadNative } from '../../sys/native.js';
import { diskUsage, exists, ownedName, removeTree, SNAPSHOTS_DIR, STAGING_DIR } from '../fsutil.js';
import { isMountPoint, parseOverlayOptions, unmountAll } from '../mount.js';
import { overlayFeatures } from '../overlay/kernel.js';
import { OverlayLayoutSnapshotter, type UnionLayers } from '../overlay/layout.js';
import { kernelOverlayMount } from '../overlay/overlay.js';
import type { Mount, SnapshotProblem, Usage } from '../snapshotter.js';

/** A committed snapshot's layer: one EROFS image beside its (then empty) `fs` directory. */
export const LAYER_IMAGE = 'layer.erofs';
/** Marks a view's data: sealing a view (the base does it once its data is in place) makes no image. */
const VIEW_MARKER = 'view';

/**
 * containerd 2.1's erofs snapshotter: the overlay layout (layout.ts) where a committed snapshot is
 * one EROFS image, `snapshots/<id>/layer.erofs`. Unpack writes a layer's tar straight into that
 * image (applyMode 'erofs', src/erofs); committing an active snapshot whose `fs` holds files
 * converts `fs` into the image and empties it. A committed image is mounted read-only, file-backed
 * (no loop device), on its own `fs` directory the first time a snapshot needs it, and that one
 * mount is shared by every union stacked on it (as containerd mounts each layer once): one
 * superblock and page cache per layer however many containers use it, and no mount per prepare.
 * Unions are the kernel's overlay with the images' directories as lowers; a view of one parent is
 * a read-only bind of its mounted image.
 */
export class ErofsSnapshotter extends OverlayLayoutSnapshotter {
  readonly name = 'erofs';
  override readonly applyMode = 'erofs' as const;
  private readonly indexOff = overlayFeatures().indexOff;
  /** Mounts in progress per directory, so two calls never mount one image twice. */
  private readonly mounting = new Map<string, Promise<void>>();

  static async open(root: string): Promise<ErofsSnapshotter> {
    const why = await erofsUnavailable();
    if (why !== undefined) throw new FailedPreconditionError(`erofs snapshotter: ${why}`);
    const s = new ErofsSnapshotter(root);
    await s.init();
    return s;
  }

  protected unionMount(layers: UnionLayers): Mount {
    return kernelOverlayMount(layers, { indexOff: this.indexOff, userxattr: this.userxattr });
  }

  async layerImage(key: string): Promise<string> {
    return join(dirname(await this.applyDir(key)), LAYER_IMAGE);
  }

  protected override async createData(dir: string, kind: 'active' | 'view', parents: number[]): Promise<void> {
    await super.createData(dir, kind, parents);
    if (kind === 'view') await writeFile(join(dir, VIEW_MARKER), '');
  }

  protected override driverDataOf(id: number, parents: number[]): Record<string, string> {
    return { ...super.driverDataOf(id, parents), LayerImage: join(this.dataDir(id), LAYER_IMAGE) };
  }

  /** A committed layer: its image's blocks, and the inode count its superblock records. */
  protected override async dataUsage(id: number): Promise<Usage> {
    const image = join(this.dataDir(id), LAYER_IMAGE);
    const st = await stat(image).catch(() => undefined);
    if (st === undefined) return diskUsage(this.fsDir(id));
    return { size: st.blocks * 512, inodes: await imageInodes(image) };
  }

  /**
   * Commit: an active snapshot that got its layer from unpack already has its image; one whose
   * files were written into `fs` (mounted, written, committed) has them converted now, the image
   * renamed into place only when whole, and `fs` and `work` emptied (the image is the layer now).
   */
  protected override async sealData(id: number): Promise<void> {
    const image = join(this.dataDir(id), LAYER_IMAGE);
    if ((await exists(image)) || (await exists(join(this.dataDir(id), VIEW_MARKER)))) return;
    const tmp = join(this.root, STAGING_DIR, ownedName('layer'));
    try {
      await writeDirImage(this.fsDir(id), tmp, `snapshot ${id}`);
      await rename(tmp, image);
    } finally {
      await removeTree(tmp);
    }
    for (const dir of [this.fsDir(id), join(this.dataDir(id), 'work')]) {
      for (const name of await readdir(dir)) await removeTree(join(dir, name));
    }
  }

  /**
   * Also takes down every layer mount: always safe, since an overlay keeps private clones of its
   * lower mounts and a view's bind is a mount of its own, so what is mounted now keeps working,
   * and the next snapshot that stacks a layer mounts it again. A store can then be deleted.
   */
  override async cleanup(): Promise<void> {
    await super.cleanup();
    for (const name of await readdir(join(this.root, SNAPSHOTS_DIR))) {
      const fs = join(this.root, SNAPSHOTS_DIR, name, 'fs');
      if (await exists(join(this.root, SNAPSHOTS_DIR, name, LAYER_IMAGE))) await unmountAll(fs);
    }
  }

  /** Besides the shared checks: every committed snapshot has its layer image. */
  override async verify(): Promise<SnapshotProblem[]> {
    const problems = await super.verify();
    const state = await this.meta.read();
    for (const [key, rec] of Object.entries(state.snapshots)) {
      if (rec.kind !== 'committed' || !(await exists(this.dataDir(rec.id)))) continue;
      if (!(await exists(join(this.dataDir(rec.id), LAYER_IMAGE)))) problems.push({ kind: 'snapshot-data', subject: key, message: `its layer image ${join(SNAPSHOTS_DIR, String(rec.id), LAYER_IMAGE)} is missing` });
    }
    return problems;
  }

  protected override async removeData(id: number): Promise<void> {
    await unmountAll(this.fsDir(id), true).catch(() => {});
    await super.removeData(id);
  }

  protected override async discardOrphan(name: string): Promise<void> {
    await unmountAll(join(this.root, SNAPSHOTS_DIR, name, 'fs'), true).catch(() => {});
    await super.discardOrphan(name);
  }

  /** Never deletes through a mounted image: its directory is detached first, or nothing is deleted. */
  protected override async deleteData(path: string): Promise<void> {
    const fs = join(path, 'fs');
    await unmountAll(fs, true).catch(() => {});
    if (await isMountPoint(fs)) throw new FailedPreconditionError(`cannot delete ${path}: ${fs} is still mounted`);
    await removeTree(path);
  }

  /** The mounts, after every committed image they stack (or bind) is mounted on its directory. */
  protected override async readyMounts(mounts: Mount[]): Promise<Mount[]> {
    for (const m of mounts) {
      const dirs = m.type === 'overlay' ? parseOverlayOptions(m.options).lowers : [m.source];
      for (const dir of dirs) await this.ensureMounted(dir);
    }
    return mounts;
  }

  private ensureMounted(dir: string): Promise<void> {
    const pending = this.mounting.get(dir);
    if (pending) return pending;
    const p = (async () => {
      const image = join(dirname(dir), LAYER_IMAGE);
      if (!(await exists(image)) || (await isMountPoint(dir))) return;
      try {
        loadNative().mountErofs(image, dir);
      } catch (err) {
        // A kernel without file-backed EROFS (before 6.12): through a loop device, as util-linux sets one up.
        await runTool('mount', ['-t', 'erofs', '-o', 'ro', image, dir], `mounting ${image} on ${dir}`, 'mount').catch(() => {
          throw err;
        });
      }
    })().finally(() => this.mounting.delete(dir));
    this.mounting.set(dir, p);
    return p;
  }
}

/** `inos` of an image's superblock. */
async function imageInodes(image: string): Promise<number> {
  const fh = await open(image, 'r');
  try {
    const buf = Buffer.alloc(8);
    await fh.read(buf, 0, 8, SUPER_OFFSET + 16);
    return Number(buf.readBigUInt64LE(0));
  } finally {
    await fh.close();
  }
}

/** Why EROFS layers cannot be mounted here (not root, no erofs or overlay in the kernel), or undefined when they can. */
export async function erofsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'mounting EROFS images needs root';
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\terofs$/m.test(filesystems)) return 'the kernel has no erofs filesystem (no erofs in /proc/filesystems)';
  if (!/\toverlay$/m.test(filesystems)) return 'the kernel has no overlay filesystem (no overlay in /proc/filesystems)';
  return undefined;
}

/**
 * How images are mounted here: file-backed where the kernel has it (EROFS in 6.12+ reads the image
 * file itself), else through loop devices. Read from the kernel version, not from a test mount.
 */
export async function erofsMountMode(): Promise<'file-backed' | 'loop'> {
  const release = (await readFile('/proc/sys/kernel/osrelease', 'utf8').catch(() => '0.0')).trim();
  const [major = 0, minor = 0] = release.split('.').map((n) => parseInt(n, 10));
  return major > 6 || (major === 6 && minor >= 12) ? 'file-backed' : 'loop';
}

/** `info`'s lines for the erofs driver: the layer format, how layers are mounted, how many there are and how many are mounted now. */
export async function erofsStatus(root: string): Promise<Array<[string, string]>> {
  let layers = 0;
  let bytes = 0;
  let mounted = 0;
  for (const name of await readdir(join(root, SNAPSHOTS_DIR)).catch(() => [] as string[])) {
    const st = await stat(join(root, SNAPSHOTS_DIR, name, LAYER_IMAGE)).catch(() => undefined);
    if (!st) continue;
    layers++;
    bytes += st.blocks * 512;
    if (await isMountPoint(join(root, SNAPSHOTS_DIR, name, 'fs'))) mounted++;
  }
  return [
    ['Layer Format', 'EROFS, uncompressed, 4096-byte blocks, written by stratum from the layer tar'],
    ['Mount Mode', `${await erofsMountMode()}, read-only, one mount per layer shared by every snapshot on it; overlay on top`],
    ['Layers', String(layers)],
    ['Layers Mounted', String(mounted)],
    ['Layer Space Used', String(bytes)],
  ];
}
