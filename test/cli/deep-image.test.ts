/**
 * An image of 1,000 (tiny, distinct) layers on the real registry: refused with a typed error
 * before a single blob is fetched, by default (128) and on overlay even when asked for more than
 * the kernel's 500; accepted with --max-layers when only fetched; refused again by mount's unpack.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pLimit from 'p-limit';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { buildLayer } from '../fixtures/layers.js';
import { uploadBlob } from '../fixtures/push.js';
import { BLOB_PATH, FaultProxy } from '../helpers/fault-proxy.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, needsRootAndRegistry, runCli, type CliResult } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';

const LAYERS = 1000;
const MISSING = needsRootAndRegistry();
const tmpDirs = new TempDirs();
let registry: TestRegistry | undefined;
let proxy: FaultProxy | undefined;
let env: NodeJS.ProcessEnv = {};
let reference = '';

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  proxy = await FaultProxy.start(registry.url);
  const home = await tmpDirs.make('deep-home');
  env = isolatedCliEnv(home);
  const work = await tmpDirs.make('deep-layers');
  const repo = 'deep/thousand';
  const limit = pLimit(8);
  const layers = await Promise.all(
    Array.from({ length: LAYERS }, (_, i) =>
      limit(async () => {
        const layer = await buildLayer([{ type: 'file', path: `f${i}`, content: `layer ${i}\n` }], { compression: 'gzip', dir: work });
        await uploadBlob(registry!, repo, layer.digest, { path: layer.path });
        return layer;
      }),
    ),
  );
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) }, config: {} }),
  );
  const configDigest = digestOf(config);
  await uploadBlob(registry, repo, configDigest, { bytes: config });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  });
  const put = await fetch(`${registry.url}/v2/${repo}/manifests/1`, { method: 'PUT', headers: { 'content-type': MediaType.OciManifest }, body: manifest });
  assert.equal(put.status, 201, await put.text());
  reference = `${proxy.host}/${repo}:1`;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await tmpDirs.cleanup();
});

const cli = (args: string[]): Promise<CliResult> => runCli(args, env);
const storedBlobs = async (store: string): Promise<Digest[]> =>
  (await readdir(join(store, 'blobs', 'sha256')).catch(() => [] as string[])).map((h) => `sha256:${h}` as Digest);

describe('an image of 1,000 layers', () => {
  test('is refused before any blob is fetched: default limit 128, and overlay’s 500 even with --max-layers 1000', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmpDirs.make('deep-store');
    proxy!.clearLog();
    const started = Date.now();
    const r = await cli(['pull', '--store', store, reference]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /1000 layers, more than the limit of 128 \(the default, like Docker and containerd on overlay; --max-layers N or the maxLayers option raises it\) \(ERR_LIMIT_EXCEEDED\)/);
    assert.ok(Date.now() - started < 10_000, 'refused at once');
    assert.deepEqual(proxy!.requests('GET', BLOB_PATH), [], 'no blob was fetched');
    assert.deepEqual(await storedBlobs(store), []);

    const overlay = await cli(['pull', '--store', store, '--snapshotter', 'overlay', '--max-layers', '1000', reference]);
    assert.equal(overlay.code, 1);
    assert.match(overlay.stderr, /1000 layers, more than the limit of 500 \(the kernel mounts at most 500 overlay layers\) \(ERR_LIMIT_EXCEEDED\)/);
    assert.deepEqual(proxy!.requests('GET', BLOB_PATH), [], 'no blob was fetched');

    const bad = await cli(['pull', '--store', store, '--max-layers', 'lots', reference]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--max-layers takes a whole number/);
  });

  test('--max-layers 1000 --no-unpack fetches it; mount then refuses to unpack it (128)', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmpDirs.make('deep-store-fetch');
    const r = await cli(['pull', '--store', store, '--no-unpack', '--max-layers', '1000', '--quiet', reference]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await storedBlobs(store)).length, LAYERS + 2);
    const dir = await tmpDirs.make('deep-mnt');
    const m = await cli(['mount', '--store', store, '--snapshotter', 'native', reference, dir]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /1000 layers, more than the limit of 128 .*\(ERR_LIMIT_EXCEEDED\)/);
    assert.deepEqual(await readdir(join(store, 'snapshots', 'native', 'snapshots')), [], 'nothing was extracted');
  });
});
