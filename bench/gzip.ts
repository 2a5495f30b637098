/**
 * Measures gzip decompression of a real layer with node:zlib against pako (the design card's
 * choice), streaming both from disk. The layer is a tar of this machine's /usr/lib and
 * /usr/share (real files), built once under .bench/.
 * Run: npm run build && node dist/bench/gzip.js
 */
import { createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import pako from 'pako';

const dir = '.bench';
const layer = `${dir}/real-layer.tar.gz`;
mkdirSync(dir, { recursive: true });
if (!existsSync(layer)) {
  execFileSync('bash', ['-c', `tar -C / -cf - usr/lib usr/share 2>/dev/null | head -c 300000000 | gzip -6 > ${layer}`]);
}
const compressed = statSync(layer).size;

async function zlibRun(): Promise<number> {
  let out = 0;
  await pipeline(createReadStream(layer, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: 256 * 1024 }), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) out += c.length;
  });
  return out;
}

async function pakoRun(): Promise<number> {
  let out = 0;
  const inflate = new pako.Inflate({ chunkSize: 256 * 1024 });
  inflate.onData = (chunk: Uint8Array) => {
    out += chunk.length;
  };
  for await (const c of createReadStream(layer, { highWaterMark: 1 << 20 })) inflate.push(c as Buffer, false);
  inflate.push(new Uint8Array(0), true);
  if (inflate.err) throw new Error(`pako: ${inflate.msg}`);
  return out;
}

async function time(fn: () => Promise<number>): Promise<{ ms: number; bytes: number }> {
  const start = process.hrtime.bigint();
  const bytes = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, bytes };
}

const results: Record<string, number[]> = { 'node:zlib': [], pako: [] };
let uncompressed = 0;
for (let i = 0; i < 3; i++) {
  for (const [name, fn] of [['node:zlib', zlibRun], ['pako', pakoRun]] as const) {
    const r = await time(fn);
    uncompressed = r.bytes;
    results[name]!.push(r.ms);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`layer: ${(compressed / 1e6).toFixed(1)} MB gzip, ${(uncompressed / 1e6).toFixed(1)} MB tar`);
for (const [name, runs] of Object.entries(results)) {
  const ms = median(runs);
  console.log(`${name.padEnd(10)} ${ms.toFixed(0).padStart(6)} ms  ${(uncompressed / 1e6 / (ms / 1000)).toFixed(0)} MB/s (uncompressed)`);
}
console.log(`ratio pako/zlib: ${(median(results.pako!) / median(results['node:zlib']!)).toFixed(2)}x`);
