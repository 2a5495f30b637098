// Helpers shared by the content-store tests: child processes, temp dirs, a tiny real image.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { OciStore } from '../../src/content/store.js';
import type { Descriptor } from '../../src/oci/types.js';

/** Deterministic pseudo-random bytes, so parent and child agree on content without sharing a file. */
export function patternBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `stratum-${prefix}-`));
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

const CHILD_SCRIPT = new URL('./store-child.js', import.meta.url).pathname;

export interface Child {
  process: ChildProcess;
  /** Resolves with the first JSON line the child prints. */
  firstReport: Promise<unknown>;
  /** Resolves when the child exits: its exit code (null when killed), stdout lines, stderr. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; reports: unknown[]; stderr: string }>;
}

export function startChild(args: string[]): Child {
  const child = spawn(process.execPath, [CHILD_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const reports: unknown[] = [];
  let stdout = '';
  let stderr = '';
  let resolveFirst!: (v: unknown) => void;
  let rejectFirst!: (e: Error) => void;
  const firstReport = new Promise<unknown>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    let nl;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      const value = JSON.parse(line) as unknown;
      reports.push(value);
      if (reports.length === 1) resolveFirst(value);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; reports: unknown[]; stderr: string }>((resolve) => {
    child.on('exit', (code, signal) => {
      if (reports.length === 0) rejectFirst(new Error(`child ${args[0]} exited (${code ?? signal}) without reporting: ${stderr}`));
      resolve({ code, signal, reports, stderr });
    });
  });
  return { process: child, firstReport, exit };
}

/** Every file under `dir` with its size, relative paths sorted: a cheap "nothing changed" snapshot. */
export async function treeSnapshot(dir: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const name of await readdir(join(dir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const st = await lstat(join(dir, r));
      if (st.isDirectory()) {
        out.push(`${r}/`);
        await walk(r);
      } else out.push(`${r} ${st.size}`);
    }
  }
  await walk('');
  return out.sort();
}

export interface TinyImageFile {
  path: string;
  content?: string;
  linkname?: string;
  type: 'file' | 'directory' | 'symlink';
}

export const TINY_IMAGE_FILES: TinyImageFile[] = [
  { path: 'etc', type: 'directory' },
  { path: 'etc/hello.txt', type: 'file', content: 'hello from stratum\n' },
  { path: 'usr', type: 'directory' },
  { path: 'usr/share', type: 'directory' },
  { path: 'usr/share/data.bin', type: 'file', content: 'x'.repeat(5000) },
  { path: 'etc/greeting', type: 'symlink', linkname: 'hello.txt' },
];

export async function tarOf(files: TinyImageFile[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const mtime = new Date('2024-01-01T00:00:00Z');
  for (const f of files) {
    if (f.type === 'file') pack.entry({ name: f.path, type: 'file', mode: 0o644, mtime }, f.content ?? '');
    else if (f.type === 'directory') pack.entry({ name: f.path, type: 'directory', mode: 0o755, mtime });
    else pack.entry({ name: f.path, type: 'symlink', linkname: f.linkname ?? '', mode: 0o777, mtime });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface TinyImage {
  manifest: Descriptor;
  config: Descriptor;
  layer: Descriptor;
}

/** Puts a one-layer OCI image (gzip layer, config, manifest) into the store; tags nothing. */
export async function putTinyImage(store: OciStore, files: TinyImageFile[] = TINY_IMAGE_FILES, label = 'tiny'): Promise<TinyImage> {
  const tarBytes = await tarOf(files);
  const layerBytes = gzipSync(tarBytes);
  const layer: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: digestOf(layerBytes), size: layerBytes.length };
  await store.put(layerBytes, layer.digest);
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Labels: { 'dev.stratum.test': label } },
      rootfs: { type: 'layers', diff_ids: [digestOf(tarBytes)] },
      history: [{ created: '2024-01-01T00:00:00Z', created_by: 'stratum test' }],
    }),
  );
  const config: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(configBytes), size: configBytes.length };
  await store.put(configBytes, config.digest);
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }));
  const manifest: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(manifestBytes), size: manifestBytes.length };
  await store.put(manifestBytes, manifest.digest);
  return { manifest, config, layer };
}
