import { readFile, realpath } from 'node:fs/promises';
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
  if (m.type !== 'overlay') throw new InvalidArgumentError(`cannot mount ${m.source} on ${target}: mount type ${JSON.stringify(m.type)} is not supported (overlay, bind)`);
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

/** Unmounts everything mounted on `target` (containerd's UnmountAll). Not mounted is fine. */
export async function unmountAll(target: string, detach = false): Promise<void> {
  for (let i = 0; i < 64 && (await isMountPoint(target)); i++) await unmountOnce(target, detach);
}

async function unmountOnce(target: string, detach: boolean): Promise<void> {
  return wrap(`unmount ${target}`, () => loadNative().unmount(target, detach));
}

/** Whether something is mounted exactly on `path` (per /proc/self/mountinfo). */
export async function isMountPoint(path: string): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(resolve(path));
  } catch {
    return false;
  }
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint !== undefined && unescapeMountinfo(mountPoint) === real) return true;
  }
  return false;
}

export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function wrap(what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof StratumError) throw err;
    throw new MountError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}
