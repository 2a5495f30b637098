/**
 * copyImage between real registries, OCI layout directories and the store, read back with
 * skopeo and umoci: manifests byte for byte (digests kept), a mount within one registry (seen
 * in its access log), streams between two, blobs the destination has skipped, `all` for an
 * index, one platform without it, and a corrupt source byte stopping the copy before any
 * manifest is written.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isStratumError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { schema1Payload, schema1PayloadDigest } from '../../src/oci/schema1.js';
import { hostPlatform, selectManifest } from '../../src/oci/platform.js';
import { copyImage, parseCopyLocation, type CopyEvent } from '../../src/image/copy.js';
import { Engine } from '../../src/engine/engine.js';
import { RegistryClient } from '../../src/registry/client.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import { registryRequestLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { TokenIssuer } from '../helpers/token-issuer.js';
import { FAST_RETRIES, startRig, type RegistryRig } from '../registry/setup.js';

const exec = promisify(execFile);
const tmp = new TempDirs();
let rig: RegistryRig;
let other: TestRegistry;
let client: RegistryClient;

before(async () => {
  rig = await startRig({ schema1: true });
  other = await startRegistry({ schema1: true });
  client = new RegistryClient({ config: { retries: FAST_RETRIES } });
});
after(async () => {
  await client?.close();
  await rig?.stop();
  await other?.stop();
  await tmp.cleanup();
});

async function skopeoRaw(location: string): Promise<Buffer> {
  const args = ['inspect', '--raw', ...(location.startsWith('docker://') ? ['--tls-verify=false'] : []), location];
  const { stdout } = await exec('skopeo', args, { encoding: 'buffer', maxBuffer: 16 << 20 });
  return stdout;
}

function recorder(): { events: CopyEvent[]; onEvent: (e: CopyEvent) => void; count(type: CopyEvent['type']): number } {
  const events: CopyEvent[] = [];
  return { events, onEvent: (e) => events.push(e), count: (type) => events.filter((e) => e.type === type).length };
}

describe('parseCopyLocation', () => {
  test('docker://, bare references, oci:DIR[:TAG], store:NAME; other transports refused', () => {
    assert.deepEqual(parseCopyLocation('docker://ubuntu:15.04'), { kind: 'registry', ref: parseCopyLocation('docker.io/library/ubuntu:15.04').kind === 'registry' ? (parseCopyLocation('docker.io/library/ubuntu:15.04') as { ref: unknown }).ref : undefined });
    const bare = parseCopyLocation('127.0.0.1:5000/app:1');
    assert.equal(bare.kind === 'registry' && bare.ref.toString(), '127.0.0.1:5000/app:1');
    assert.deepEqual(parseCopyLocation('oci:/tmp/x:a:b'), { kind: 'layout', dir: '/tmp/x', tag: 'a:b' });
    assert.deepEqual(parseCopyLocation('oci:/tmp/x'), { kind: 'layout', dir: '/tmp/x' });
    assert.deepEqual(parseCopyLocation('store:ubuntu:15.04'), { kind: 'store', name: 'ubuntu:15.04' });
    for (const bad of ['dir:/tmp/x', 'docker-archive:/x.tar', 'oci:', 'oci:/x:', 'store:']) assert.throws(() => parseCopyLocation(bad), (err) => isStratumError(err, 'ERR_INVALID_ARGUMENT'), bad);
  });
});

describe('copy registry → registry', () => {
  test('same registry: blobs mounted from the source repository (seen in the registry log), manifest byte for byte', async () => {
    const app = rig.fixtures.app;
    const log = registryRequestLog(rig.registry)!;
    await log.settle();
    log.clear();
    const rec = recorder();
    const r = await copyImage(`${rig.registry.host}/library/app:1`, `docker://${rig.registry.host}/mirror/app:copied`, { client }, { onEvent: rec.onEvent });
    assert.equal(r.digest, app.digest);
    assert.equal(r.mounted, app.layers.length + 1);
    assert.equal(r.copied, 0);
    assert.equal(rec.count('mounted'), app.layers.length + 1);
    await log.settle();
    const mounts = log.requests().filter((q) => q.method === 'POST' && /mount=/.test(q.query) && /from=library%2Fapp/.test(q.query));
    assert.equal(mounts.length, app.layers.length + 1);
    assert.ok(mounts.every((q) => q.status === 201));
    assert.equal(log.count('PATCH', /uploads/) + log.count('PUT', /uploads/), 0, 'no bytes uploaded');
    assert.deepEqual(await skopeoRaw(`docker://${rig.registry.host}/mirror/app:copied`), await skopeoRaw(`docker://${rig.registry.host}/library/app:1`));
  });

  test('same registry behind a token server: one token with both scopes (push here, pull there) for the mounts', async () => {
    const tokens = await TokenIssuer.start();
    rig.proxy.requireBearer({ issuer: tokens });
    const c = new RegistryClient({ config: { retries: FAST_RETRIES } });
    try {
      const r = await copyImage(`${rig.proxy.host}/library/app:1`, `${rig.proxy.host}/scoped/app:1`, { client: c });
      assert.equal(r.mounted, rig.fixtures.app.layers.length + 1);
      const scopes = tokens.requests.map((t) => t.scope);
      assert.ok(scopes.includes('repository:scoped/app:pull,push repository:library/app:pull'), JSON.stringify(scopes));
      assert.ok(scopes.includes('repository:library/app:pull'), JSON.stringify(scopes));
    } finally {
      rig.proxy.reset();
      await c.close();
      await tokens.stop();
    }
  });

  test('two registries: every blob streamed and verified, then the manifest; a second copy finds them all', async () => {
    const base = rig.fixtures.base;
    const rec = recorder();
    const src = `docker://${rig.proxy.host}/library/base:1`;
    const dst = `docker://${other.host}/copied/base:1`;
    const r = await copyImage(src, dst, { client }, { onEvent: rec.onEvent });
    assert.equal(r.digest, base.digest);
    assert.equal(r.copied, base.layers.length + 1);
    assert.equal(r.bytesCopied, base.layers.reduce((n, l) => n + l.size, 0) + (await skopeoRaw(`docker://${rig.registry.host}/library/base:1`).then((raw) => JSON.parse(raw.toString()).config.size as number)));
    assert.equal(rec.count('done'), base.layers.length + 1);
    assert.ok(rec.events.some((e) => e.type === 'copying' && e.current === e.total));
    const manifestEvent = rec.events.find((e) => e.type === 'manifest');
    assert.deepEqual(manifestEvent, { type: 'manifest', digest: base.digest, mediaType: base.mediaType, size: r.manifests && manifestEvent!.type === 'manifest' ? manifestEvent!.size : 0, reference: '1' });
    const raw = await skopeoRaw(dst);
    assert.equal(digestOf(raw), base.digest);
    assert.deepEqual(raw, await skopeoRaw(src));
    await exec('skopeo', ['inspect', '--tls-verify=false', dst]);

    const again = recorder();
    const r2 = await copyImage(src, dst, { client }, { onEvent: again.onEvent });
    assert.equal(r2.existed, base.layers.length + 1);
    assert.equal(again.count('done') + again.count('copying'), 0);
  });

  test('an index without all: the host platform\'s image, tagged; with all: the index and every child (children first)', async () => {
    const multi = rig.fixtures.multi;
    const src = `${rig.registry.host}/library/multi:1`;
    const one = await copyImage(src, `${other.host}/copied/multi:one`, { client });
    const index = JSON.parse((await skopeoRaw(`docker://${src}`)).toString());
    const wanted = selectManifest(index, hostPlatform(), src);
    assert.equal(one.digest, wanted.digest);
    assert.equal(digestOf(await skopeoRaw(`docker://${other.host}/copied/multi:one`)), wanted.digest);
    const arm = await copyImage(src, `${other.host}/copied/multi:arm`, { client }, { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } });
    assert.equal(arm.digest, multi.manifests.find((m) => m.platform.architecture === 'arm')!.digest);

    const rec = recorder();
    const all = await copyImage(src, `${other.host}/copied/multi:all`, { client }, { all: true, onEvent: rec.onEvent });
    assert.equal(all.digest, multi.digest);
    assert.equal(all.manifests, multi.manifests.length + 1);
    const manifests = rec.events.filter((e) => e.type === 'manifest');
    assert.equal(manifests.at(-1)!.digest, multi.digest, 'the index last');
    assert.deepEqual(await skopeoRaw(`docker://${other.host}/copied/multi:all`), await skopeoRaw(`docker://${src}`));
    for (const m of multi.manifests) {
      assert.equal(digestOf(await skopeoRaw(`docker://${other.host}/copied/multi@${m.digest}`)), m.digest);
    }
  });

  test('aborted mid-copy: rejects with the abort reason, no manifest at the destination', async () => {
    const controller = new AbortController();
    const reason = new Error('stop now');
    rig.proxy.stallAfter(1000, 2000, { path: new RegExp(`${rig.fixtures.app.layers.at(-1)!.digest.slice(7)}$`) });
    try {
      await assert.rejects(
        copyImage(`${rig.proxy.host}/library/app:1`, `${other.host}/aborted/app:1`, { client }, {
          signal: controller.signal,
          onEvent: (e) => {
            if (e.type === 'copying') controller.abort(reason);
          },
        }),
        (err) => err === reason,
      );
    } finally {
      rig.proxy.reset();
    }
    const head = await fetch(`${other.url}/v2/aborted/app/manifests/1`, { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  test('schema1 between registries: the signed manifest as it is (same payload digest), its blobs sized by HEAD; refused into a layout', async () => {
    const ubuntu = rig.fixtures.ubuntu!;
    const src = `${rig.proxy.host}/library/ubuntu:15.04`;
    const r = await copyImage(src, `${other.host}/copied/ubuntu:15.04`, { client });
    assert.equal(r.digest, ubuntu.digest);
    assert.equal(r.copied, new Set(ubuntu.blobSums).size);
    const raw = await skopeoRaw(`docker://${other.host}/copied/ubuntu:15.04`);
    assert.equal(schema1PayloadDigest(raw), ubuntu.digest);
    assert.deepEqual(schema1Payload(raw), schema1Payload(await skopeoRaw(`docker://${rig.registry.host}/library/ubuntu:15.04`)));
    const dir = join(await tmp.make('copy-layout'), 'schema1');
    await assert.rejects(copyImage(src, `oci:${dir}:u`, { client }), (err) => isStratumError(err, 'ERR_INVALID_MANIFEST') && /only between registries/.test(err.message));
  });

  test('a corrupt source byte: ERR_DIGEST_MISMATCH, and the destination gets no manifest', async () => {
    const app = rig.fixtures.app;
    const layer = app.layers.at(-1)!;
    rig.proxy.corruptByteAt(100, { path: new RegExp(`${layer.digest.slice(7)}$`), count: 20 });
    try {
      await assert.rejects(
        copyImage(`${rig.proxy.host}/library/app:1`, `${other.host}/corrupt/app:1`, { client }),
        (err) => isStratumError(err, 'ERR_DIGEST_MISMATCH') && err.message.includes(layer.digest),
      );
    } finally {
      rig.proxy.reset();
    }
    const head = await fetch(`${other.url}/v2/corrupt/app/manifests/1`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    const blob = await fetch(`${other.url}/v2/corrupt/app/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(blob.status, 404, 'the corrupt blob was never committed');
  });
});

describe('copy with OCI layout directories', () => {
  test('registry → oci:DIR:TAG → registry: skopeo and umoci read the layout; digests kept', async () => {
    const app = rig.fixtures.app;
    const dir = join(await tmp.make('copy-layout'), 'layout');
    const rec = recorder();
    const r = await copyImage(`${rig.proxy.host}/library/app:1`, `oci:${dir}:app`, { client }, { onEvent: rec.onEvent });
    assert.equal(r.digest, app.digest);
    assert.deepEqual(await skopeoRaw(`oci:${dir}:app`), await skopeoRaw(`docker://${rig.registry.host}/library/app:1`));
    const { stdout } = await exec('skopeo', ['inspect', `oci:${dir}:app`]);
    assert.equal(JSON.parse(stdout).Digest, app.digest);
    const ls = await exec('umoci', ['ls', '--layout', dir]);
    assert.deepEqual(ls.stdout.trim().split('\n'), ['app']);
    await exec('umoci', ['stat', '--image', `${dir}:app`, '--json']);

    const back = await copyImage(`oci:${dir}:app`, `docker://${other.host}/from-layout/app:1`, { client });
    assert.equal(back.digest, app.digest);
    assert.equal(digestOf(await skopeoRaw(`docker://${other.host}/from-layout/app:1`)), app.digest);
  });

  test('an index with all into a layout, untagged and tagged; a corrupt byte leaves no tag and no blob', async () => {
    const multi = rig.fixtures.multi;
    const dir = join(await tmp.make('copy-layout'), 'multi');
    await copyImage(`${rig.registry.host}/library/multi:1`, `oci:${dir}:multi`, { client }, { all: true });
    assert.deepEqual(await skopeoRaw(`oci:${dir}:multi`), await skopeoRaw(`docker://${rig.registry.host}/library/multi:1`));
    for (const m of multi.manifests) {
      const { stdout } = await exec('skopeo', ['inspect', '--override-arch', m.platform.architecture, ...(m.platform.variant ? ['--override-variant', m.platform.variant] : []), `oci:${dir}:multi`]);
      // skopeo's Digest is the index's; Layers are the chosen platform's.
      const inspected = JSON.parse(stdout) as { Digest: string; Layers: string[] };
      assert.equal(inspected.Digest, multi.digest);
      assert.deepEqual(inspected.Layers, m.layers.map((l) => l.digest));
    }
    const untagged = join(await tmp.make('copy-layout'), 'untagged');
    await copyImage(`${rig.registry.host}/library/base:1`, `oci:${untagged}`, { client });
    assert.equal(digestOf(await skopeoRaw(`oci:${untagged}`)), rig.fixtures.base.digest);

    const app = rig.fixtures.app;
    const layer = app.layers.at(-1)!;
    const bad = join(await tmp.make('copy-layout'), 'bad');
    rig.proxy.corruptByteAt(100, { path: new RegExp(`${layer.digest.slice(7)}$`), count: 20 });
    try {
      await assert.rejects(copyImage(`${rig.proxy.host}/library/app:1`, `oci:${bad}:app`, { client }), (err) => isStratumError(err, 'ERR_DIGEST_MISMATCH'));
    } finally {
      rig.proxy.reset();
    }
    assert.deepEqual(JSON.parse(await readFile(join(bad, 'index.json'), 'utf8')).manifests, []);
    assert.equal((await readdir(join(bad, 'blobs', 'sha256'))).includes(layer.digest.slice(7)), false);
  });
});

describe('copy with the store (Engine.copy)', () => {
  test('registry → store:NAME → oci:DIR and back to a registry; blobs streamed from the store', async () => {
    const app = rig.fixtures.app;
    const engine = await Engine.open({ root: await tmp.make('copy-store'), credentials: new StaticCredentials({}), env: { STRATUM_CONFIG: '' } });
    try {
      const into = await engine.copy(`${rig.registry.host}/library/app:1`, `store:${rig.registry.host}/library/app:1`);
      assert.equal(into.digest, app.digest);
      const image = await engine.resolveImage(`${rig.registry.host}/library/app:1`);
      assert.equal(image.descriptor.digest, app.digest);
      assert.equal(image.config.rootfs.diff_ids.length, app.layers.length);
      const dir = join(await tmp.make('copy-layout'), 'from-store');
      const out = await engine.copy(`store:${rig.registry.host}/library/app:1`, `oci:${dir}:app`);
      assert.equal(out.digest, app.digest);
      assert.equal(out.copied, app.layers.length + 1);
      assert.deepEqual(await skopeoRaw(`oci:${dir}:app`), await skopeoRaw(`docker://${rig.registry.host}/library/app:1`));
      const up = await engine.copy(`store:${rig.registry.host}/library/app:1`, `docker://${other.host}/from-store/app:1`);
      assert.equal(up.digest, app.digest);
      assert.equal(digestOf(await skopeoRaw(`docker://${other.host}/from-store/app:1`)), app.digest);
      await assert.rejects(engine.copy('store:no/such:image', `oci:${dir}:x`), (err) => isStratumError(err, 'ERR_NOT_FOUND'));

      // Tagged as a pull tags: one platform of an index, with the index kept and its digest recorded.
      const multi = rig.fixtures.multi;
      const ref = `${rig.registry.host}/library/multi:1`;
      const one = await engine.copy(ref, `store:${ref}`);
      const again = await engine.pull(ref, { unpack: false });
      assert.equal(again.upToDate, true);
      assert.equal(again.manifest.digest, one.digest);
      assert.equal((await engine.resolveImage(`${rig.registry.host}/library/multi@${multi.digest}`)).descriptor.digest, one.digest);
    } finally {
      await engine.close();
    }
  });
});
