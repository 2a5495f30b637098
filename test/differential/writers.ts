/**
 * The real tar writers of the corpus: each turns staged layer directories into an OCI image
 * layout (tag `1`) whose layers it wrote itself. GNU tar, bsdtar and Python's tarfile write one
 * tar per staged directory; umoci (Go's archive/tar) inserts each directory as a new layer.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Digest } from '../../src/oci/digest.js';
import { ociLayerMediaType, type BuiltLayer } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import type { RawEntry } from './features.js';

const run = promisify(execFile);
export const CORPUS_TAG = '1';

/** One layer to write: a staged directory, or (python-raw) explicit entries. */
export type LayerSource = { staged: string; paxGlobal?: boolean } | { raw: RawEntry[]; mtime: number };

/** What a PAX global header holds where a feature asks for one (uid: POSIX says it applies to every later entry). */
export const PAX_GLOBAL = { comment: 'stratum differential corpus', uid: '4242' };

export interface Writer {
  id: string;
  /** Why it cannot run here, or undefined. */
  missing(): string | undefined;
  /** Whether it writes layers from explicit entries (python-raw) rather than staged directories. */
  raw?: boolean;
  /** Whether it can start a layer with a PAX global header. */
  paxGlobal?: boolean;
  /** Runs only these features (a writer variant that shows one thing). */
  only?: readonly string[];
  /** In the CI slice, runs only these features (a variant that differs from another writer only there). */
  ciOnly?: readonly string[];
  /** Writes the layers (oldest first) as an OCI layout in `dir` under tag CORPUS_TAG. */
  image(layers: LayerSource[], dir: string): Promise<void>;
}

/** What a writer printed when it failed or complained: the table shows it as `writer refused`. */
export class WriterError extends Error {}

async function tool(bin: string, args: string[], opts: { cwd?: string; input?: string; okCodes?: number[] } = {}): Promise<void> {
  try {
    await run(bin, args, { cwd: opts.cwd, maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { code?: number; stderr?: string; message: string };
    // GNU tar exits 1 when "some files differ" / changed as read, 2 on fatal: only 2+ is a refusal
    if (typeof e.code === 'number' && opts.okCodes?.includes(e.code)) return;
    throw new WriterError(`${bin} ${args.join(' ').slice(0, 200)}: ${(e.stderr || e.message).trim().slice(0, 600)}`);
  }
}

async function sha256File(path: string): Promise<Digest> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return `sha256:${h.digest('hex')}` as Digest;
}

/** An uncompressed tar file as a layer (digest = diffID). */
async function tarLayer(path: string): Promise<BuiltLayer> {
  const digest = await sha256File(path);
  return { path, digest, diffId: digest, size: (await stat(path)).size, compression: 'none', mediaType: ociLayerMediaType('none') };
}

/** A writer that writes one tar per layer with `writeTar(source, outPath)`. */
function perLayer(
  id: string,
  missing: () => string | undefined,
  writeTar: (source: LayerSource, out: string) => Promise<void>,
  can: { raw?: boolean; paxGlobal?: boolean; ciOnly?: readonly string[] } = {},
): Writer {
  return {
    id,
    missing,
    ...can,
    async image(layers, dir) {
      const tars = join(dir, 'tars');
      await mkdir(tars, { recursive: true });
      const built: BuiltLayer[] = [];
      for (const [i, source] of layers.entries()) {
        const out = join(tars, `layer-${i}.tar`);
        await writeTar(source, out);
        built.push(await tarLayer(out));
      }
      await writeOciLayout(join(dir, 'layout'), [{ tag: CORPUS_TAG, layers: built, createdBy: built.map((_, i) => `${id} layer ${i}`) }]);
    },
  };
}

const needs = (...bins: string[]) => () => bins.map((b) => (existsSync(b) ? undefined : `${b} is not installed`)).find(Boolean);
const staged = (s: LayerSource) => {
  if (!('staged' in s)) throw new Error('this writer archives staged directories');
  return s.staged;
};

function gnuTar(format: 'gnu' | 'oldgnu' | 'posix' | 'ustar' | 'v7', sparse: boolean): Writer {
  const args = [`--format=${format}`, '--sort=name', '--numeric-owner'];
  // GNU tar keeps xattrs only in PAX records
  if (format === 'posix') args.push('--xattrs', '--xattrs-include=*');
  if (sparse) args.push('--sparse');
  // --pax-option keyword=value (no colon) goes to a global header
  const global = `--pax-option=${Object.entries(PAX_GLOBAL).map(([k, v]) => `${k}=${v}`).join(',')}`;
  return perLayer(
    `gnutar-${format}${sparse ? '-sparse' : ''}`,
    needs('/usr/bin/tar'),
    (s, out) => tool('/usr/bin/tar', ['-C', staged(s), ...args, ...('staged' in s && s.paxGlobal ? [global] : []), '-cf', out, '.'], { okCodes: [1] }),
    { paxGlobal: format === 'posix', ...(sparse ? { ciOnly: ['sparse'] } : {}) },
  );
}

/** `paxr` is libarchive's restricted pax: ustar headers, PAX records only where needed. */
function bsdtar(format: 'pax' | 'ustar' | 'gnutar' | 'paxr'): Writer {
  // bsdtar reads and stores xattrs by default where the format can hold them
  return perLayer(`bsdtar-${format}`, needs('/usr/bin/bsdtar'), (s, out) =>
    tool('/usr/bin/bsdtar', ['-C', staged(s), '--format', format, '--numeric-owner', '--xattrs', '-cf', out, '.']),
  );
}

/** Walks the staged dir in sorted byte order; tarfile finds hardlinks by inode, reads xattrs for PAX. */
const PYTHON_STAGED = String.raw`
import os, sys, tarfile
import json
src, out, fmt, glob = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
format = {'ustar': tarfile.USTAR_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'pax': tarfile.PAX_FORMAT}[fmt]
kw = {'pax_headers': glob} if glob else {}
os.chdir(src)
with tarfile.open(out, 'w', format=format, **kw) as tf:
    def add(rel):
        path = os.fsdecode(rel)
        ti = tf.gettarinfo(path, arcname=path)
        if fmt == 'pax':
            for name in os.listxattr(rel, follow_symlinks=False):
                value = os.getxattr(rel, name, follow_symlinks=False)
                ti.pax_headers['SCHILY.xattr.' + name] = value.decode('utf-8', 'surrogateescape')
        if ti.isreg():
            with open(rel, 'rb') as f:
                tf.addfile(ti, f)
        else:
            tf.addfile(ti)
    def walk(rel):
        for name in sorted(os.listdir(rel)):
            p = name if rel == b'.' else rel + b'/' + name
            add(p)
            if os.path.isdir(p) and not os.path.islink(p):
                walk(p)
    walk(b'.')
`;

function pythonStaged(format: 'ustar' | 'gnu' | 'pax'): Writer {
  return perLayer(
    `python-${format}`,
    needs('/usr/bin/python3'),
    (s, out) => tool('/usr/bin/python3', ['-c', PYTHON_STAGED, staged(s), out, format, JSON.stringify('staged' in s && s.paxGlobal ? PAX_GLOBAL : null)]),
    { paxGlobal: format === 'pax' },
  );
}

/** Explicit entries from a JSON list, in the order given (PAX format). */
const PYTHON_RAW = String.raw`
import io, json, sys, tarfile
out, spec = sys.argv[1], json.load(open(sys.argv[2]))
kinds = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE}
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as tf:
    for e in spec['entries']:
        ti = tarfile.TarInfo(e['name'])
        ti.type = kinds[e['type']]
        ti.mode = e.get('mode', 0o755 if e['type'] == 'dir' else 0o644)
        ti.mtime = e.get('mtime', spec['mtime'])
        ti.linkname = e.get('linkname', '')
        data = e.get('content', '').encode()
        ti.size = len(data) if e['type'] == 'file' else 0
        tf.addfile(ti, io.BytesIO(data) if ti.size else None)
`;

function pythonRaw(): Writer {
  return perLayer(
    'python-raw',
    needs('/usr/bin/python3'),
    async (s, out) => {
      if (!('raw' in s)) throw new Error('python-raw writes explicit entries');
      const spec = `${out}.json`;
      await writeFile(spec, JSON.stringify({ entries: s.raw, mtime: s.mtime }));
      await tool('/usr/bin/python3', ['-c', PYTHON_RAW, out, spec]);
    },
    { raw: true },
  );
}

/**
 * Go's archive/tar through umoci: `umoci new`, then `umoci insert` of each top-level entry of a
 * staged directory (umoci's own layer generator walks it) as one layer each, then `skopeo copy`
 * of the layout (the copy a registry push makes). With `atRoot`, each staged directory is
 * inserted whole at `/`: umoci then writes the root itself as an entry named `/`.
 */
function umociInsert(atRoot: boolean): Writer {
  return {
    id: atRoot ? 'umoci-insert-root' : 'umoci-insert',
    missing: needs('/usr/bin/umoci', '/usr/bin/skopeo'),
    ...(atRoot ? { only: ['utf8'] } : {}),
    async image(layers, dir) {
      const work = join(dir, 'umoci');
      const image = `${work}:${CORPUS_TAG}`;
      await tool('/usr/bin/umoci', ['init', '--layout', work]);
      await tool('/usr/bin/umoci', ['new', '--image', image]);
      for (const s of layers) {
        const top = atRoot ? [''] : (await readdir(staged(s))).sort();
        for (const name of top) await tool('/usr/bin/umoci', ['insert', '--image', image, join(staged(s), name), `/${name}`]);
      }
      await tool('/usr/bin/skopeo', ['--insecure-policy', 'copy', '--quiet', '--format', 'oci', `oci:${work}:${CORPUS_TAG}`, `oci:${join(dir, 'layout')}:${CORPUS_TAG}`]);
    },
  };
}

/** Every writer of the corpus, in table order. */
export function writers(): Writer[] {
  return [
    gnuTar('gnu', false),
    gnuTar('oldgnu', false),
    gnuTar('posix', false),
    gnuTar('ustar', false),
    gnuTar('v7', false),
    gnuTar('gnu', true),
    gnuTar('posix', true),
    bsdtar('pax'),
    bsdtar('ustar'),
    bsdtar('gnutar'),
    bsdtar('paxr'),
    pythonStaged('ustar'),
    pythonStaged('gnu'),
    pythonStaged('pax'),
    pythonRaw(),
    umociInsert(false),
    umociInsert(true),
  ];
}
