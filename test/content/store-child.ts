// A second (third, …) process for the store and lock tests: each command does one thing the
// parent test needs to happen in another process and reports on stdout as one JSON line.
import { createHash } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireFileLock } from '../../src/content/lock.js';
import { OciStore } from '../../src/content/store.js';
import { parseDigest } from '../../src/oci/digest.js';
import type { Descriptor } from '../../src/oci/types.js';
import { patternBytes } from './store-fixtures.js';

const [command, ...args] = process.argv.slice(2);

function report(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

async function writeInChunks(w: NodeJS.WritableStream & { write(b: Buffer): boolean }, data: Buffer, chunks: number, delayMs: number): Promise<void> {
  const step = Math.ceil(data.length / chunks);
  for (let off = 0; off < data.length; off += step) {
    if (!w.write(data.subarray(off, off + step))) await new Promise((r) => w.once('drain', r));
    if (delayMs > 0) await sleep(delayMs);
  }
  await new Promise<void>((resolve, reject) => {
    w.end(() => resolve());
    w.once('error', reject);
  });
}

async function main(): Promise<void> {
  switch (command) {
    case 'lock-hold': {
      // Acquire, announce, then wait to be killed.
      const [path] = args as [string];
      await acquireFileLock(path);
      report({ locked: true, pid: process.pid });
      setInterval(() => {}, 1000);
      return;
    }
    case 'lock-mutex': {
      // Acquire, log enter/exit around a short critical section, release.
      const [path, log, rounds] = args as [string, string, string];
      for (let i = 0; i < Number(rounds); i++) {
        const release = await acquireFileLock(path, { pollMs: 2, maxPollMs: 20 });
        appendFileSync(log, `enter ${process.pid}\n`);
        await sleep(5);
        appendFileSync(log, `exit ${process.pid}\n`);
        await release();
      }
      report({ done: true });
      return;
    }
    case 'ingest': {
      // Ingest `size` pattern bytes slowly; leave a marker file if this process wrote the blob.
      const [root, seed, size, markerDir] = args as [string, string, string, string];
      const data = patternBytes(seed, Number(size));
      const digest = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
      const store = await OciStore.open(root);
      const writer = await store.ingest(digest, { expectedSize: data.length });
      if (writer === null) {
        report({ wrote: false, info: await store.info(digest) });
        return;
      }
      writeFileSync(`${markerDir}/wrote-${process.pid}`, '');
      await writeInChunks(writer.stream(), data.subarray(writer.offset), 20, 15);
      report({ wrote: true, info: await writer.commit() });
      return;
    }
    case 'ingest-hang': {
      // Write the first `partial` bytes of the blob, announce, then hang until SIGKILL.
      const [root, seed, size, partial] = args as [string, string, string, string];
      const data = patternBytes(seed, Number(size));
      const digest = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
      const store = await OciStore.open(root);
      const writer = await store.ingest(digest);
      if (writer === null) throw new Error('blob unexpectedly present');
      const stream = writer.stream();
      await new Promise<void>((resolve, reject) => stream.write(data.subarray(0, Number(partial)), (err) => (err ? reject(err) : resolve())));
      report({ written: Number(partial) });
      setInterval(() => {}, 1000);
      return;
    }
    case 'settag': {
      const [root, prefix, count, descriptorJson] = args as [string, string, string, string];
      const store = await OciStore.open(root);
      const descriptor = JSON.parse(descriptorJson) as Descriptor;
      for (let i = 0; i < Number(count); i++) await store.setTag(`${prefix}:${i}`, descriptor);
      report({ done: true });
      return;
    }
    default:
      throw new Error(`unknown command ${command}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
