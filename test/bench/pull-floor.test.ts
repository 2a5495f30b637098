import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';

/** bench:pull's floor (bench/lib/pull-floor.ts) against the real registry, plain and through the fault proxy. */
const FLOOR = fileURLToPath(new URL('../../bench/lib/pull-floor.js', import.meta.url));

function runFloor(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [FLOOR, ...args], (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }));
  });
}

describe('bench:pull floor (pull-floor.js)', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();

  before(async () => {
    registry = await sharedRegistry();
    fixtures = await pushFixtures(registry);
    proxy = await FaultProxy.start(registry.url);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await dirs.cleanup();
  });

  it('receives the config and every layer, each file hashing to its digest', async () => {
    const out = await dirs.make('floor');
    const { base } = fixtures;
    const res = await runFloor([`${registry.url}/v2/${base.repository}/`, base.tag, out]);
    assert.equal(res.code, 0, res.stderr);
    const expected = [base.configDigest, ...base.layers.map((l) => l.digest)].map((d) => d.replace(':', '-')).sort();
    assert.deepEqual((await readdir(out)).sort(), [...new Set(expected)].sort());
    for (const name of await readdir(out)) {
      assert.equal(`sha256-${createHash('sha256').update(await readFile(join(out, name))).digest('hex')}`, name);
    }
  });

  it('follows a blob redirect to another address', async () => {
    proxy.reset();
    proxy.redirectBlobs(registry.url);
    const out = await dirs.make('floor-redirect');
    const res = await runFloor([`${proxy.url}/v2/${fixtures.app.repository}/`, fixtures.app.tag, out]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal((await readdir(out)).length, 1 + new Set(fixtures.app.layers.map((l) => l.digest)).size);
  });

  it('fails in one line naming the blob when a byte arrives corrupted', async () => {
    proxy.reset();
    proxy.corruptByteAt(10);
    const out = await dirs.make('floor-corrupt');
    const res = await runFloor([`${proxy.url}/v2/${fixtures.base.repository}/`, fixtures.base.tag, out]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^pull-floor: blob sha256:[0-9a-f]{64}: got \d+ bytes hashing to sha256:[0-9a-f]{64}\n$/);
  });
});
