import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readStoreConfig, writeStoreConfig, isStratumError, Engine } from '../../src/index.js';
import { TempDirs } from '../helpers/tmp.js';

const dirs = new TempDirs();
after(() => dirs.cleanup());

test('stratum.json: absent is {}, written atomically 0600, unknown keys kept', async () => {
  const root = await dirs.make('store-config');
  assert.deepEqual(await readStoreConfig(root), {});
  await writeStoreConfig(root, { 'storage-driver': 'native', 'storage-opts': ['a=b'], 'x-tool': { keep: true } });
  const path = join(root, 'stratum.json');
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const back = await readStoreConfig(root);
  assert.deepEqual(back, { 'storage-driver': 'native', 'storage-opts': ['a=b'], 'x-tool': { keep: true } });
});

test('a malformed stratum.json is an error naming the file, and is left as it was', async () => {
  const root = await dirs.make('store-config-bad');
  await (await Engine.open({ root, env: {} })).close(); // a store first
  const path = join(root, 'stratum.json');
  for (const [text, field] of [['{ "storage-driver": ', /not valid JSON/], ['[1]', /must be a JSON object/], ['{"storage-driver": 3}', /storage-driver: must be a string/], ['{"storage-opts": "x"}', /storage-opts: must be an array/]] as const) {
    await writeFile(path, text);
    await assert.rejects(readStoreConfig(root), (err: unknown) => isStratumError(err, 'ERR_CONFIG') && (err as Error).message.includes(path) && field.test((err as Error).message));
    // The Engine refuses to choose a driver over it rather than overwrite it.
    const engine = await Engine.open({ root, env: {} });
    await assert.rejects(engine.driver(), (err: unknown) => isStratumError(err, 'ERR_CONFIG'));
    await engine.close();
    assert.equal(await readFile(path, 'utf8'), text);
  }
});
