/**
 * Issue 12 experiment: the 6 layers of bench/big:1 from a TLS registry, concurrency 3, each into
 * a file + sha256, by (a) `native`: native/tls.c (socket → OpenSSL → file + hash on the pool),
 * (b) `undici`: today's path (Transport pool → undici body chunks → DigestWriter). Prints one JSON
 * line: wall and CPU of the download phase (process.cpuUsage) and whether every digest matched.
 *
 *   node dist/bench/native-tls-probe.js native|undici [registry=https://127.0.0.1:5443] [ca=/work/tls/ca.crt]
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { rawAddon } from '../src/sys/addon.js';
import { createDigestWriter } from '../src/sys/native.js';
import { NativeTlsContext, nativeGet, receiveBody } from '../src/registry/transport/native-tls.js';
import { Transport } from '../src/registry/transport/transport.js';
import { request } from '../src/registry/http.js';

const mode = process.argv[2] ?? 'native';
const registry = new URL(process.argv[3] ?? 'https://127.0.0.1:5443');
const caPath = process.argv[4] ?? '/work/tls/ca.crt';
const repo = 'bench/big';
const tag = '1';
const concurrency = 3;
const out = `/tmp/i12-probe-${mode}-${process.pid}`;
const accept = 'application/vnd.oci.image.manifest.v1+json';

interface Layer {
  digest: string;
  size: number;
}

async function main(): Promise<void> {
  const caPem = readFileSync(caPath, 'utf8');
  // The manifest over plain fetch-free https (Node's own stack) so both variants share the start.
  const layers = await manifestLayers(caPem);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let results: string[];
  if (mode === 'native') results = await runNative(layers, caPem);
  else if (mode === 'undici') results = await runUndici(layers, caPem);
  else throw new Error(`unknown mode ${mode}`);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const ok = layers.every((l, i) => `sha256:${results[i]}` === l.digest);
  rmSync(out, { recursive: true, force: true });
  const bytes = layers.reduce((n, l) => n + l.size, 0);
  console.log(JSON.stringify({ mode, bytes, wallS: +wall.toFixed(3), userS: +(cpu.user / 1e6).toFixed(3), sysS: +(cpu.system / 1e6).toFixed(3), cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(3), digestsOk: ok }));
  if (!ok) process.exitCode = 1;
}

async function manifestLayers(caPem: string): Promise<Layer[]> {
  const https = await import('node:https');
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get(new URL(`/v2/${repo}/manifests/${tag}`, registry), { ca: [caPem], headers: { accept } }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (s += c));
        res.on('end', () => resolve(s));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  return (JSON.parse(body) as { layers: Layer[] }).layers;
}

async function pool<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<string>): Promise<string[]> {
  const results: string[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}

async function runNative(layers: Layer[], caPem: string): Promise<string[]> {
  const raw = rawAddon();
  const ctx = new NativeTlsContext({ ca: [...rootCertificates, caPem] });
  return pool(layers, concurrency, async (layer) => {
    let url = new URL(`/v2/${repo}/blobs/${layer.digest}`, registry);
    for (let hops = 0; ; hops++) {
      const res = await nativeGet(ctx, url);
      if (res.status >= 300 && res.status < 400 && res.headers.location && hops < 5) {
        raw.tlsClose(res.conn);
        url = new URL(res.headers.location, url); // a storage host would get its own context (route) in the real thing
        continue;
      }
      if (res.status !== 200) {
        raw.tlsClose(res.conn);
        throw new Error(`GET ${url.href}: ${res.status}`);
      }
      const fd = openSync(`${out}/${layer.digest.slice(7)}`, 'w', 0o644);
      try {
        const h = raw.digestCreate(fd, 'sha256', true, `${out}/${layer.digest.slice(7)}`);
        const n = await receiveBody(res, h);
        if (n !== layer.size) throw new Error(`size ${n} != ${layer.size}`);
        return raw.digestFinal(h);
      } finally {
        closeSync(fd);
      }
    }
  });
}

async function runUndici(layers: Layer[], caPem: string): Promise<string[]> {
  // Today's path: the real Transport (certs.d CA for this host → Node roots + it), undici Pool, DigestWriter behind a corked Writable.
  const certsD = `/tmp/i12-probe-certs-${process.pid}`;
  mkdirSync(`${certsD}/${registry.host}`, { recursive: true });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(`${certsD}/${registry.host}/ca.crt`, caPem);
  const transport = new Transport({
    certsDirs: [certsD],
    isInsecure: () => false,
    connections: concurrency,
    keepAliveTimeoutMs: 30_000,
    headersTimeoutMs: 30_000,
    bodyTimeoutMs: 30_000,
    connectTimeoutMs: 30_000,
  });
  try {
    return await pool(layers, concurrency, async (layer) => {
      const url = new URL(`/v2/${repo}/blobs/${layer.digest}`, registry);
      const res = await request(url, { dispatcher: transport });
      if (res.statusCode !== 200) throw new Error(`GET ${url.href}: ${res.statusCode}`);
      const path = `${out}/${layer.digest.slice(7)}`;
      const fd = openSync(path, 'w', 0o644);
      try {
        const writer = createDigestWriter(fd, 'sha256', { dropBehind: true, name: path });
        let corked = false;
        const sink = new Writable({
          highWaterMark: 1 << 20,
          write: (chunk: Buffer, _e, cb) => writer.write([chunk]).then(() => cb(), cb),
          writev: (chunks, cb) => writer.write(chunks.map((c) => c.chunk as Buffer)).then(() => cb(), cb),
        });
        const uncork = () => {
          corked = false;
          sink.uncork();
        };
        async function* corking(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
          for await (const chunk of body) {
            if (!corked) {
              corked = true;
              sink.cork();
              setImmediate(uncork);
            }
            yield chunk;
          }
        }
        await pipeline(corking(res.body), sink);
        if (writer.bytes !== layer.size) throw new Error(`size ${writer.bytes} != ${layer.size}`);
        return writer.digest();
      } finally {
        closeSync(fd);
      }
    });
  } finally {
    await transport.close();
    rmSync(certsD, { recursive: true, force: true });
  }
}

await main();
