/**
 * examples/build-tool.ts, run as a user would run it: the library alone (`import { Engine } from
 * 'stratum'`) pulls from a real registry, changes a writable snapshot, commits and exports.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { EntrySpec } from '../fixtures/layers.js';
import { pushOneLayerImage } from '../fixtures/push.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, runCli } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmpDirs = new TempDirs();
const MISSING = process.getuid?.() !== 0 ? 'needs root: mounts' : !existsSync('/usr/bin/docker-registry') ? '/usr/bin/docker-registry is not installed' : undefined;
const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'ID=example\n' },
  { type: 'file', path: 'etc/hostname', content: 'example\n' },
];

let registry: TestRegistry | undefined;
let reference = '';

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  reference = await pushOneLayerImage(registry, BASE, 'example/base:1', await tmpDirs.make('example-images'));
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

test('examples/build-tool.js pulls, mounts a writable snapshot, writes and deletes, commits, exports', async (t) => {
  if (MISSING) return t.skip(MISSING);
  const store = await tmpDirs.make('example-store');
  const out = join(await tmpDirs.make('example-out'), 'rootfs.tar');
  const home = await tmpDirs.make('example-home');
  const env = { ...process.env, ...isolatedCliEnv(home) };
  const { stdout } = await run(process.execPath, ['dist/examples/build-tool.js', '--store', store, reference, 'example/built:1', out], { env });
  assert.match(stdout, /committed docker\.io\/example\/built:1: id sha256:[0-9a-f]{64}, layer sha256:[0-9a-f]{64} \(\d+ entries, 1 whiteouts\)/);
  const names = (await run('tar', ['-tf', out])).stdout.split('\n').map((n) => n.replace(/^\.\//, ''));
  assert.ok(names.includes('built-by-stratum.txt'), names.join(' '));
  assert.ok(names.includes('etc/hostname'));
  assert.ok(!names.includes('etc/os-release'), 'the deleted file is gone from the export');
  const images = await runCli(['images', '--store', store], env);
  assert.match(images.stdout, /example\/built\s+1\s/);
  // The snapshot and its mount are gone; the image's layers stay unpacked.
  const ls = await runCli(['snapshot', '--store', store, 'ls'], env);
  assert.doesNotMatch(ls.stdout, /build-/);
});
