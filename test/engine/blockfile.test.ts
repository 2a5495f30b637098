import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Engine } from '../../src/index.js';
import { readStoreConfig } from '../../src/engine/store-config.js';
import { blockfileUnavailable, type BlockfileSnapshotter } from '../../src/snapshotter/blockfile/blockfile.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());

describe('Engine with the blockfile driver', () => {
  test("--storage-opt is recorded with the store's driver, used to open it, and info shows devicemapper's keys", async (t) => {
    const why = await blockfileUnavailable();
    if (why) {
      console.error(`SKIP blockfile engine test: ${why}`);
      return t.skip(why);
    }
    const root = await tmp.make('engine-blockfile');
    const engine = await Engine.open({ root, storageDriver: 'blockfile', storageOpts: ['blockfile.size=64M'] });
    try {
      const info = await engine.info();
      assert.equal(info.driver.name, 'blockfile');
      const status = new Map(info.driverStatus);
      assert.equal(status.get('Backing Filesystem'), info.backingFilesystem);
      assert.equal(status.get('Base Device Size'), String(64 << 20));
      assert.equal(status.get('Filesystem'), 'ext4');
      for (const key of ['Data Space Used', 'Data Space Total', 'Data Space Available']) assert.match(status.get(key) ?? '', /^\d+$/, key);
      const config = await readStoreConfig(root);
      assert.equal(config['storage-driver'], 'blockfile');
      assert.deepEqual(config['storage-opts'], ['blockfile.size=64M']);
      const sn = (await engine.snapshotter()) as BlockfileSnapshotter;
      assert.equal(sn.options.size, 64 << 20);
    } finally {
      await engine.close();
    }
    // A later open without options keeps the recorded ones.
    const again = await Engine.open({ root });
    try {
      assert.equal(((await again.snapshotter()) as BlockfileSnapshotter).options.size, 64 << 20);
      assert.equal((await again.driver()).root, join(root, 'snapshots', 'blockfile'));
    } finally {
      await again.close();
    }
  });
});
