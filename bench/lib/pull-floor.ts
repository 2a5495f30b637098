/**
 * The least a Node process can do for bench:pull's copy, as a floor beside stratum and skopeo:
 * Node's own start, stratum's addon, one manifest GET, then the config and every layer received by
 * native/tls.c (`--concurrency` at a time, stratum's default 3), each body written to a file and
 * hashed in C, checked against its digest and fsynced. No CLI, no Engine, no content store (no
 * index, no ingest state, no lease), no retries, no auth: what is left of stratum's pull when every
 * part of it that is not moving and hashing bytes is taken away.
 *
 *   node dist/bench/lib/pull-floor.js [--ca FILE] [--concurrency N] BASE_URL TAG OUT_DIR
 *
 * BASE_URL is the repository's `https://HOST/v2/NAME/` (or http://); a blob GET answered with a
 * redirect is followed once (the redirect row). Exits 1 with one line on any failure.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { rawAddon } from '../../src/sys/addon.js';
import { NativeBody, NativeTlsContext, nativeGet, receiveBody, type NativeTlsResponse } from '../../src/registry/transport/native-tls.js';

interface BlobRef {
  digest: string;
  size: number;
}

const MANIFEST_TYPES = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

const { values, positionals } = parseArgs({ allowPositionals: true, options: { ca: { type: 'string' }, concurrency: { type: 'string', default: '3' } } });
const [base, tag, outDir] = positionals;
if (!base || !tag || !outDir) {
  process.stderr.write('usage: pull-floor.js [--ca FILE] [--concurrency N] BASE_URL TAG OUT_DIR\n');
  process.exit(2);
}
const ca = values.ca ? [readFileSync(values.ca, 'utf8')] : [];
const contexts = new Map<string, NativeTlsContext>();

function contextFor(url: URL): NativeTlsContext {
  let ctx = contexts.get(url.origin);
  if (!ctx) {
    ctx = new NativeTlsContext(url.protocol === 'http:' ? { plain: true } : { ca });
    contexts.set(url.origin, ctx);
  }
  return ctx;
}

/** GET with one redirect followed; the caller reads or receives the body. */
async function get(url: URL, headers: Record<string, string> = {}): Promise<NativeTlsResponse> {
  let res = await nativeGet(contextFor(url), url, { headers });
  if (res.status >= 300 && res.status < 400 && res.headers['location']) {
    rawAddon().tlsClose(res.conn);
    const target = new URL(res.headers['location'], url);
    res = await nativeGet(contextFor(target), target);
  }
  if (res.status !== 200) throw new Error(`GET ${url.href}: HTTP ${res.status}`);
  return res;
}

async function readAll(res: NativeTlsResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of new NativeBody(res.conn, res.contentLength, res.chunked)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function fetchBlob(blob: BlobRef): Promise<void> {
  const res = await get(new URL(`blobs/${blob.digest}`, base));
  const fd = openSync(join(outDir!, blob.digest.replace(':', '-')), 'w', 0o600);
  try {
    const digest = rawAddon().digestCreate(fd, 'sha256', true);
    const bytes = await receiveBody(res, digest);
    const hex = rawAddon().digestFinal(digest).replace(/^sha256:/, '');
    if (bytes !== blob.size || `sha256:${hex}` !== blob.digest) throw new Error(`blob ${blob.digest}: got ${bytes} bytes hashing to sha256:${hex}`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function main(): Promise<void> {
  mkdirSync(outDir!, { recursive: true });
  const manifest = JSON.parse((await readAll(await get(new URL(`manifests/${tag}`, base), { Accept: MANIFEST_TYPES }))).toString('utf8')) as { config: BlobRef; layers: BlobRef[] };
  const queue = [manifest.config, ...manifest.layers];
  const worker = async (): Promise<void> => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) await fetchBlob(blob);
  };
  await Promise.all(Array.from({ length: Math.max(1, Number(values.concurrency)) }, worker));
  for (const ctx of contexts.values()) ctx.closeIdle();
}

main().catch((err: unknown) => {
  process.stderr.write(`pull-floor: ${(err as Error).message ?? err}\n`);
  process.exit(1);
});
