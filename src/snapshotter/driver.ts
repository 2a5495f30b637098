import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { InvalidArgumentError, UnsupportedDriverError } from '../errors.js';
import { FUSE_OVERLAYFS_MOUNT_TYPE, fuseOverlayfsOption, MAX_OVERLAY_LOWERS, mountAll, unmountAll } from './mount.js';
import { kernelHasOverlay, overlayFeatures } from './overlay/kernel.js';
import { SNAPSHOTTER_NAMES, type SnapshotterName } from './names.js';
// Each backend's module is loaded only when that driver is checked or described: a pull loads its own.
const blockfile = () => import('./blockfile/blockfile.js');
const btrfs = () => import('./btrfs/btrfs.js');
const erofs = () => import('./erofs/erofs.js');
const fuseOverlayfs = () => import('./fuse-overlayfs/fuse-overlayfs.js');
const native = () => import('./native/native.js');
const overlay = () => import('./overlay/overlay.js');
const zfs = () => import('./zfs/zfs.js');

const run = promisify(execFile);

/**
 * statfs f_type → the name Docker prints as "Backing Filesystem" (graphdriver.FsNames; linux/magic.h).
 * zfs-fuse shows as fuse: backingFilesystem() asks zfs whether a dataset is mounted there.
 */
export const FS_NAMES: Readonly<Record<number, string>> = {
  0x61756673: 'aufs',
  0x9123683e: 'btrfs',
  0x28cd3d45: 'cramfs',
  0xf15f: 'ecryptfs',
  0xef53: 'extfs',
  0x65735546: 'fuse',
  0x3153464a: 'jfs',
  0x4d44: 'msdos',
  0x6969: 'nfs',
  0x794c7630: 'overlayfs',
  0x9fa0: 'proc',
  0x858458f6: 'ramfs',
  0x52654973: 'reiserfs',
  0xff534d42: 'cifs',
  0x73717368: 'squashfs',
  0x62656572: 'sysfs',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x2fc12fc1: 'zfs',
  0x5346544e: 'ntfs',
  0xf2f52010: 'f2fs',
};

/** Filesystems overlay cannot use for its upper and work directories (Docker's overlay2 refuses the same). */
const OVERLAY_REFUSED = new Set(['aufs', 'ecryptfs', 'nfs', 'overlayfs', 'zfs']);

/** Backing filesystems where FICLONE shares a file's blocks (blockfile's copies cost no data there). */
const REFLINK_FILESYSTEMS = new Set(['btrfs', 'xfs']);

/** Docker's names for stratum's backends (overlay2, vfs), and their hints. */
const ALIASES: Readonly<Record<string, SnapshotterName>> = { overlay2: 'overlay', vfs: 'native' };
const UNSUPPORTED: Readonly<Record<string, string>> = {
  devicemapper: 'devicemapper is not supported by stratum; blockfile is its loop-lvm heir, a loop-mounted file per snapshot',
  aufs: 'aufs is not supported by stratum (the kernel has overlay instead)',
  windowsfilter: 'windowsfilter is a Windows driver',
};

/** The nearest existing directory at or above `dir` (a store not made yet is judged by its parent). */
function existingAncestor(dir: string): string {
  let d = resolve(dir);
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/** The ZFS dataset whose mountpoint holds `dir` (kernel zfs or zfs-fuse), when there is one. */
export async function zfsDatasetAt(dir: string): Promise<{ dataset: string; mountpoint: string } | undefined> {
  const path = resolve(dir);
  let stdout: string;
  try {
    ({ stdout } = await run('zfs', ['list', '-H', '-o', 'name,mountpoint,mounted', '-t', 'filesystem'], { maxBuffer: 16 << 20 }));
  } catch {
    return undefined;
  }
  let best: { dataset: string; mountpoint: string } | undefined;
  for (const line of stdout.split('\n')) {
    const [dataset, mountpoint, mounted] = line.split('\t');
    if (!dataset || !mountpoint?.startsWith('/') || mounted !== 'yes') continue;
    const inside = path === mountpoint || path.startsWith(mountpoint.endsWith('/') ? mountpoint : `${mountpoint}/`);
    if (inside && (!best || mountpoint.length > best.mountpoint.length)) best = { dataset, mountpoint };
  }
  return best;
}

/** The filesystem `dir` is on, by Docker's name ("extfs", "xfs", "btrfs", "zfs", "overlayfs", …). */
export async function backingFilesystem(dir: string): Promise<string> {
  const fs = await statfs(existingAncestor(dir));
  const name = FS_NAMES[fs.type] ?? `<unknown 0x${fs.type.toString(16)}>`;
  if (name === 'fuse' && (await zfsDatasetAt(dir))) return 'zfs';
  return name;
}

/**
 * The entry types of `dir` as getdents gave them (libuv's uv_dirent_type_t; 0 is DT_UNKNOWN).
 * fs.readdir hides DT_UNKNOWN behind an lstat, so Node's fs binding is the only way to them from
 * JavaScript; `process.binding('fs')` is a documentation-only deprecation (DEP0111).
 */
function rawDirentTypes(dir: string): number[] {
  const binding = (process as unknown as { binding(name: string): { readdir(path: string, encoding: string, withTypes: boolean): unknown } }).binding('fs');
  const result = binding.readdir(dir, 'utf8', true);
  if (!Array.isArray(result) || !Array.isArray(result[1])) throw new Error('node fs binding: readdir with types returned an unexpected shape');
  return result[1] as number[];
}

/** Whether readdir on this filesystem says what each entry is (d_type), which overlay needs (Docker's SupportsDType). */
export async function supportsDType(dir: string): Promise<boolean> {
  const base = existingAncestor(dir);
  const probe = await mkdtemp(join(base, '.d_type-probe-'));
  try {
    await writeFile(join(probe, 'f'), '');
    await mkdir(join(probe, 'd'));
    return rawDirentTypes(probe).every((type) => type !== 0);
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
}

/** overlay2 → overlay, vfs → native; a stratum backend as is; anything else refused with the choices. */
export function normalizeDriverName(name: string): SnapshotterName {
  const lower = name.trim().toLowerCase();
  if ((SNAPSHOTTER_NAMES as readonly string[]).includes(lower)) return lower as SnapshotterName;
  const alias = ALIASES[lower];
  if (alias) return alias;
  const why = UNSUPPORTED[lower];
  throw new InvalidArgumentError(
    `unknown storage driver ${JSON.stringify(name)}${why ? ` (${why})` : ''}: use ${SNAPSHOTTER_NAMES.join(', ')} (Docker's names overlay2 and vfs are accepted for overlay and native)`,
  );
}

/** This process may mount (CAP_SYS_ADMIN in its effective set). */
export async function hasSysAdmin(): Promise<boolean> {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(await readFile('/proc/self/status', 'utf8'))?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}

/**
 * Mounts a real union of two lower directories in `dir` (the kernel's overlay, or fuse-overlayfs
 * with `fuse`), reads the lower file through it and takes it down again; the error when that fails.
 */
export async function overlayTestMount(dir: string, options: { fuse?: boolean; options?: readonly string[] } = {}): Promise<Error | undefined> {
  await mkdir(dir, { recursive: true });
  const probe = await mkdtemp(join(dir, '.overlay-probe-'));
  const [lower1, lower2, upper, work, merged] = ['l1', 'l2', 'u', 'w', 'm'].map((d) => join(probe, d)) as [string, string, string, string, string];
  try {
    for (const d of [lower1, lower2, upper, work, merged]) await mkdir(d);
    await writeFile(join(lower2, 'f'), 'lower\n');
    if (options.fuse) {
      const layers = [fuseOverlayfsOption('lowerdir', [lower1, lower2]), fuseOverlayfsOption('upperdir', [upper]), fuseOverlayfsOption('workdir', [work])];
      await mountAll([{ type: FUSE_OVERLAYFS_MOUNT_TYPE, source: 'overlay', options: layers }], merged);
    } else {
      const layers = [...(options.options ?? []), `lowerdir=${lower1}:${lower2}`, `upperdir=${upper}`, `workdir=${work}`];
      if (overlayFeatures().userxattr) layers.push('userxattr');
      // Unmounting an overlay syncs its upper filesystem: with a busy disk that cost 210 ms here,
      // every first pull. `volatile` (Linux 5.10) skips it; the probe is thrown away anyway.
      try {
        await mountAll([{ type: 'overlay', source: 'overlay', options: [...layers, 'volatile'] }], merged);
      } catch {
        await mountAll([{ type: 'overlay', source: 'overlay', options: layers }], merged);
      }
    }
    try {
      if ((await readFile(join(merged, 'f'), 'utf8')) !== 'lower\n') return new Error('the test overlay did not show its lower layer');
    } finally {
      await unmountAll(merged);
    }
    return undefined;
  } catch (err) {
    return err as Error;
  } finally {
    await unmountAll(merged, true).catch(() => {});
    await rm(probe, { recursive: true, force: true }).catch(() => {});
  }
}

/** overlay's and fuse-overlayfs's d_type requirement (whiteouts are found by readdir's types), with Docker's hint. */
async function checkDType(driver: SnapshotterName, backing: string, root: string): Promise<void> {
  if (await supportsDType(root)) return;
  const hint = backing === 'xfs' ? 'Reformat the filesystem with ftype=1 to enable d_type support.' : backing === 'extfs' ? 'Enable d_type with tune2fs -O filetype.' : 'Backing filesystems without d_type support are not supported.';
  throw new UnsupportedDriverError(`${driver}: the backing ${backing} filesystem is formatted without d_type support, which leads to incorrect behavior. ${hint}`);
}

/**
 * Checks that driver `name` can keep snapshots at `root`, as Docker's graphdriver init does, and
 * throws UnsupportedDriverError with Docker's message and a hint when it cannot. Returns what the
 * check found, for the reason shown by `stratum info`.
 */
export async function checkStorageDriver(name: SnapshotterName, root: string): Promise<string> {
  const backing = await backingFilesystem(root);
  switch (name) {
    case 'native':
      return `native works on any filesystem (backing ${backing})`;
    case 'btrfs':
      if (backing !== 'btrfs') throw new UnsupportedDriverError(`'btrfs' needs its snapshot root on a btrfs filesystem; ${root} is on ${backing} (prerequisites for driver not satisfied)`);
      return 'the snapshot root is on btrfs';
    case 'zfs': {
      const dataset = await zfsDatasetAt(root);
      if (!dataset) throw new UnsupportedDriverError(`'zfs' needs its snapshot root on a ZFS dataset; ${root} is on ${backing} (prerequisites for driver not satisfied)`);
      return `the snapshot root is on ZFS dataset ${dataset.dataset}`;
    }
    case 'blockfile': {
      const why = await (await blockfile()).blockfileUnavailable();
      if (why !== undefined) throw new UnsupportedDriverError(`'blockfile' is not supported: ${why}, use native`);
      return REFLINK_FILESYSTEMS.has(backing)
        ? `loop devices work; the backing ${backing} reflinks snapshot files (block-level copy-on-write)`
        : `loop devices work; the backing ${backing} has no reflinks, so each snapshot file is a sparse copy of its parent's`;
    }
    case 'overlay': {
      if (!kernelHasOverlay()) throw new UnsupportedDriverError(`'overlay' is not supported: the kernel has no overlay filesystem (modprobe overlay), use native`);
      if (!(await hasSysAdmin())) throw new UnsupportedDriverError(`'overlay' is not supported: this process may not mount (no CAP_SYS_ADMIN), use native`);
      if (OVERLAY_REFUSED.has(backing)) throw new UnsupportedDriverError(`'overlay' is not supported over ${backing}: put the store on another filesystem, or use native (vfs)`);
      await checkDType(name, backing, root);
      const failed = await overlayTestMount(root);
      if (failed) throw new UnsupportedDriverError(`'overlay' is not supported over ${backing}: a test mount of two lower layers in ${root} failed: ${failed.message}`);
      return `the backing ${backing} supports d_type and a test overlay of two lower layers mounted`;
    }
    case 'erofs': {
      const why = await (await erofs()).erofsUnavailable();
      if (why !== undefined) throw new UnsupportedDriverError(`'erofs' is not supported: ${why}, use overlay or native`);
      if (OVERLAY_REFUSED.has(backing)) throw new UnsupportedDriverError(`'erofs' is not supported over ${backing}: its writable layers are overlay upper directories; put the store on another filesystem`);
      await checkDType(name, backing, root);
      return `the kernel mounts EROFS images (${await (await erofs()).erofsMountMode()}) and overlay stacks them over the backing ${backing}`;
    }
    case 'fuse-overlayfs': {
      const missing = await (await fuseOverlayfs()).fuseOverlayfsMissing();
      if (missing) throw new UnsupportedDriverError(`'fuse-overlayfs' is not supported: ${missing}`);
      await checkDType(name, backing, root);
      const failed = await overlayTestMount(root, { fuse: true });
      if (failed) throw new UnsupportedDriverError(`'fuse-overlayfs' is not supported over ${backing}: a test mount of two lower layers in ${root} failed: ${failed.message}`);
      return `the backing ${backing} supports d_type and a test fuse-overlayfs of two lower layers mounted`;
    }
    default:
      throw new InvalidArgumentError(`unknown storage driver ${JSON.stringify(name)}`);
  }
}

/**
 * The storage driver for snapshots at `root`, chosen as Docker's daemon chooses its graph driver:
 * a requested one is checked (and refused with Docker's message when it cannot work there);
 * otherwise btrfs on btrfs, zfs on a ZFS dataset, else overlay when the kernel, the privileges,
 * the backing filesystem and d_type allow it and a real test mount of two lowers works, else
 * fuse-overlayfs when FUSE and its binary are there and its test mount works, else native.
 */
export async function chooseStorageDriver(options: { root: string; requested?: string }): Promise<{ name: SnapshotterName; reason: string }> {
  if (options.requested !== undefined) {
    const name = normalizeDriverName(options.requested);
    return { name, reason: await checkStorageDriver(name, options.root) };
  }
  const backing = await backingFilesystem(options.root);
  if (backing === 'btrfs') return { name: 'btrfs', reason: 'the store is on btrfs' };
  if (backing === 'zfs') {
    const dataset = await zfsDatasetAt(options.root);
    if (dataset) return { name: 'zfs', reason: `the store is on ZFS dataset ${dataset.dataset}` };
  }
  // Docker's priority list: overlay2, then fuse-overlayfs (rootless, or where the kernel's overlay is refused), then vfs.
  const refused: string[] = [];
  for (const name of ['overlay', 'fuse-overlayfs'] as const) {
    try {
      const reason = await checkStorageDriver(name, options.root);
      return { name, reason: refused.length > 0 ? `${reason}, because ${refused.join('; ')}` : reason };
    } catch (err) {
      if (!(err instanceof UnsupportedDriverError)) throw err;
      refused.push(err.message);
    }
  }
  return { name: 'native', reason: `native, because ${refused.join('; ')}` };
}

/**
 * Makes `root` a ZFS dataset's mountpoint for the zfs snapshotter when it is only inside one
 * (Docker's zfs driver likewise makes its datasets under the one that holds its root).
 * `storageOpts`: the store's; zfs.fsname names the dataset to make it under.
 */
export async function ensureZfsRoot(root: string, storageOpts: readonly string[]): Promise<void> {
  const { fsname } = (await zfs()).parseZfsOptions(storageOpts);
  const path = resolve(root);
  const found = await zfsDatasetAt(path);
  if (found?.mountpoint === path) return;
  // zfs.fsname: made under that dataset, wherever the root is.
  const parent = fsname ?? found?.dataset;
  if (parent === undefined) return;
  const child = `${parent}/stratum-${Buffer.from(path).toString('hex').slice(-12)}`;
  await mkdir(path, { recursive: true });
  await run('zfs', ['create', '-o', `mountpoint=${path}`, child]);
}

function sysParameter(name: string): string | undefined {
  try {
    return readFileSync(`/sys/module/overlay/parameters/${name}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** `docker info`'s lines under "Storage Driver" for driver `name` with its snapshots at `root` and the store's storage-opts. */
export async function driverStatus(name: SnapshotterName, root: string, storageOpts: readonly string[] = []): Promise<Array<[string, string]>> {
  const backing = await backingFilesystem(root);
  const lines: Array<[string, string]> = [['Backing Filesystem', backing]];
  if (name === 'overlay' || name === 'fuse-overlayfs' || name === 'native' || name === 'erofs') lines.push(['Supports d_type', String(await supportsDType(root))]);
  if (name === 'fuse-overlayfs') {
    // podman's info names the same: its mount_program's version.
    const version = await run('fuse-overlayfs', ['--version']).then(({ stdout }) => /fuse-overlayfs: version (\S+)/.exec(stdout)?.[1] ?? 'unknown', (err: Error) => `unavailable: ${err.message.split('\n')[0]}`);
    lines.push(['Mount Program', `fuse-overlayfs ${version}`], ['userxattr', String(overlayFeatures().userxattr)]);
  }
  if (name === 'overlay') {
    const options = (await overlay()).parseOverlayOptions(storageOpts);
    const metacopy = options.metacopy ?? sysParameter('metacopy') === 'Y';
    const redirectDir = options.redirectDir ?? (sysParameter('redirect_dir') === 'Y' ? 'on' : 'off');
    // commit reads an overlay's changes from its upper directory, unless overlay may keep them
    // elsewhere (metacopy: data in a lower; redirect_dir=on: a renamed directory under its old
    // name): then it walks both trees, which Docker calls a naive diff.
    lines.push(['Native Overlay Diff', String(!metacopy && redirectDir !== 'on')]);
    lines.push(['userxattr', String(overlayFeatures().userxattr)]);
    lines.push(['using metacopy', String(metacopy)]);
    lines.push(['redirect_dir', options.redirectDir ?? `kernel default (${redirectDir})`]);
    lines.push(['index', options.index === undefined ? (overlayFeatures().indexOff ? 'off' : 'kernel default') : options.index ? 'on' : 'off']);
  }
  if (name === 'native') {
    const { reflink } = (await native()).parseNativeOptions(storageOpts);
    lines.push(['Reflink', reflink === undefined ? 'where the filesystem can' : String(reflink)]);
  }
  if (name === 'btrfs') {
    try {
      const { stdout } = await run('btrfs', ['filesystem', 'usage', '-b', root]);
      for (const [label, key] of [['Device size', 'Device Size'], ['Used', 'Used'], ['Free (estimated)', 'Free (estimated)']] as const) {
        const m = new RegExp(`^\\s*${label.replace(/[()]/g, '\\$&')}:\\s+(\\d+)`, 'm').exec(stdout);
        if (m) lines.push([key, m[1]!]);
      }
      const version = (await run('btrfs', ['--version'])).stdout.trim();
      lines.push(['Build Version', version]);
    } catch (err) {
      lines.push(['Usage', `unavailable: ${(err as Error).message.split('\n')[0]}`]);
    }
    const options = (await btrfs()).parseBtrfsOptions(storageOpts);
    lines.push(['Compression', options.compression ?? 'none'], ['Snapshot Size Limit', options.size === undefined ? 'none' : String(options.size)]);
    if (options.minSpace !== undefined) lines.push(['Min Space', String(options.minSpace)]);
  }
  if (name === 'blockfile') lines.push(...(await (await blockfile()).blockfileStatus(root, storageOpts)));
  if (name === 'erofs') lines.push(...(await (await erofs()).erofsStatus(root)));
  if (name === 'zfs') {
    const found = await zfsDatasetAt(root);
    if (found) {
      const pool = found.dataset.split('/')[0]!;
      try {
        const props = Object.fromEntries(
          (await run('zfs', ['get', '-H', '-p', '-o', 'property,value', 'used,available,quota,compression,recordsize', found.dataset])).stdout
            .trim()
            .split('\n')
            .map((l) => l.split('\t') as [string, string]),
        );
        const health = (await run('zpool', ['list', '-H', '-o', 'health', pool])).stdout.trim();
        lines.push(['Zpool', pool], ['Zpool Health', health], ['Parent Dataset', found.dataset]);
        lines.push(['Space Used By Parent', props.used ?? '?'], ['Space Available', props.available ?? '?'], ['Parent Quota', props.quota === '0' ? 'no' : (props.quota ?? '?')], ['Compression', props.compression ?? '?'], ['Record Size', props.recordsize ?? '?']);
      } catch (err) {
        lines.push(['Zpool', `unavailable: ${(err as Error).message.split('\n')[0]}`]);
      }
    }
  }
  return lines;
}

/** What the kernel allows that users meet: the overlay lower layers one mount takes. */
export function kernelLimits(): { maxOverlayLowers: number } {
  return { maxOverlayLowers: MAX_OVERLAY_LOWERS };
}
