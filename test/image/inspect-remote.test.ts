/**
 * inspectRemote against the real registry (schema1 enabled): the manifest, index and config
 * bytes equal what `skopeo inspect --raw` and `skopeo inspect --config --raw` print; a schema1
 * image's config equals the one `pull` stores; configs are verified and size-capped.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isStratumError } from '../../src/errors.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { schema1Payload, schema1PayloadDigest } from '../../src/oci/schema1.js';
import { OciStore } from '../../src/content/store.js';
import { fetchConfig, inspectRemote, MAX_CONFIG_BYTES } from '../../src/image/inspect-remote.js';
import { pull } from '../../src/image/pull.js';
import { Engine } from '../../src/engine/engine.js';
import { RegistryClient } from '../../src/registry/client.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import { BLOB_PATH } from '../helpers/fault-proxy.js';
import { TempDirs } from '../helpers/tmp.js';
import { FAST_RETRIES, startRig, type RegistryRig } from '../registry/setup.js';

const exec = promisify(execFile);
const tmp = new TempDirs();
let rig: RegistryRig;
let client: RegistryClient;

before(async () => {
  rig = await startRig({ schema1: true });
  client = new RegistryClient({ config: { retries: FAST_RETRIES } });
});
after(async () => {
  await client?.close();
  await rig?.stop();
  await tmp.cleanup();
});

async function skopeo(ref: string, config = false): Promise<Buffer> {
  const args = ['inspect', '--raw', '--tls-verify=false', ...(config ? ['--config'] : []), `docker://${ref}`];
  const { stdout } = await exec('skopeo', args, { encoding: 'buffer', maxBuffer: 16 << 20 });
  return stdout;
}

describe('inspectRemote', () => {
  for (const name of ['base', 'app', 'zstd'] as const) {
    test(`${name}: manifest and config bytes equal skopeo's`, async () => {
      const fixture = rig.fixtures[name];
      const ref = `${rig.registry.host}/${fixture.repository}:${fixture.tag}`;
      const r = await inspectRemote(client, ref);
      assert.equal(r.name, ref);
      assert.equal(r.digest, fixture.digest);
      assert.equal(r.mediaType, fixture.mediaType);
      assert.deepEqual(r.raw, await skopeo(ref));
      assert.equal(digestOf(r.raw), r.digest);
      assert.equal(r.index, undefined);
      assert.ok('config' in r.manifest && r.manifest.config.digest === fixture.configDigest);
      assert.deepEqual(r.config?.raw, await skopeo(ref, true));
      assert.equal(r.config?.digest, fixture.configDigest);
      assert.equal(r.config?.parsed.rootfs.diff_ids.length, fixture.layers.length);
    });
  }

  test('an index: its raw bytes, the host platform\'s manifest and config (as skopeo picks them), or the platform asked for', async () => {
    const multi = rig.fixtures.multi;
    const ref = `${rig.registry.host}/${multi.repository}:${multi.tag}`;
    const r = await inspectRemote(client, ref);
    assert.ok(r.index);
    assert.deepEqual(r.index.raw, await skopeo(ref));
    assert.equal(r.index.digest, multi.digest);
    assert.equal(r.index.parsed.manifests.length, multi.manifests.length);
    assert.deepEqual(r.config?.raw, await skopeo(ref, true));
    assert.deepEqual(r.raw, await skopeo(`${rig.registry.host}/${multi.repository}@${r.digest}`));

    const arm = multi.manifests.find((m) => m.platform.architecture === 'arm64')!;
    const a = await inspectRemote(client, ref, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    assert.equal(a.digest, arm.digest);
    assert.equal(a.index?.platform, 'linux/arm64/v8');
    assert.equal(a.config?.digest, arm.configDigest);
    assert.deepEqual(a.raw, await skopeo(`${rig.registry.host}/${multi.repository}@${arm.digest}`));
    await assert.rejects(inspectRemote(client, ref, { platform: { os: 'windows', architecture: 'amd64' } }), (err) => isStratumError(err, 'ERR_NO_MATCHING_PLATFORM'));
  });

  test('schema1: the raw signed bytes (payload as skopeo sees it, digest of the payload) and the config pull makes', async () => {
    const ubuntu = rig.fixtures.ubuntu!;
    const ref = `${rig.registry.host}/${ubuntu.repository}:${ubuntu.tag}`;
    const r = await inspectRemote(client, ref);
    assert.equal(r.digest, ubuntu.digest);
    assert.equal(schema1PayloadDigest(r.raw), ubuntu.digest);
    // The registry signs each answer anew: the payload (what the digest covers) is the same.
    assert.deepEqual(schema1Payload(r.raw), schema1Payload(await skopeo(ref)));
    assert.ok('fsLayers' in r.manifest);
    const store = await OciStore.open(await tmp.make('inspect-store'));
    const pulled = await pull(ref, { store, client });
    const stored = JSON.parse((await store.read(pulled.manifest.digest)).toString()) as { config: { digest: Digest } };
    assert.equal(r.config?.digest, stored.config.digest);
    assert.deepEqual(r.config?.raw, await store.read(stored.config.digest));
    const light = await inspectRemote(client, ref, { config: false });
    assert.equal(light.config, undefined);
  });

  test('the config is verified: a flipped byte is ERR_DIGEST_MISMATCH; an oversized descriptor is refused before fetching', async () => {
    const app = rig.fixtures.app;
    const ref = rig.ref(`${app.repository}:${app.tag}`);
    rig.proxy.corruptByteAt(10, { path: new RegExp(`${app.configDigest.slice(7)}$`), count: FAST_RETRIES.maxAttempts });
    try {
      await assert.rejects(inspectRemote(client, ref), (err) => isStratumError(err, 'ERR_DIGEST_MISMATCH') && err.message.includes(app.configDigest));
    } finally {
      rig.proxy.reset();
    }
    rig.proxy.clearLog();
    const big = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: app.configDigest, size: MAX_CONFIG_BYTES + 1 };
    await assert.rejects(fetchConfig(client, ref, big), (err) => isStratumError(err, 'ERR_INVALID_MANIFEST') && /limit/.test(err.message));
    assert.equal(rig.proxy.requests('GET', BLOB_PATH).length, 0);
    // A body longer than the descriptor says stops at size + 1.
    const small = { ...big, size: 20 };
    await assert.rejects(fetchConfig(client, ref, small), (err) => isStratumError(err, 'ERR_SIZE_MISMATCH'));
  });

  test('Engine.inspectRemote', async () => {
    const engine = await Engine.open({ root: await tmp.make('inspect-engine'), credentials: new StaticCredentials({}), env: { STRATUM_CONFIG: '' } });
    try {
      const r = await engine.inspectRemote(parseReference(`${rig.registry.host}/library/base:1`));
      assert.equal(r.digest, rig.fixtures.base.digest);
    } finally {
      await engine.close();
    }
  });
});
