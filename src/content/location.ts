import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { UnsafeLocationError } from '../errors.js';
import { REMOVAL_DIR, SNAPSHOTS_DIR, STAGING_DIR } from '../snapshotter/fsutil.js';
import { BLOBS_DIR, INGEST_DIR, OCI_LAYOUT_FILE } from './layout.js';

/**
 * Where a store or a snapshot root must never be: inside content stratum treats as immutable.
 * A store under another store's blobs/ would write into blob files' directory; one inside a
 * snapshot writes into a committed layer (and is unpacked into the next image built from it).
 * Paths are compared after realpath, and a path on a mount is also followed to what is mounted
 * there (an overlay's upper and lower dirs, a bind mount's source), so a snapshot mounted
 * elsewhere is recognised as one.
 */
export type LocationRole = 'store' | 'snapshot root';

/** Areas of a store that hold its content; only a snapshot root may sit under its snapshots/. */
const STORE_AREAS: Record<LocationRole, readonly string[]> = {
  store: [BLOBS_DIR, INGEST_DIR, 'snapshots'],
  'snapshot root': [BLOBS_DIR, INGEST_DIR],
};
/** Areas of a snapshotter root that hold snapshot data; a directory with all three is taken for one. */
const SNAPSHOTTER_AREAS = [SNAPSHOTS_DIR, STAGING_DIR, REMOVAL_DIR];

/** Throws UnsafeLocationError when `path` (existing or not) lies inside a store's content or a snapshot. */
export function checkLocation(path: string, role: LocationRole): void {
  const real = realpathOfMaybeMissing(resolve(path));
  for (const candidate of [real, ...mountedFrom(real)]) {
    const reason = insideContent(candidate, role);
    if (reason) {
      const via = candidate === real ? '' : ` (it is on a mount of ${candidate})`;
      throw new UnsafeLocationError(path, role, `${reason}${via}`);
    }
  }
}

/** The first reason `path` is inside a store's content area or a snapshotter's data, or undefined. */
function insideContent(path: string, role: LocationRole): string | undefined {
  for (let dir = dirname(path), child = path; dir !== child; child = dir, dir = dirname(dir)) {
    const area = relative(dir, path).split(sep)[0]!;
    if (existsSync(join(dir, OCI_LAYOUT_FILE)) && STORE_AREAS[role].includes(area)) {
      return `it is inside ${join(dir, area)}, the ${area}/ area of the store ${dir}`;
    }
    if (SNAPSHOTTER_AREAS.includes(area) && SNAPSHOTTER_AREAS.every((a) => existsSync(join(dir, a)))) {
      return `it is inside ${join(dir, area)}, snapshot data of the snapshotter root ${dir}`;
    }
  }
  return undefined;
}

/** realpath of the deepest existing ancestor, with the missing rest appended. */
function realpathOfMaybeMissing(path: string): string {
  const rest: string[] = [];
  for (let p = path; ; p = dirname(p)) {
    try {
      return join(realpathSync(p), ...rest.reverse());
    } catch {
      if (dirname(p) === p) return path;
      rest.push(basename(p));
    }
  }
}

interface MountInfo {
  /** major:minor of the filesystem. */
  device: string;
  /** The directory of that filesystem mounted here ('/' unless a bind mount of a subtree). */
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

/**
 * The paths `path` also is, seen through the mount it lies on: for an overlay, the same relative
 * path in its upper and lower dirs (a mounted snapshot's data); for a bind mount of a subtree,
 * the path in the subtree's own mount. Empty when the mount table cannot be read.
 */
function mountedFrom(path: string): string[] {
  let mounts: MountInfo[];
  try {
    mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map(parseMountInfo);
  } catch {
    return [];
  }
  const holder = mounts
    .filter((m) => path === m.mountPoint || path.startsWith(m.mountPoint === '/' ? '/' : `${m.mountPoint}/`))
    .reduce<MountInfo | undefined>((best, m) => (best === undefined || m.mountPoint.length >= best.mountPoint.length ? m : best), undefined);
  if (!holder) return [];
  const rel = relative(holder.mountPoint, path);
  const out: string[] = [];
  if (holder.fsType === 'overlay') {
    for (const option of splitOptions(holder.superOptions)) {
      const m = /^(upperdir|lowerdir\+?|datadir\+?)=(.*)$/.exec(option);
      if (!m) continue;
      const dirs = m[1] === 'lowerdir' ? m[2]!.split(/(?<!\\):+/) : [m[2]!];
      for (const d of dirs) if (d !== '') out.push(join(d.replace(/\\(.)/g, '$1'), rel));
    }
  } else if (holder.root !== '/') {
    const whole = mounts.find((m) => m.device === holder.device && m.root === '/');
    if (whole) out.push(join(whole.mountPoint, holder.root, rel));
  }
  return out;
}

function parseMountInfo(line: string): MountInfo {
  const fields = line.split(' ');
  const dash = fields.indexOf('-');
  return {
    device: fields[2] ?? '',
    root: unescapeMountinfo(fields[3] ?? '/'),
    mountPoint: unescapeMountinfo(fields[4] ?? '/'),
    fsType: fields[dash + 1] ?? '',
    superOptions: unescapeMountinfo(fields[dash + 3] ?? ''),
  };
}

/** Splits a mount option string at commas not escaped with a backslash. */
function splitOptions(options: string): string[] {
  return options.split(/(?<!\\),/);
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
