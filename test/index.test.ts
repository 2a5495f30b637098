import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import * as stratum from '../src/index.js';
import { sharedRegistry, type TestRegistry } from './helpers/registry.js';
import { TempDirs } from './helpers/tmp.js';
import { pushFixtures, type PushedFixtures } from './fixtures/images.js';

describe('library API (what build tools import)', () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  before(async () => {
    registry = await sharedRegistry({ schema1: true });
    fixtures = await pushFixtures(registry);
  });
  after(async () => {
    await registry?.stop();
    await dirs.cleanup();
  });

  it('pulls through a mirror, reads the image back, its history and its disk usage', async () => {
    const store = await stratum.OciStore.open(await dirs.make('store'));
    const client = new stratum.RegistryClient({ config: { mirrors: { 'docker.io': [registry.url] } } });
    const events: stratum.PullEvent[] = [];
    try {
      const result = await stratum.pull('app:1', { store, client, onEvent: (e) => events.push(e) });
      assert.equal(result.name, 'docker.io/library/app:1');
      assert.equal(result.digest, fixtures.app.digest);
      assert.equal(result.upToDate, false);
      assert.deepEqual(result.layers.map((l) => l.digest), fixtures.app.layers.map((l) => l.digest));
      assert.deepEqual(result.config.rootfs.diff_ids, fixtures.app.layers.map((l) => l.diffId));
      assert.ok(events.some((e) => e.type === 'complete'));

      const image = await stratum.loadImageByName(store, 'app:1');
      assert.equal(image.descriptor.digest, fixtures.app.digest);
      const history = stratum.imageHistory(image);
      assert.equal(history.filter((h) => h.layer).length, 2);
      const usage = await stratum.storeUsage(store);
      assert.equal(usage.images.length, 1);
      assert.equal(usage.images[0]!.size, fixtures.app.layers.reduce((s, l) => s + l.size, 0));

      const again = await stratum.pull('app:1', { store, client });
      assert.equal(again.upToDate, true);
      assert.equal(again.bytesDownloaded, 0);
    } finally {
      await client.close();
    }
  });

  it('verifyStore finds a corrupt blob, repair removes it, the next pull fetches it again', async () => {
    const store = await stratum.OciStore.open(await dirs.make('store'));
    const client = new stratum.RegistryClient({ config: { mirrors: { 'docker.io': [registry.url] } } });
    try {
      const result = await stratum.pull('app:1', { store, client });
      assert.deepEqual((await stratum.verifyStore(store)).problems, []);
      const layer = result.layers.at(-1)!.digest;
      const path = store.blobPath(layer);
      const bytes = await readFile(path);
      bytes[0] ^= 0xff;
      await writeFile(path, bytes);
      const found = await stratum.verifyStore(store);
      assert.deepEqual(found.problems.map((p) => [p.kind, p.subject]), [['blob-corrupt', layer]]);
      assert.equal(found.remaining, 1);
      const repaired = await stratum.verifyStore(store, { repair: true });
      assert.deepEqual(repaired.problems.map((p) => [p.kind, p.subject, p.repaired !== undefined]), [
        ['blob-corrupt', layer, true],
        ['blob-missing', layer, false],
      ]);
      await stratum.pull('app:1', { store, client });
      assert.deepEqual((await stratum.verifyStore(store)).problems, []);
    } finally {
      await client.close();
    }
  });

  it('throws typed errors with stable codes', async () => {
    assert.throws(() => stratum.parseReference('Ubuntu:15.04'), (e: unknown) => stratum.isStratumError(e, 'ERR_INVALID_REFERENCE'));
    assert.throws(() => stratum.parseDigest('sha256:XYZ'), (e: unknown) => e instanceof stratum.InvalidDigestError && e.code === 'ERR_INVALID_DIGEST');
    const store = await stratum.OciStore.open(await dirs.make('store'));
    await assert.rejects(stratum.loadImageByName(store, 'nothing:here'), (e: unknown) => stratum.isStratumError(e, 'ERR_NOT_FOUND'));
  });
});
