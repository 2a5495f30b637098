/**
 * Cases of the corpus that fail today because of a known stratum defect that is being fixed:
 * their tests are `todo` (reported, not failing the run) and name the defect. When a fix lands,
 * the todo test passes and its entry here should go.
 */
export interface KnownDefect {
  /** A feature id, or `*` for every feature. */
  feature: string;
  /** Writers it shows with (all when absent). */
  writers?: RegExp;
  /** Backends it shows on (all when absent). */
  backends?: readonly string[];
  /**
   * What its failure looks like: every difference line (or the refusal) must match, so a case
   * marked todo still fails when it shows anything else.
   */
  shows: RegExp;
  defect: string;
}

const ALL_BUT_ZFS = ['overlay', 'native', 'btrfs'];
const CORRUPT = /invalid tar header at byte \d+: checksum mismatch/;
const NAMES_CUT =
  "PAX names cut at '/': an entry whose long name (PAX path or GNU 'L') has a 100-byte header field ending in '/' is taken for a directory, its data for a header: the layer is refused as corrupt";
const SPARSE = 'sparse files: GNU sparse entries (PAX GNU.sparse.*) are refused';
const UMOCI_TRUNCATED =
  "NEW: umoci 0.4.7's insert layers end without the last entry's padding and the end-of-archive blocks; stratum refuses them as truncated ('input ended inside an entry'), containerd and umoci accept them";
const SYMLINK_PARENTS = 'lower symlinks used as parents in later layers differ between backends: overlay (like containerd) makes a directory in their place, native and btrfs refuse the entry';

export const KNOWN_DEFECTS: readonly KnownDefect[] = [
  { feature: 'names', writers: /^(gnutar-(gnu|oldgnu|posix)|bsdtar-gnutar|python-(gnu|pax))/, shows: CORRUPT, defect: NAMES_CUT },
  { feature: 'deep', writers: /^gnutar-oldgnu$/, shows: CORRUPT, defect: NAMES_CUT },
  {
    feature: '*',
    writers: /^umoci-insert-root$/,
    shows: /entry "\/": absolute name/,
    defect: "NEW: umoci insert at / writes the root as an entry named '/', which stratum refuses as an absolute name (containerd and umoci take it for the root)",
  },
  { feature: '*', writers: /^umoci-insert/, shows: /truncated tar: input ended at byte \d+ inside an entry/, defect: UMOCI_TRUNCATED },
  { feature: 'sparse', writers: /^(gnutar-posix-sparse|bsdtar-pax|bsdtar-paxr)$/, shows: /sparse files \(PAX GNU\.sparse\.\w+\) are not supported/, defect: SPARSE },
  { feature: 'non-utf8', shows: /^c\/non-utf8\/\S+: (only in (containerd|stratum \w+) \(|symlink target containerd=)/, defect: 'non-UTF-8 names: names and link targets are decoded as UTF-8, invalid bytes become U+FFFD' },
  {
    feature: 'mtimes',
    backends: ALL_BUT_ZFS,
    shows: /^c\/mtimes\/year-9999: mtime containerd="1970-01-01T00:00:00\.000000000Z" stratum \w+="2446-/,
    defect: 'NEW: an mtime past 2262 (year 9999) overflows the nanosecond count and lands in 2446; containerd clamps it to the epoch (boundTime), umoci wraps it to 1901',
  },
  { feature: 'mtimes', backends: ['zfs'], shows: /futimens: Value too large/, defect: 'zfs-fuse cannot store an mtime past 2038 (futimens EOVERFLOW): the zfs backend refuses the layer' },
  { feature: 'big-ids', backends: ['zfs'], shows: /fchownat: Invalid argument/, defect: 'zfs-fuse refuses owners of 2^31 and more (fchownat EINVAL): the zfs backend refuses the layer' },
  {
    feature: 'names',
    writers: /^bsdtar-paxr$/,
    shows: /^c\/names\/(a|h)\/\S+: mtime containerd="\S+\.250000000Z" stratum \w+="\S+\.000000000Z"$/,
    defect: "NEW: a hardlink entry's own mtime (bsdtar's restricted pax gives the link a PAX mtime its target's ustar header lacks) is not applied to the shared inode; containerd applies each entry's times, the last wins",
  },
  { feature: 'long-paths', writers: /^bsdtar-paxr$/, shows: /: mtime containerd="\S+\.250000000Z" stratum \w+="\S+\.000000000Z"$/, defect: "NEW: a hardlink entry's own mtime is not applied to the shared inode (see names)" },
  {
    feature: 'wh-basic',
    backends: ['overlay'],
    shows: /^c\/wh-basic: mtime /,
    defect: "NEW (directory mtimes, on overlay): whiteouts that hide nothing are removed after the layer set the directory's mtime, which then shows the unpack time",
  },
  {
    feature: 'wh-recreate',
    shows: /^c\/wh-recreate\/y\/old: only in containerd /,
    defect: "NEW, containerd wins: with `.wh.y` then `y/…` in one layer containerd's overlay keeps the lower y's children (the whiteout device becomes a plain, not opaque, directory); stratum drops them, like umoci",
  },
  {
    feature: 'wh-after-new',
    shows: /^containerd refuses these layers .*failed to (extract layer|convert whiteout)/,
    defect: "NEW, containerd wins: containerd refuses a whiteout sorted after the entry it names in the same layer ('file exists'); stratum unpacks it, keeping the new entry like umoci",
  },
  {
    feature: 'root-opaque',
    backends: ['native', 'btrfs', 'zfs'],
    shows: /^(base|base\/README|c|old-top): only in containerd /,
    defect: "NEW, backends differ: `.wh..wh..opq` at the root is ignored on overlay (as by containerd: overlayfs ignores opaque on a layer's root) but empties the root on native, btrfs and zfs (as umoci)",
  },
  { feature: 'wh-under-new-symlink', shows: /entry "\S+\/p\/\.wh\.x": parent "\S+\/p" is a symlink/, defect: 'whiteouts under a parent that became a symlink in the same layer: refused ("parent is a symlink"); containerd applies them' },
  { feature: 'wh-under-lower-symlink', backends: ['native', 'btrfs', 'zfs'], shows: /parent "\S+\/p" is a symlink/, defect: SYMLINK_PARENTS },
  { feature: 'entry-under-lower-symlink', backends: ['native', 'btrfs', 'zfs'], shows: /parent "\S+\/p" is a symlink/, defect: SYMLINK_PARENTS },
  { feature: 'wh-under-file', backends: ['native', 'btrfs', 'zfs'], shows: /parent "\S+\/f" is not a directory/, defect: 'NEW, backends differ: below a lower file, overlay (like containerd) makes a directory in its place, native and btrfs refuse the entry ("parent is not a directory")' },
];

/**
 * The known defect a (writer, feature, backend) case shows, if any: one listed for it whose
 * `shows` matches every line of what went wrong (`lines`: the differences, or the refusal).
 */
export function knownDefect(writer: string, feature: string, backend: string, lines: readonly string[]): string | undefined {
  return KNOWN_DEFECTS.find(
    (k) =>
      (k.feature === feature || k.feature === '*') &&
      (!k.writers || k.writers.test(writer)) &&
      (!k.backends || k.backends.includes(backend)) &&
      lines.length > 0 &&
      lines.every((l) => k.shows.test(l)),
  )?.defect;
}
