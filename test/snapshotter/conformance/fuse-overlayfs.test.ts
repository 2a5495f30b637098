import { dirname } from 'node:path';
import { fuseOverlayfsMissing } from '../../../src/snapshotter/fuse-overlayfs/fuse-overlayfs.js';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';

// Both seen with Debian's fuse-overlayfs 1.10 through the long-chain test. Layers stratum unpacks are
// written into the upper directory directly, not through the mount, so images are not affected;
// writes through a mounted container are. The kernel's overlay restores both after a copy-up.
const COPY_UP_MTIME =
  
  "fuse-overlayfs 1.10 copies a directory (for a write below it) or a symlink (for an lchown) up without restoring its mtime (https://github.com/containers/fuse-overlayfs/issues/400)";
const COPY_UP_SETID =
  'fuse-overlayfs 1.10 copies a setgid directory (for a write below it) or a setuid/setgid file (for a rename) up without those bits: creating the copy drops them and nothing sets them again';
const COPY_UP_SYMLINK_OWNER = 'fuse-overlayfs 1.10 copies a symlink up (for a rename) without its owner';
/** `path got:want` of entries already excused for a group lost to COPY_UP_SETID. */
const lostInheritedGid = new Set<string>();

runConformance({
  name: 'fuse-overlayfs',
  open: (root) => openSnapshotter('fuse-overlayfs', root),
  knownDefect({ path, line, expected }) {
    const want = expected.get(path);
    if ((want?.type === 'dir' || want?.type === 'symlink') && /: mtime \d+ ns, want \d+ ns$/.test(line)) return COPY_UP_MTIME;
    const mode = /: mode 0([0-7]+), want 0([0-7]+)$/.exec(line);
    if (mode) {
      const [got, wanted] = [parseInt(mode[1]!, 8), parseInt(mode[2]!, 8)];
      // Only the setuid/setgid bits missing, everything else equal.
      if (wanted & 0o6000 && (got | (wanted & 0o6000)) === wanted) return COPY_UP_SETID;
    }
    const owner = /: owner (\d+):(\d+), want (\d+):(\d+)$/.exec(line);
    if (owner && want?.type === 'symlink') return COPY_UP_SYMLINK_OWNER;
    // The group a setgid parent gives a new entry, missing because that parent lost its setgid bit in
    // a copy-up; the entry keeps the wrong group in later layers, whatever its parent becomes.
    const parent = expected.get(dirname(path));
    const gidOnly = owner && owner[1] === owner[3] ? `${path} ${owner[2]}:${owner[4]}` : undefined;
    if (gidOnly && ((parent && parent.mode & 0o2000 && String(parent.gid) === owner![4]) || lostInheritedGid.has(gidOnly))) {
      lostInheritedGid.add(gidOnly);
      return COPY_UP_SETID;
    }
    return undefined;
  },
  async skipReason() {
    // As root here; the rootless run (a user namespace) is test/snapshotter/fuse-overlayfs-rootless.test.ts.
    const reasons = [];
    if (process.getuid?.() !== 0) reasons.push('not root (bind mounts and chown need it)');
    const missing = await fuseOverlayfsMissing();
    if (missing) reasons.push(missing);
    return reasons.length > 0 ? reasons.join(' / ') : undefined;
  },
});
