/**
 * The corpus's features: each a short stack of layers (after a shared base layer) that stresses
 * one thing a layer applier can get wrong. A feature's layers are recipes of filesystem
 * operations on a staging directory (any writer archives them), or, where no staged directory
 * can express the entry order (a whiteout below a parent that became a symlink in the same
 * layer), explicit tar entries that only the python-raw writer emits.
 */
import type { Op, RelPath } from './recipe.js';

/** One tar entry for the python-raw writer, in archive order. */
export interface RawEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  content?: string;
  linkname?: string;
  mode?: number;
  /** Seconds; default the layer's time. */
  mtime?: number;
}

export interface Feature {
  id: string;
  about: string;
  /** Layers above the base, oldest first; paths relative to the feature's directory `c/<id>` (or `/` when `root`). */
  layers?: Op[][];
  /** Instead of `layers`: explicit entries (python-raw only), relative to `c/<id>` (or `/` when `root`). */
  raw?: RawEntry[][];
  /** Acts on the image root: compared over the whole tree. */
  root?: boolean;
  /**
   * Features of group `main` share an image (each under c/<id>); an `alone` one gets its own
   * (it acts on the root, or an oracle or stratum refuses it today: it would split the shared image).
   */
  group: 'main' | 'alone';
  /**
   * Stresses the applier rather than the writer: in the CI slice only the representative writers
   * (corpus.test.ts) run it; the full run runs it with every writer.
   */
  applier?: boolean;
  /** Each layer starts with a PAX global header (only writers that can write one run it). */
  paxGlobal?: boolean;
  /** Only in the big run (STRATUM_CORPUS=full). */
  full?: boolean;
  /** Only writers whose id matches (e.g. those that write holes as holes). */
  writers?: RegExp;
}

/** security.capability v2 for cap_net_bind_service+ep. */
const CAPABILITY = Buffer.from('0100000200040000000000000000000000000000', 'hex');
/** A user xattr value that is not valid UTF-8. */
const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x01, 0x7f, 0xc3, 0x28]);

/** Member-path lengths (from the layer root, without a `./` prefix) around the tar header limits. */
const BOUNDARIES = [97, 98, 99, 100, 101, 102, 153, 154, 155, 156, 157, 158, 253, 254, 255, 256, 257, 258];

function names(): Feature {
  const dir = 'c/names/';
  const ops: Op[] = [];
  for (const len of BOUNDARIES) {
    // one long base name: c/names/a/<…>
    const file = `a/${'f'.repeat(len - dir.length - 2 - String(len).length)}${len}`;
    ops.push({ op: 'file', path: file, content: `path of ${len} bytes\n` });
    // a long directory (ustar's prefix field) holding a short name: c/names/<…>/x
    const d = `${'d'.repeat(Math.min(255, len - dir.length - 2 - String(len).length))}${len}`.slice(-255);
    ops.push({ op: 'dir', path: d });
    ops.push({ op: 'file', path: `${d}/x`, content: `under a ${d.length}-byte directory\n` });
    // link targets of the same lengths: a symlink's text and a hardlink's (root-relative) target
    ops.push({ op: 'symlink', path: `s/${len}`, target: 't'.repeat(len) });
    ops.push({ op: 'hardlink', path: `h/${len}`, target: `${dir}${file}` });
  }
  return { id: 'names', group: 'alone', about: 'member names and link targets of 97..102, 153..158, 253..258 bytes', layers: [ops] };
}

function longPaths(): Feature {
  const components = Array.from({ length: 15 }, (_, i) => `${String(i).padStart(2, '0')}${'p'.repeat(248)}`);
  const deep = components.join('/');
  return {
    id: 'long-paths',
    group: 'main',
    about: '~3.8 KiB member paths and a 4000-byte symlink target',
    layers: [
      [
        { op: 'file', path: `${deep}/end`, content: 'at the end of a 3.8 KiB path\n' },
        { op: 'symlink', path: 'long-target', target: `${'../x/'.repeat(800)}` },
        { op: 'hardlink', path: 'link-to-deep', target: `c/long-paths/${deep}/end` },
      ],
    ],
  };
}

function deepTree(): Feature {
  const path = Array.from({ length: 300 }, () => 'd').join('/');
  return {
    id: 'deep',
    group: 'main',
    about: '300 nested directories',
    layers: [[{ op: 'file', path: `${path}/bottom`, content: 'bottom\n' }], [{ op: 'file', path: `${path}/bottom2`, content: 'layer 2\n' }]],
  };
}

function utf8(): Feature {
  const n = ['é', '日本語', '🙂 smile', 'e\u0301-nfd', 'tab\there', 'quote"\'\\'];
  return {
    id: 'utf8',
    group: 'main',
    about: 'UTF-8 names and link targets',
    layers: [n.flatMap((name): Op[] => [{ op: 'file', path: `${name}.txt`, content: name }, { op: 'symlink', path: `to-${name}`, target: `${name}.txt` }])],
  };
}

function nonUtf8(): Feature {
  const b = (...parts: (string | number[] | Buffer)[]) => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  const latin1 = b('caf', [0xe9]);
  const junk = b([0xff, 0xfe], '-junk');
  const ops: Op[] = [
    { op: 'file', path: latin1, content: 'latin-1 e acute\n' },
    { op: 'dir', path: junk },
    { op: 'file', path: b(junk, '/', [0xc3, 0x28]), content: 'invalid 2-byte sequence\n' },
    { op: 'symlink', path: 'to-latin1', target: latin1 },
    { op: 'hardlink', path: b('hard-', [0x80]), target: b('c/non-utf8/', latin1) },
  ];
  return { id: 'non-utf8', group: 'main', about: 'names and link targets that are not valid UTF-8', layers: [ops] };
}

function bigIds(): Feature {
  return {
    id: 'big-ids',
    group: 'main',
    about: 'uid/gid beyond 2097151 (8 octal digits): base-256 or PAX',
    layers: [
      [
        { op: 'file', path: 'uid-2097151', content: 'max octal\n', uid: 2097151, gid: 2097151 },
        { op: 'file', path: 'uid-2097152', content: 'first base-256\n', uid: 2097152, gid: 2097152 },
        { op: 'dir', path: 'dir-4000000000', uid: 4000000000, gid: 4000000000 },
        { op: 'symlink', path: 'link-3000000', target: 'uid-2097152', uid: 3000000, gid: 3000001 },
      ],
    ],
  };
}

function sparse(full: boolean): Feature {
  const size = full ? 9 * 1024 ** 3 + 4096 * 3 + 17 : 3 * 1024 * 1024 + 17;
  return {
    id: full ? 'sparse-9g' : 'sparse',
    // stratum refuses GNU sparse entries today: alone, so the refusal splits nothing
    group: 'alone',
    about: full ? 'a 9 GiB sparse file (size beyond 8 GiB: base-256 / PAX size)' : 'a 3 MiB file with holes',
    full,
    // a writer that stores holes as zeros would write a 9 GiB tar
    ...(full ? { writers: /-sparse$/ } : {}),
    layers: [
      [
        {
          op: 'sparse',
          path: 'holes.bin',
          size,
          data: [
            [0, 'head'],
            [1024 * 1024 + 7, 'middle'],
            [size - 5, 'tail!'],
          ],
        },
        { op: 'sparse', path: 'all-hole.bin', size: 1024 * 1024, data: [] },
      ],
    ],
  };
}

function mtimes(): Feature {
  return {
    id: 'mtimes',
    group: 'main',
    about: 'negative, zero, sub-second and far-future mtimes (beyond 11 octal digits)',
    layers: [
      [
        { op: 'file', path: 'negative', content: '1938\n', mtime: -1_000_000_000 },
        { op: 'file', path: 'minus-one', content: '1969\n', mtime: -1 },
        { op: 'file', path: 'epoch', content: '1970\n', mtime: 0 },
        { op: 'file', path: 'half', content: 'sub-second\n', mtime: 1_704_067_200.5 },
        { op: 'file', path: 'octal-max', content: '2242\n', mtime: 8_589_934_591 },
        { op: 'file', path: 'far-future', content: '2255\n', mtime: 9_000_000_000 },
        { op: 'file', path: 'year-9999', content: '9999\n', mtime: 253_402_300_799 },
        { op: 'dir', path: 'old-dir', mtime: -86_400 },
        { op: 'symlink', path: 'future-link', target: 'epoch', mtime: 4_102_444_800 },
      ],
    ],
  };
}

function xattrs(): Feature {
  return {
    id: 'xattrs',
    group: 'main',
    about: 'SCHILY.xattr.*: user (text and binary), trusted, security.capability',
    layers: [
      [
        { op: 'file', path: 'ping', content: 'cap\n', mode: 0o755, xattrs: { 'security.capability': CAPABILITY } },
        { op: 'file', path: 'labels', content: 'labels\n', xattrs: { 'user.text': Buffer.from('hello world'), 'user.binary': BINARY, 'trusted.corpus': Buffer.from('t') } },
        { op: 'file', path: 'empty-value', content: 'e\n', xattrs: { 'user.empty': Buffer.alloc(0) } },
      ],
      [
        // the same file again in an upper layer, with its xattrs changed
        { op: 'file', path: 'labels', content: 'labels 2\n', xattrs: { 'user.text': Buffer.from('upper') } },
      ],
    ],
  };
}

function hardlinks(): Feature {
  return {
    id: 'hardlinks',
    group: 'main',
    about: 'hardlink groups, links to lower-layer files, links to a file replaced in the same layer',
    layers: [
      [
        { op: 'file', path: 'lower', content: 'from layer 1\n', mode: 0o640, uid: 7, gid: 8 },
        { op: 'file', path: 'z-replaced', content: 'old z\n' },
        { op: 'file', path: 'g/one', content: 'group of three\n' },
        { op: 'hardlink', path: 'g/two', target: 'c/hardlinks/g/one' },
        { op: 'hardlink', path: 'g/three', target: 'c/hardlinks/g/one' },
      ],
      [
        // what overlay's copy-up leaves in the upper dir when a link to a lower file is made
        { op: 'file', path: 'lower', content: 'from layer 1\n', mode: 0o640, uid: 7, gid: 8 },
        { op: 'hardlink', path: 'link-to-lower', target: 'c/hardlinks/lower' },
        // a-new sorts first, so z-replaced (a lower file) is replaced by a hardlink to it
        { op: 'file', path: 'a-new', content: 'new content for z\n' },
        { op: 'hardlink', path: 'z-replaced', target: 'c/hardlinks/a-new' },
      ],
    ],
  };
}

function devices(): Feature {
  return {
    id: 'devices',
    group: 'main',
    about: 'character and block devices, fifos',
    layers: [
      [
        { op: 'char', path: 'null', major: 1, minor: 3, mode: 0o666 },
        { op: 'block', path: 'loop9', major: 7, minor: 9, mode: 0o660, gid: 6 },
        { op: 'char', path: 'big', major: 511, minor: 70000, mode: 0o600 },
        { op: 'fifo', path: 'pipe', mode: 0o620 },
      ],
    ],
  };
}

function modes(): Feature {
  return {
    id: 'modes',
    group: 'main',
    about: 'setuid, setgid, sticky, mode 0000, a read-only directory with children',
    layers: [
      [
        { op: 'file', path: 'suid', content: 's\n', mode: 0o4755 },
        { op: 'file', path: 'sgid', content: 'g\n', mode: 0o2755, gid: 50 },
        { op: 'dir', path: 'sgid-dir', mode: 0o2775, gid: 50 },
        { op: 'dir', path: 'sticky', mode: 0o1777 },
        { op: 'file', path: 'none', content: 'n\n', mode: 0o000 },
        { op: 'file', path: 'ro/child', content: 'c\n' },
        { op: 'dir', path: 'ro', mode: 0o555 },
        { op: 'file', path: 'all', content: 'a\n', mode: 0o7777 },
      ],
    ],
  };
}

function whiteouts(): Feature {
  return {
    id: 'wh-basic',
    group: 'main',
    about: 'whiteouts of a file, a directory tree, a symlink; of a missing path; of a whiteout name',
    layers: [
      [
        { op: 'file', path: 'file', content: 'f\n' },
        { op: 'file', path: 'tree/a/b', content: 'b\n' },
        { op: 'symlink', path: 'link', target: 'file' },
        { op: 'file', path: 'kept', content: 'k\n' },
      ],
      [
        { op: 'whiteout', path: 'file' },
        { op: 'whiteout', path: 'tree' },
        { op: 'whiteout', path: 'link' },
        { op: 'whiteout', path: 'never-was' },
        // .wh..wh.x: the whiteout of a path named `.wh.x`
        { op: 'whiteout', path: '.wh.x' },
      ],
    ],
  };
}

function opaque(): Feature {
  return {
    id: 'opaque',
    group: 'main',
    about: "opaque markers sorted before (zz-own) and after (-own, '-' < '.') the directory's own entries; an emptied directory",
    layers: [
      [
        { op: 'file', path: 'before/old', content: 'old\n' },
        { op: 'file', path: 'before/sub/old', content: 'old\n' },
        { op: 'file', path: 'after/old', content: 'old\n' },
        { op: 'file', path: 'after/-own', content: 'lower -own\n' },
        { op: 'file', path: 'emptied/x', content: 'x\n' },
      ],
      [
        { op: 'opaque', path: 'before' },
        { op: 'file', path: 'before/zz-own', content: 'upper\n' },
        { op: 'file', path: 'before/sub/new', content: 'upper\n' },
        { op: 'file', path: 'after/-own', content: 'upper -own\n' },
        { op: 'opaque', path: 'after' },
        { op: 'opaque', path: 'emptied' },
      ],
      [{ op: 'file', path: 'before/third', content: 'layer 3\n' }],
    ],
  };
}

function recreate(): Feature {
  return {
    id: 'wh-recreate',
    group: 'main',
    about: 'deletion then re-creation in the same layer (the whiteout sorted before the new entry)',
    layers: [
      [
        { op: 'file', path: 'x', content: 'old x\n' },
        { op: 'file', path: 'y/old', content: 'old y child\n' },
      ],
      [
        { op: 'whiteout', path: 'x' },
        { op: 'file', path: 'x', content: 'new x\n' },
        { op: 'whiteout', path: 'y' },
        { op: 'file', path: 'y/new', content: 'new y child\n' },
      ],
    ],
  };
}

function whiteoutAfterNew(): Feature {
  return {
    id: 'wh-after-new',
    // containerd refuses it: alone, so it does not split the other whiteout features' image
    group: 'alone',
    applier: true,
    about: "a whiteout sorted after the entry it names, re-created in the same layer ('-r' < '.wh.-r')",
    layers: [[{ op: 'file', path: '-r', content: 'old -r\n' }], [{ op: 'file', path: '-r', content: 'new -r\n' }, { op: 'whiteout', path: '-r' }]],
  };
}

function paxGlobal(): Feature {
  return {
    id: 'pax-global',
    group: 'alone',
    about: 'a PAX global header (comment, uid=4242) before every entry of each layer: containerd and Go ignore it',
    paxGlobal: true,
    layers: [[{ op: 'file', path: 'owned', content: 'whose?\n', uid: 7, gid: 7 }], [{ op: 'file', path: 'second', content: 'layer 2\n' }]],
  };
}

type Kind = 'file' | 'dir' | 'symlink' | 'hardlink';
const KINDS: Kind[] = ['file', 'dir', 'symlink', 'hardlink'];

function typeChanges(): Feature {
  const make = (kind: Kind, path: string, layer: number): Op[] => {
    switch (kind) {
      case 'file':
        return [{ op: 'file', path, content: `file in layer ${layer}\n` }];
      case 'dir':
        return [{ op: 'file', path: `${path}/child`, content: `child in layer ${layer}\n` }];
      case 'symlink':
        return [{ op: 'symlink', path, target: `anchor-${layer}` }];
      case 'hardlink':
        return [
          { op: 'file', path: `anchor-${layer}`, content: `anchor ${layer}\n` },
          { op: 'hardlink', path, target: `c/type-changes/anchor-${layer}` },
        ];
    }
  };
  const layers: Op[][] = [[], []];
  for (const from of KINDS) {
    for (const to of KINDS) {
      if (from === to) continue;
      layers[0]!.push(...make(from, `${from}-to-${to}`, 1));
      layers[1]!.push(...make(to, `${from}-to-${to}`, 2));
    }
  }
  return { id: 'type-changes', group: 'main', about: 'file/dir/symlink/hardlink replaced by each other kind in the next layer', layers };
}

/** Python-raw only: entries below parents that are (or became) symlinks or files, one feature each. */
function oddParents(): Feature[] {
  const odd = (id: string, about: string, raw: RawEntry[][]): Feature => ({ id, group: 'alone', applier: true, about, raw });
  const lower: RawEntry[] = [
    { name: 'target', type: 'dir' },
    { name: 'target/x', type: 'file', content: 'x under target\n' },
  ];
  return [
    odd('wh-under-new-symlink', 'a whiteout below a parent that became a symlink earlier in the same layer', [
      [...lower, { name: 'p', type: 'dir' }, { name: 'p/x', type: 'file', content: 'x under a dir\n' }],
      [
        { name: 'p', type: 'symlink', linkname: 'target' },
        { name: 'p/.wh.x', type: 'file' },
      ],
    ]),
    odd('wh-under-lower-symlink', 'a whiteout below a symlink of a lower layer (pointing at a directory)', [
      [...lower, { name: 'p', type: 'symlink', linkname: 'target' }],
      [{ name: 'p/.wh.x', type: 'file' }],
    ]),
    odd('entry-under-lower-symlink', 'a new file below a symlink of a lower layer (pointing at a directory)', [
      [...lower, { name: 'p', type: 'symlink', linkname: 'target' }],
      [{ name: 'p/new', type: 'file', content: 'written through a lower symlink\n' }],
    ]),
    odd('wh-under-file', 'a whiteout below a path that is a file in the lower layer', [
      [{ name: 'f', type: 'file', content: 'a file\n' }],
      [{ name: 'f/.wh.x', type: 'file' }],
    ]),
  ];
}

function rootOpaque(): Feature {
  return {
    id: 'root-opaque',
    group: 'alone',
    applier: true,
    about: '.wh..wh..opq at the image root',
    root: true,
    layers: [[{ op: 'file', path: 'old-top', content: 'old\n' }], [{ op: 'opaque', path: '.' }, { op: 'file', path: 'new-top', content: 'new\n' }]],
  };
}

function rootWhiteout(): Feature {
  return {
    id: 'root-whiteout',
    group: 'alone',
    applier: true,
    about: 'whiteouts at the image root (the base layer deleted)',
    root: true,
    layers: [[{ op: 'whiteout', path: 'base' }, { op: 'file', path: 'only', content: 'only\n' }]],
  };
}

/** Every feature; the CI slice leaves out those marked `full`. */
export function features(full: boolean): Feature[] {
  const all = [
    names(),
    longPaths(),
    deepTree(),
    utf8(),
    nonUtf8(),
    bigIds(),
    sparse(false),
    sparse(true),
    mtimes(),
    xattrs(),
    hardlinks(),
    devices(),
    modes(),
    whiteouts(),
    opaque(),
    recreate(),
    whiteoutAfterNew(),
    paxGlobal(),
    typeChanges(),
    ...oddParents(),
    rootOpaque(),
    rootWhiteout(),
  ];
  return all.filter((f) => full || !f.full);
}

/** The base layer every image starts from (so containerd's view of any image is an overlay mount). */
export const BASE_LAYER: Op[] = [
  { op: 'file', path: 'base/README', content: 'the shared base layer\n' },
  { op: 'dir', path: 'c' },
];

/** Prefixes a feature's ops with its directory (hardlink targets are already root-relative). */
export function placed(feature: Feature, ops: readonly Op[]): Op[] {
  if (feature.root) return [...ops];
  const dir = `c/${feature.id}`;
  const at = (p: RelPath): RelPath => (typeof p === 'string' ? (p === '.' ? dir : `${dir}/${p}`) : Buffer.concat([Buffer.from(`${dir}/`), p]));
  return ops.map((o) => ({ ...o, path: at(o.path) }) as Op);
}
