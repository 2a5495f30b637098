import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { blobReadStream } from '../../src/content/blob-stream.js';
import { cachedBytes as cached, MiB, pageCacheUntestable } from '../helpers/page-cache.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());

test('blobReadStream with dropBehind leaves (almost) nothing of a read blob in the cache', async (t) => {
  const dir = await tmp.make('sys-read-drop');
  const why = pageCacheUntestable(dir);
  if (why) return t.skip(`LOUD SKIP: ${why}`);
  const file = join(dir, 'blob');
  const data = randomBytes(48 * MiB);
  writeFileSync(file, data);
  execFileSync('sync');
  assert.ok(cached(file) > 40 * MiB, `the freshly written blob is cached before the read (${cached(file)} bytes)`);
  const hash = createHash('sha256');
  for await (const chunk of blobReadStream(openSync(file, 'r'), { dropBehind: true })) hash.update(chunk as Buffer);
  assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.ok(cached(file) <= 8 * MiB, `read blob still cached: ${cached(file)} bytes`);
});
