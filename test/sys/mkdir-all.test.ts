import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { mkdirAll } from '../../src/sys/mkdir-all.js';
import { TempDirs } from '../helpers/tmp.js';

const dirs = new TempDirs();
after(() => dirs.cleanup());

test('mkdirAll creates every missing component with the mode, and is a no-op on an existing directory', async () => {
  const base = await dirs.make('mkdir');
  const deep = join(base, 'a', 'b', 'c');
  const umask = process.umask(0);
  try {
    await mkdirAll(deep, 0o711);
  } finally {
    process.umask(umask);
  }
  for (const p of [join(base, 'a'), join(base, 'a', 'b'), deep]) assert.equal((await stat(p)).mode & 0o777, 0o711, p);
  await mkdirAll(deep);
  await mkdirAll(base);
});

test('mkdirAll: a file in the way is ENOTDIR naming it; procfs (ENOENT under an existing parent) fails instead of spinning', async () => {
  const base = await dirs.make('mkdir');
  await writeFile(join(base, 'file'), '');
  await assert.rejects(mkdirAll(join(base, 'file', 'x')), (err: NodeJS.ErrnoException) => err.code === 'ENOTDIR' && err.message.includes(join(base, 'file')));
  await assert.rejects(mkdirAll('/proc/stratum-no-such/deeper'), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
});
