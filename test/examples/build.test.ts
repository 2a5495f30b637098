/**
 * examples/build.ts, the "Done when" of issue 11, run as a user would run it (the library alone,
 * `import { Engine } from 'stratum'`) against the real registry: base → layer → config →
 * reproducible → two-platform index → push → sign → verify → pull back verified → same rootfs.
 * Run twice, in fresh stores: the same digests both times.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { EntrySpec } from '../fixtures/layers.js';
import { pushOneLayerImage } from '../fixtures/push.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';
import type { ImageIndex } from '../../src/oci/types.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from '../../src/sign/bundle.js';
import { referrersTag } from '../../src/referrers/artifact.js';
import { parseDigest } from '../../src/oci/digest.js';

const run = promisify(execFile);
const tmpDirs = new TempDirs();
const MISSING = process.getuid?.() !== 0 ? 'needs root: mounts' : !existsSync('/usr/bin/docker-registry') ? '/usr/bin/docker-registry is not installed' : undefined;
const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'ID=example\n' },
  { type: 'dir', path: 'bin' },
  { type: 'file', path: 'bin/sh', content: '#!fake shell\n', mode: 0o755 },
];

interface Result {
  base: string;
  images: Record<string, string>;
  layer: string;
  reproducible: boolean;
  index: string;
  pushed: string;
  signature: string;
  verified: string;
  pulled: string;
  rootfs: { digest: string; entries: number };
  rootfsPulled: { digest: string; entries: number };
}

let registry: TestRegistry | undefined;
let base = '';

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  base = await pushOneLayerImage(registry, BASE, 'example/build-base:1', await tmpDirs.make('build-example-images'));
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

async function build(destination: string): Promise<{ stdout: string; result: Result }> {
  const store = await tmpDirs.make('build-store');
  const pullStore = await tmpDirs.make('build-pull-store');
  const env = { ...process.env, ...isolatedCliEnv(await tmpDirs.make('build-home')), SOURCE_DATE_EPOCH: '1700000000' };
  const { stdout } = await run(process.execPath, ['dist/examples/build.js', '--store', store, '--pull-store', pullStore, base, destination], { env });
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, stdout);
  return { stdout, result: JSON.parse(line.slice('RESULT '.length)) as Result };
}

async function rawIndex(repository: string, reference: string): Promise<ImageIndex> {
  const res = await fetch(`${registry!.url}/v2/${repository}/manifests/${reference}`, { headers: { accept: MediaType.OciIndex } });
  assert.equal(res.status, 200, `GET ${repository}/manifests/${reference}`);
  return (await res.json()) as ImageIndex;
}

test('examples/build.js: base → layer → config → reproducible → index of two platforms → push → sign → verify → pull back verified → same rootfs', { timeout: 240_000 }, async (t) => {
  if (MISSING) return t.skip(MISSING);
  const { stdout, result } = await build(`${registry!.host}/example/build-app:1`);
  for (const line of stdout.trimEnd().split('\n')) t.diagnostic(line);
  const digest = /^sha256:[0-9a-f]{64}$/;
  for (const d of [result.base, result.layer, result.index, result.signature, ...Object.values(result.images)]) assert.match(d, digest);
  assert.deepEqual(Object.keys(result.images), ['linux/amd64', 'linux/arm64']);
  assert.notEqual(result.images['linux/amd64'], result.images['linux/arm64'], 'the configs differ by platform');
  assert.equal(result.reproducible, true);
  assert.match(stdout, /rebuilt linux\/amd64 sha256:[0-9a-f]{64}: reproducible/);
  assert.equal(result.pushed, result.index, 'the index went up byte for byte');
  assert.equal(result.verified, result.index, 'the signature is of the index');
  assert.equal(result.pulled, result.images['linux/amd64'], 'the other store pulled the amd64 image of the index');
  assert.deepEqual(result.rootfsPulled, result.rootfs);
  // base (etc, os-release, bin, sh) + the layer (app, hello.sh, data.txt)
  assert.equal(result.rootfs.entries, 7);

  // At the registry, by raw HTTP: the index lists both platforms; its referrers tag lists the bundle.
  const index = await rawIndex('example/build-app', '1');
  assert.deepEqual(index.manifests.map((m) => [m.digest, `${m.platform?.os}/${m.platform?.architecture}`]), [
    [result.images['linux/amd64'], 'linux/amd64'],
    [result.images['linux/arm64'], 'linux/arm64'],
  ]);
  const referrers = await rawIndex('example/build-app', referrersTag(parseDigest(result.index)));
  assert.ok(referrers.manifests.some((m) => m.digest === result.signature && m.artifactType === SIGSTORE_BUNDLE_MEDIA_TYPE), JSON.stringify(referrers));

  // Again, in fresh stores, to another repository: the same digests (SOURCE_DATE_EPOCH).
  const second = (await build(`${registry!.host}/example/build-again:1`)).result;
  assert.deepEqual([second.images, second.layer, second.index, second.rootfs], [result.images, result.layer, result.index, result.rootfs]);
});
