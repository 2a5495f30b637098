import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadNative, type NativeBinding } from '../../src/sys/native.js';
import { cachedBytes as cached, MiB, pageCacheUntestable } from '../helpers/page-cache.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
let native: NativeBinding;
before(() => {
  native = loadNative();
});

/** Random data cut into random-sized chunks (some empty), grouped the way a Writable's writev hands them over. */
function chunked(data: Buffer): Buffer[][] {
  const groups: Buffer[][] = [];
  let at = 0;
  while (at < data.length) {
    const group: Buffer[] = [];
    for (let i = 0, n = 1 + Math.floor(Math.random() * 12); i < n && at < data.length; i++) {
      const len = Math.random() < 0.05 ? 0 : Math.floor(Math.random() * 70_000);
      group.push(data.subarray(at, at + len));
      at += len;
    }
    groups.push(group);
  }
  return groups;
}

describe('DigestWriter', () => {
  for (const algorithm of ['sha256', 'sha512'] as const) {
    test(`${algorithm}: digest equals node:crypto's, file equals the data, bytes counted`, async () => {
      const file = join(await tmp.make('sys-digest'), 'blob');
      const data = randomBytes(6 << 20);
      const fd = openSync(file, 'a');
      try {
        const w = native.createDigestWriter(fd, algorithm);
        for (const group of chunked(data)) await w.write(group);
        assert.equal(w.bytes, data.length);
        assert.equal(w.digest(), createHash(algorithm).update(data).digest('hex'));
      } finally {
        closeSync(fd);
      }
      assert.ok(readFileSync(file).equals(data));
    });
  }

  test('a resumed ingest: update() re-hashes the prefix on disk, write() appends the rest', async () => {
    const file = join(await tmp.make('sys-digest'), 'partial');
    const data = randomBytes(3 << 20);
    const cut = 1_234_567;
    writeFileSync(file, data.subarray(0, cut));
    const fd = openSync(file, 'a');
    try {
      const w = native.createDigestWriter(fd, 'sha256');
      const prefix = readFileSync(file);
      await w.update([prefix.subarray(0, 1000), prefix.subarray(1000)]);
      for (const group of chunked(data.subarray(cut))) await w.write(group);
      assert.equal(w.bytes, data.length);
      assert.equal(w.digest(), createHash('sha256').update(data).digest('hex'));
    } finally {
      closeSync(fd);
    }
    assert.ok(readFileSync(file).equals(data));
  });

  test('misuse is refused: overlapping calls, digest twice, an unknown algorithm', async () => {
    const w = native.createDigestWriter(-1, 'sha256');
    const first = w.update([randomBytes(1 << 20)]);
    await assert.rejects(w.update([Buffer.from('x')]), { code: 'ERR_INVALID_ARGUMENT', message: /await/ });
    await first;
    await assert.rejects(w.write([Buffer.from('x')]), { code: 'ERR_INVALID_ARGUMENT', message: /no file descriptor/ });
    w.digest();
    assert.throws(() => w.digest(), { code: 'ERR_INVALID_ARGUMENT', message: /already called/ });
    assert.throws(() => native.createDigestWriter(-1, 'md5' as 'sha256'), { code: 'ERR_INVALID_ARGUMENT', message: /md5/ });
  });

  test('a failed write rejects with the errno and poisons the digest', async () => {
    const file = join(await tmp.make('sys-digest'), 'ro');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    try {
      const w = native.createDigestWriter(fd, 'sha256');
      await assert.rejects(w.write([Buffer.from('data')]), (err: any) => err.code === 'ERR_APPLY' && err.errnoName === 'EBADF');
      assert.throws(() => w.digest(), /failed/);
    } finally {
      closeSync(fd);
    }
  });
});

describe('DigestWriter drop-behind: a blob leaves the page cache as it is written', () => {

  test('a 64 MiB blob written with dropBehind keeps at most a few windows cached, and its digest is right', async (t) => {
    const dir = await tmp.make('sys-digest-drop');
    const why = pageCacheUntestable(dir);
    if (why) return t.skip(`LOUD SKIP: ${why}`);
    const data = randomBytes(64 * MiB);
    const results: Record<string, number> = {};
    for (const dropBehind of [false, true]) {
      const file = join(dir, `blob-${dropBehind}`);
      const fd = openSync(file, 'w');
      const writer = native.createDigestWriter(fd, 'sha256', { dropBehind });
      for (let at = 0; at < data.length; at += MiB) await writer.write([data.subarray(at, at + MiB)]);
      assert.equal(writer.digest(), createHash('sha256').update(data).digest('hex'));
      closeSync(fd);
      results[String(dropBehind)] = cached(file);
      assert.deepEqual(readFileSync(file).equals(data), true);
    }
    assert.ok(results.false! > 48 * MiB, `without drop-behind the blob stays cached (${results.false} bytes)`);
    assert.ok(results.true! <= 24 * MiB, `with drop-behind at most ~3 windows stay cached, got ${results.true} bytes`);
  });
});

describe('batchPoolThreads', () => {
  /** Scheduling policy (field 41 of /proc/…/stat: 0 normal, 3 batch) of each of this process's threads. */
  const script = (batch: boolean) => `
    import { readdirSync, readFileSync } from 'node:fs';
    import { loadNative } from ${JSON.stringify(new URL('../../src/sys/native.js', import.meta.url).href)};
    const native = loadNative();
    ${batch ? 'native.batchPoolThreads();' : ''}
    await Promise.all(Array.from({ length: 8 }, () => native.createDigestWriter(-1, 'sha256').update([Buffer.alloc(1 << 20)])));
    const policy = (tid) => Number(readFileSync('/proc/self/task/' + tid + '/stat', 'utf8').split(') ')[1].split(' ')[38]);
    const tids = readdirSync('/proc/self/task');
    console.log(JSON.stringify({ main: policy(process.pid), batch: tids.filter((t) => policy(t) === 3).length }));`;
  const run = (batch: boolean) => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script(batch)], { encoding: 'utf8' })) as { main: number; batch: number };

  test('pool threads that ran a job become SCHED_BATCH; the main thread stays normal; nothing changes without it', () => {
    const on = run(true);
    assert.equal(on.main, 0);
    assert.ok(on.batch >= 1, JSON.stringify(on));
    assert.deepEqual(run(false), { main: 0, batch: 0 });
  });
});
