import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { resolveRegistryConfig } from '../../src/engine/registry-config.js';
import { TempDirs } from '../helpers/tmp.js';

const dirs = new TempDirs();
after(() => dirs.cleanup());

test('--mirror flags are tried in the order given, ahead of the config file’s mirrors', async () => {
  const dir = await dirs.make('config');
  const path = join(dir, 'config.json');
  await writeFile(path, JSON.stringify({ mirrors: { 'docker.io': ['http://file-mirror:5000', 'http://b:5000'] } }));
  const config = await resolveRegistryConfig({ configFile: path, mirrors: ['http://a:5000', 'docker.io=http://b:5000', 'quay.io=http://q:5000'] }, {});
  assert.deepEqual(config.mirrors!['docker.io'], ['http://a:5000', 'http://b:5000', 'http://file-mirror:5000']);
  assert.deepEqual(config.mirrors!['quay.io'], ['http://q:5000']);
});
