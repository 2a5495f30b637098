/**
 * Real tar writers and GNU tar as the reference extractor, for tests that compare stratum's
 * unpacking of an archive with GNU tar's unpacking of the same archive.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { applyLayer } from '../../src/unpack/apply.js';
import type { UnpackLimits } from '../../src/unpack/types.js';
import type { TempDirs } from './tmp.js';
import { assertSameTree, snapshotTree } from './tree.js';

const exec = promisify(execFile);

/** Runs a command; the rejection carries its stderr. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  const child = exec(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20 });
  if (opts.input !== undefined) child.child.stdin!.end(opts.input);
  const { stdout } = await child;
  return stdout;
}

/** Why a test cannot run: the first of `tools` whose `--version` fails, as a loud skip reason. */
export async function missingTool(...tools: string[]): Promise<string | undefined> {
  for (const tool of tools) {
    try {
      await exec(tool, ['--version']);
    } catch {
      return `LOUD SKIP: ${tool} is not installed (scripts/install-deps.sh installs it)`;
    }
  }
  return undefined;
}

/** GNU tar's extraction, as root: numeric owners, modes as stored. */
export async function gnuTarExtract(archive: string, dir: string, extra: string[] = []): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('tar', ['-xf', archive, '-C', dir, '--numeric-owner', '--same-owner', '--same-permissions', ...extra]);
}

/** stratum's extraction of a plain tar into a fresh root. */
export async function stratumExtract(archive: string, root: string, opts: { mode?: 'full' | 'overlay'; limits?: UnpackLimits } = {}) {
  await mkdir(root, { recursive: true });
  return applyLayer(createReadStream(archive), root, { mode: opts.mode ?? 'full', subject: `test layer ${archive}`, ...(opts.limits ? { limits: opts.limits } : {}) });
}

/**
 * Unpacks `archive` with stratum (full mode) and with GNU tar into fresh directories and asserts
 * the two trees are the same, mtimes included unless `mtimes: false`. Returns both directories.
 * `dirMtimes: false` for archives not in depth-first order (bsdtar lists a directory's
 * subdirectories before descending): GNU tar sets a directory's time as soon as an entry outside
 * it comes, and entries written into it later change it again; stratum (like docker and
 * containerd) sets directory times at the end.
 */
export async function assertUnpacksLikeGnuTar(archive: string, tmp: TempDirs, opts: { dirMtimes?: boolean; mtimes?: boolean } = {}): Promise<{ root: string; ref: string }> {
  const base = await tmp.make('vs-gnu-tar');
  const root = join(base, 'stratum');
  const ref = join(base, 'gnu-tar');
  await stratumExtract(archive, root);
  await gnuTarExtract(archive, ref);
  const snap = async (dir: string) => {
    const entries = await snapshotTree(dir);
    if (opts.dirMtimes === false) for (const e of entries) if (e.type === 'dir') e.mtimeNs = '0';
    return entries;
  };
  assertSameTree(await snap(root), await snap(ref), { names: ['stratum', 'GNU tar'], ignore: (p) => p === '.', mtimes: opts.mtimes ?? true });
  return { root, ref };
}

export interface PyEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  data?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds; a fraction makes the PAX format write an mtime record. */
  mtime?: number;
}

const PY_WRITER = `
import io, json, sys, tarfile
spec = json.load(sys.stdin)
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[spec['format']]
types = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE}
refused = []
def info(e):
    ti = tarfile.TarInfo(e['name'])
    ti.type = types[e['type']]
    ti.mode = e.get('mode', 0o755 if e['type'] == 'dir' else 0o644)
    ti.uid = e.get('uid', 0)
    ti.gid = e.get('gid', 0)
    ti.mtime = e.get('mtime', 1700000000)
    ti.linkname = e.get('linkname', '')
    ti.size = e.get('size', len(e.get('data', '').encode()))
    return ti
if spec.get('headerOnly'):
    sys.stdout.buffer.write(info(spec['entries'][0]).tobuf(fmt, 'utf-8', 'surrogateescape'))
    sys.exit(0)
with tarfile.open(spec['out'], 'w', format=fmt, pax_headers=spec.get('globalHeaders', {})) as t:
    for e in spec['entries']:
        ti = info(e)
        try:
            t.addfile(ti, io.BytesIO(e.get('data', '').encode()) if e['type'] == 'file' else None)
        except ValueError as err:
            refused.append(e['name'][:60] + ': ' + str(err))
print(json.dumps(refused))
`;

/** Writes `entries` with python3's tarfile in `format`; returns the entries tarfile refused (too long for the format), as messages. */
export async function pythonTar(out: string, format: 'pax' | 'gnu' | 'ustar', entries: PyEntry[], globalHeaders?: Record<string, string>): Promise<string[]> {
  const stdout = await run('python3', ['-c', PY_WRITER], { input: JSON.stringify({ out, format, entries, globalHeaders }) });
  return JSON.parse(stdout) as string[];
}

/** The header block(s) python3's tarfile writes for one entry (no data): for sizes too big to write out. */
export async function pythonHeader(format: 'pax' | 'gnu' | 'ustar', entry: PyEntry & { size?: number }): Promise<Buffer> {
  const child = execFile('python3', ['-c', PY_WRITER], { encoding: 'buffer', maxBuffer: 1 << 20 });
  child.stdin!.end(JSON.stringify({ format, entries: [entry], headerOnly: true }));
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`python3 exited ${code}`)))));
  return Buffer.concat(chunks);
}
