import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { promisify } from 'node:util';
import { resolve } from 'node:path';
import { InvalidArgumentError, StratumError, MountError } from '../errors.js';
import { loadNative } from '../sys/native.js';
import type { Mount } from './snapshotter.js';

/** The kernel's limit on overlay lower layers (OVL_MAX_STACK). */
export const MAX_OVERLAY_LOWERS = 500;

export interface OverlaySpec {
  lowers: string[];
  upper?: string;
  work?: string;
  /** Every other option (index=off, userxattr, ro, …). */
  flags: string[];
}

/** The mount type of a fuse-overlayfs union (containerd's, and /proc/mounts' `fuse.fuse-overlayfs`). */
export const FUSE_OVERLAYFS_MOUNT_TYPE = 'fuse3.fuse-overlayfs';

/**
 * `key=path:path…` for fuse-overlayfs's `-o`: it splits lowerdir at every `:` and knows no escape,
 * and libfuse splits options at `,`, so a path holding either is refused rather than mounted wrong.
 */
export function fuseOverlayfsOption(key: 'lowerdir' | 'upperdir' | 'workdir', paths: string[]): string {
  for (const p of paths) {
    if (/[:,]/.test(p)) throw new InvalidArgumentError(`fuse-overlayfs cannot take ${key} ${JSON.stringify(p)}: a path with ':' or ',' cannot be passed to it; put the snapshots elsewhere`);
  }
  return `${key}=${paths.join(':')}`;
}

/** Escapes a path for a `lowerdir=` list (`:` separates layers, `\` escapes). */
export function escapeOverlayPath(path: string): string {
  return path.replace(/[\\:]/g, (c) => `\\${c}`);
}

/** Splits an overlay mount's options into its layers and the remaining flags. */
export function parseOverlayOptions(options: string[]): OverlaySpec {
  const spec: OverlaySpec = { lowers: [], flags: [] };
  for (const opt of options) {
    if (opt.startsWith('lowerdir=')) spec.lowers.push(...splitLowerdir(opt.slice('lowerdir='.length)));
    else if (opt.startsWith('upperdir=')) spec.upper = opt.slice('upperdir='.length);
    else if (opt.startsWith('workdir=')) spec.work = opt.slice('workdir='.length);
    else spec.flags.push(opt);
  }
  return spec;
}

function splitLowerdir(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && i + 1 < value.length) cur += value[++i];
    else if (c === ':') {
      if (cur === '') throw new InvalidArgumentError(`overlay lowerdir ${JSON.stringify(value.slice(0, 200))}: empty layer (data-only lowers "::" are not supported)`);
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur !== '') out.push(cur);
  return out;
}

function isBind(m: Mount): boolean {
  return m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
}

/**
 * Mounts `mounts` on `target` in order (containerd's mount.All). Overlay goes through the
 * native addon's new-mount-API call with one lowerdir+ per layer, so long chains mount whole
 * (mount(8)'s legacy call would silently truncate their options at one page).
 */
export async function mountAll(mounts: Mount[], target: string): Promise<void> {
  const done: number[] = [];
  try {
    for (const [i, m] of mounts.entries()) {
      await mountOne(m, target);
      done.push(i);
    }
  } catch (err) {
    for (const _ of done) await unmountOnce(target, true).catch(() => {});
    throw err;
  }
}

async function mountOne(m: Mount, target: string): Promise<void> {
  const binding = loadNative();
  if (isBind(m)) {
    const readonly = m.options.includes('ro');
    return wrap(`bind mount ${m.source} on ${target}`, () => binding.bindMount(m.source, target, readonly));
  }
  if (m.type === FUSE_OVERLAYFS_MOUNT_TYPE) return mountFuseOverlayfs(m, target);
  if (m.type === 'erofs') return wrap(`erofs mount of ${m.source} on ${target}`, () => binding.mountErofs(m.source, target));
  if (m.type !== 'overlay') throw new InvalidArgumentError(`cannot mount ${m.source} on ${target}: mount type ${JSON.stringify(m.type)} is not supported (overlay, ${FUSE_OVERLAYFS_MOUNT_TYPE}, erofs, bind)`);
  const spec = parseOverlayOptions(m.options);
  if (spec.lowers.length === 0) throw new InvalidArgumentError(`cannot mount overlay on ${target}: no lowerdir`);
  if (spec.lowers.length > MAX_OVERLAY_LOWERS) {
    throw new InvalidArgumentError(`cannot mount overlay on ${target}: ${spec.lowers.length} lower layers, the kernel allows at most ${MAX_OVERLAY_LOWERS}`);
  }
  const options: { lowers: string[]; upper?: string; work?: string; flags?: string[] } = { lowers: spec.lowers, flags: spec.flags };
  if (spec.upper !== undefined) options.upper = spec.upper;
  if (spec.work !== undefined) options.work = spec.work;
  return wrap(`overlay mount of ${spec.lowers.length} layers on ${target}`, () => binding.mountOverlay(target, options));
}

/**
 * Starts a fuse-overlayfs daemon serving `m` on `target`; it returns once the mount is in place
 * (the daemon forks into the background after mounting) and exits when `target` is unmounted.
 */
async function mountFuseOverlayfs(m: Mount, target: string): Promise<void> {
  try {
    await run('fuse-overlayfs', ['-o', m.options.join(','), target], { timeout: 60_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why = e.code === 'ENOENT' ? 'the fuse-overlayfs binary is not installed (Debian: apt-get install fuse-overlayfs)' : (e.stderr?.trim() || e.message);
    throw new MountError(`fuse-overlayfs mount on ${target}: ${why}`, { cause: err });
  }
}

/** Unmounts everything mounted on `target` (containerd's UnmountAll). Not mounted is fine. */
export async function unmountAll(target: string, detach = false): Promise<void> {
  for (let i = 0; i < 64 && (await isMountPoint(target)); i++) await unmountOnce(target, detach);
}

async function unmountOnce(target: string, detach: boolean): Promise<void> {
  try {
    wrap(`unmount ${target}`, () => loadNative().unmount(target, detach));
  } catch (err) {
    // A FUSE mount its owner made without CAP_SYS_ADMIN: only the setuid fusermount3 may undo it.
    if (!(await fsTypeMountedAt(target))?.startsWith('fuse')) throw err;
    try {
      await run('fusermount3', ['-u', ...(detach ? ['-z'] : []), target]);
    } catch {
      throw err;
    }
  }
}

/** Whether something is mounted exactly on `path` (per /proc/self/mountinfo). */
export async function isMountPoint(path: string): Promise<boolean> {
  return (await fsTypeMountedAt(path)) !== undefined;
}

/** The filesystem type of the topmost mount exactly on `path` (per /proc/self/mountinfo), if any. */
async function fsTypeMountedAt(path: string): Promise<string | undefined> {
  let real: string;
  try {
    real = await realpath(resolve(path));
  } catch {
    return undefined;
  }
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  let fsType: string | undefined;
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== undefined && unescapeMountinfo(fields[4]) === real) fsType = fields[fields.indexOf('-') + 1] ?? '';
  }
  return fsType;
}

/** Mount points at or below `dir` (an absolute, resolved path), deepest first (from /proc/self/mountinfo). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    const point = field === undefined ? undefined : unescapeMountinfo(field);
    if (point && (point === dir || point.startsWith(`${dir}/`))) out.push(point);
  }
  return out.reverse();
}

export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

const run = promisify(execFile);

function wrap(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof StratumError) throw err;
    throw new MountError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}
