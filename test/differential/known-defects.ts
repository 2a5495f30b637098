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

export const KNOWN_DEFECTS: readonly KnownDefect[] = [
  // zfs-fuse 0.7's own limits (the kernel's zfs has neither): not stratum's to fix.
  { feature: 'mtimes', backends: ['zfs'], shows: /futimens: Value too large/, defect: 'zfs-fuse cannot store an mtime past 2038 (futimens EOVERFLOW): the zfs backend refuses the layer' },
  { feature: 'big-ids', backends: ['zfs'], shows: /fchownat: Invalid argument/, defect: 'zfs-fuse refuses owners of 2^31 and more (fchownat EINVAL): the zfs backend refuses the layer' },
  {
    feature: 'sparse',
    writers: /^gnutar-gnu-sparse$/,
    shows: /^containerd refuses these layers .*unhandled tar header type 83/,
    defect: "DELIBERATE, containerd differs: issue 8 asks for old GNU sparse entries (type 'S') to unpack, expanded, as GNU tar and umoci unpack them; containerd 1.6 refuses type 'S' (83)",
  },
  {
    feature: 'wh-under-new-symlink',
    // The comparator shows an oracle time of the oracle's own making (at or after its unpack began) as the epoch.
    shows: /^c\/wh-under-new-symlink\/target: mtime containerd="1970-01-01T00:00:00\.000000000Z" stratum [\w-]+="\S+"$/,
    defect:
      "DELIBERATE, containerd differs: a whiteout applied through a symlink of its own layer (p -> target, p/.wh.x) lands in target, a directory of the layer below; containerd's overlay applier copies target's times into the upper directory, then its mknod gives it the time of the unpack; stratum restores the lower directory's time, as issue 8 asks (directory times restored after their children, on every backend)",
  },
  {
    feature: 'wh-after-new',
    shows: /^containerd refuses these layers .*failed to (extract layer|convert whiteout)/,
    defect:
      "DELIBERATE, containerd differs: containerd refuses a whiteout sorted after the entry it names in the same layer ('file exists'); stratum keeps the entry, as umoci and Docker do and as shared/snapshotter-conformance.md requires (whiteouts never hide entries of their own layer)",
  },
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
