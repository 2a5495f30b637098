/**
 * How the corpus compares a rootfs with an oracle's, feature by feature, and the table it prints.
 *
 * Everything snapshotTree records is compared (type, mode with setuid/setgid/sticky, uid, gid,
 * size, sha256, symlink target, device numbers, every xattr with its bytes, hardlink groups,
 * mtime to the nanosecond), except what differs for a legitimate reason:
 * - xattrs `trusted.overlay.*`: overlayfs's own bookkeeping (opaque markers, origin), not content;
 * - the mtime of the rootfs root `.` (root features only): each unpacker makes that directory
 *   itself, when the snapshot is created, and a layer may or may not carry a `./` entry for it;
 * - on zfs (zfs-fuse) mtimes are compared to the second: the filesystem keeps whole seconds;
 * - mtimes the oracle did not take from the layer (see `clockSinceNs`): both sides must show a
 *   time of their own making, but not the same one.
 * Atimes are not recorded at all (every read changes them).
 */
import { compareTrees, type TreeEntry } from '../helpers/tree.js';
import type { Feature } from './features.js';

export interface CompareOptions {
  /** The backend keeps mtimes in whole seconds only (zfs-fuse). */
  secondsOnly?: boolean;
  /**
   * When the oracle began unpacking (ns since the epoch): an oracle mtime at or after it was not
   * set from the layer but is the time the entry was made (a directory created implicitly, an
   * mtime the unpacker could not or would not set). The candidate must then show a time of its
   * own making too (at or after this instant); the two clocks are not compared.
   */
  clockSinceNs?: bigint;
  names?: [string, string];
}

/** The entries of `tree` that belong to `feature`: below `c/<id>`, or the whole tree for a root feature. */
export function featureEntries(tree: readonly TreeEntry[], feature: Pick<Feature, 'id' | 'root'>): TreeEntry[] {
  if (feature.root) return tree.map((e) => (e.path === '.' ? { ...e, mtimeNs: '0' } : e));
  const dir = `c/${feature.id}`;
  return tree.filter((e) => e.path === dir || e.path.startsWith(`${dir}/`));
}

const wholeSeconds = (e: TreeEntry): TreeEntry => ({ ...e, mtimeNs: String((BigInt(e.mtimeNs) / 1_000_000_000n) * 1_000_000_000n) });

/** Every difference between the oracle's and the candidate's entries of one feature. */
export function compareFeature(oracle: readonly TreeEntry[], candidate: readonly TreeEntry[], feature: Pick<Feature, 'id' | 'root'>, opts: CompareOptions = {}): string[] {
  let a = featureEntries(oracle, feature);
  let b = featureEntries(candidate, feature);
  if (opts.secondsOnly) {
    a = a.map(wholeSeconds);
    b = b.map(wholeSeconds);
  }
  const since = opts.clockSinceNs;
  if (since !== undefined) {
    const madeNow = new Set(a.filter((e) => BigInt(e.mtimeNs) >= since).map((e) => e.path));
    const clock = (e: TreeEntry): TreeEntry => (madeNow.has(e.path) && BigInt(e.mtimeNs) >= since ? { ...e, mtimeNs: '0' } : e);
    a = a.map(clock);
    b = b.map(clock);
  }
  return compareTrees(a, b, { mtimes: true, ignoreXattr: (n) => n.startsWith('trusted.overlay.'), ...(opts.names ? { names: opts.names } : {}) });
}

export type Outcome =
  | { kind: 'equal' }
  | { kind: 'differs'; diffs: string[] }
  /** stratum (or an oracle) refused the layers: the error */
  | { kind: 'refused'; error: string; likeOracle?: boolean }
  | { kind: 'writer refused'; error: string }
  | { kind: 'skipped'; reason: string };

export function outcomeOf(diffs: string[]): Outcome {
  return diffs.length === 0 ? { kind: 'equal' } : { kind: 'differs', diffs };
}

export interface Row {
  writer: string;
  feature: string;
  /** Which oracle the backends were compared with. */
  oracle: string;
  /** umoci vs containerd on this feature. */
  oracles: string;
  cells: Record<string, Outcome>;
}

function cell(o: Outcome | undefined): string {
  if (!o) return '—';
  switch (o.kind) {
    case 'equal':
      return 'equal';
    case 'differs':
      return `differs (${o.diffs.length})`;
    case 'refused':
      return o.likeOracle ? 'refused (like oracle)' : 'refused';
    case 'writer refused':
      return 'writer refused';
    case 'skipped':
      return 'skipped';
  }
}

/** The table as markdown: writer × feature → one column per backend, and the oracles' agreement. */
export function markdownTable(rows: readonly Row[], backends: readonly string[]): string {
  const head = ['writer', 'feature', ...backends, 'oracle', 'umoci vs containerd'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  const text = (s: string) => s.replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 160);
  for (const r of rows) lines.push(`| ${[r.writer, r.feature, ...backends.map((b) => cell(r.cells[b])), r.oracle, r.oracles].map(text).join(' | ')} |`);
  return lines.join('\n') + '\n';
}

/** The first few differences or the error of an outcome, for a test message. */
export function detail(o: Outcome, max = 12): string {
  if (o.kind === 'differs') return o.diffs.slice(0, max).join('\n') + (o.diffs.length > max ? `\n… and ${o.diffs.length - max} more` : '');
  if (o.kind === 'refused' || o.kind === 'writer refused') return o.error;
  if (o.kind === 'skipped') return o.reason;
  return '';
}
