// Attaching artifacts to images (OCI referrers) and listing them, in the store and at the real
// registry (distribution 2.8: no referrers API, so the referrers tag schema carries them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { Engine } from '../../src/engine/engine.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { referrersTag } from '../../src/referrers/artifact.js';
import { keySigner } from '../../src/sign/key.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from '../../src/sign/bundle.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { copyOfApp, openTestEngine, stratumError } from '../helpers/engines.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

const exec = promisify(execFile);
const SBOM = 'application/spdx+json';
let registry: TestRegistry;
let fixtures: PushedFixtures;
const tmp = new TempDirs();

const open = () => openTestEngine(tmp, 'attach-store');
const freshRepo = (engine: Engine, name: string) => copyOfApp(engine, registry, name);

/** GET a manifest by raw HTTP, as any client of the registry sees it. */
async function rawManifest<T>(repository: string, reference: string): Promise<T> {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${reference}`, { headers: { accept: `${MediaType.OciIndex}, ${MediaType.OciManifest}` } });
  assert.equal(res.status, 200, `GET ${repository}/manifests/${reference}`);
  return (await res.json()) as T;
}

const code = stratumError;

before(async () => {
  registry = await sharedRegistry();
  fixtures = await pushFixtures(registry);
});

after(async () => {
  await registry?.stop();
  await tmp.cleanup();
});

describe('attach and referrers', () => {
  test('a stored image named by its registry: the artifact is kept in the store (GC keeps it while the image is tagged) and pushed (referrers tag schema); referrers lists it from both', async () => {
    const a = await open();
    const b = await open();
    try {
      const ref = await freshRepo(a, 'attach/stored');
      await a.pull(ref, { unpack: false });
      const sbom = Buffer.from('{"spdxVersion":"SPDX-2.3"}');
      const result = await a.attach(ref, { artifactType: SBOM, blob: sbom, annotations: { 'org.example.tool': 'test' } });
      const digest = fixtures.app.digest;
      assert.equal(result.subject.digest, digest);
      assert.equal(result.stored, true);
      assert.deepEqual(result.pushed, { repository: `${registry.host}/attach/stored`, via: 'referrers-tag' });

      // Raw HTTP: the sha256-<hex> tag index lists it; the artifact manifest has the OCI 1.1 artifact shape.
      const index = await rawManifest<ImageIndex>('attach/stored', referrersTag(digest));
      assert.deepEqual(index.manifests.map((m) => [m.digest, m.artifactType, m.annotations?.['org.example.tool']]), [[result.artifact.digest, SBOM, 'test']]);
      const manifest = await rawManifest<ImageManifest>('attach/stored', result.artifact.digest);
      assert.equal(manifest.mediaType, MediaType.OciManifest);
      assert.equal(manifest.artifactType, SBOM);
      assert.deepEqual(manifest.config, { mediaType: MediaType.OciEmpty, digest: digestOf(Buffer.from('{}')), size: 2 });
      assert.deepEqual(manifest.layers, [{ mediaType: SBOM, digest: digestOf(sbom), size: sbom.length }]);
      assert.equal(manifest.subject?.digest, digest);
      assert.match(manifest.annotations?.['org.opencontainers.image.created'] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

      const both = await a.referrers(ref);
      assert.deepEqual(both.map((r) => [r.digest, r.artifactType, r.source]), [[result.artifact.digest, SBOM, 'store+registry']]);
      const local = await a.referrers(ref, { source: 'store' });
      assert.deepEqual(local.map((r) => r.source), ['store']);
      // A fresh store sees the registry's.
      const remote = await b.referrers(ref);
      assert.deepEqual(remote.map((r) => [r.digest, r.source, r.subject]), [[result.artifact.digest, 'registry', digest]]);
      assert.deepEqual(await b.referrers(ref, { artifactType: 'application/vnd.example.other' }), []);

      // Kept in the store while the image is tagged; gone with it.
      const sbomDigest = digestOf(sbom);
      await a.gc();
      assert.equal(await a.store.has(result.artifact.digest), true);
      assert.equal(await a.store.has(sbomDigest), true);
      await a.removeImage(ref);
      await a.gc();
      assert.equal(await a.store.has(result.artifact.digest), false);
      assert.equal(await a.store.has(sbomDigest), false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('signatures and attachments share one referrers list; artifactType filters it; a file attaches as well as a buffer', async () => {
    const a = await open();
    try {
      const ref = await freshRepo(a, 'attach/mixed');
      await a.pull(ref, { unpack: false });
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const signed = await a.sign(ref, keySigner(privateKey.export({ type: 'pkcs8', format: 'pem' })), { push: true });
      const file = join(await tmp.make('attach-file'), 'sbom.json');
      await writeFile(file, '{"spdxVersion":"SPDX-2.3","name":"file"}');
      const attached = await a.attach(ref, { artifactType: SBOM, path: file, mediaType: 'application/json' });
      const all = await a.referrers(ref);
      assert.deepEqual(all.map((r) => r.artifactType).sort(), [SBOM, SIGSTORE_BUNDLE_MEDIA_TYPE].sort());
      assert.deepEqual((await a.referrers(ref, { artifactType: SBOM })).map((r) => r.digest), [attached.artifact.digest]);
      assert.deepEqual((await a.referrers(ref, { artifactType: SIGSTORE_BUNDLE_MEDIA_TYPE })).map((r) => r.digest), [signed.signature]);
      // The attachment does not disturb verification.
      assert.equal((await a.verifyImage(ref, { key: createPublicKey(privateKey) })).format, 'bundle');
    } finally {
      await a.close();
    }
  });

  test('an image not in the store is attached at its registry only; bad input is refused with a clear error', async () => {
    const a = await open();
    try {
      const ref = await freshRepo(a, 'attach/remote');
      const result = await a.attach(ref, { artifactType: 'application/vnd.example.note', blob: Buffer.from('hello') });
      assert.equal(result.stored, false);
      assert.equal(result.pushed?.via, 'referrers-tag');
      assert.deepEqual(await a.store.listTags(), []);
      assert.deepEqual((await a.referrers(ref)).map((r) => r.source), ['registry']);

      const missing = await code(a.attach(ref, { artifactType: SBOM, path: '/nonexistent/sbom.json' }));
      assert.equal(missing.code, 'ERR_INVALID_ARGUMENT');
      assert.match(missing.message, /\/nonexistent\/sbom\.json.*ENOENT/);
      const unknown = await code(a.attach('nosuch/image:1', { artifactType: SBOM, blob: Buffer.from('x') }));
      assert.equal(unknown.code, 'ERR_NOT_FOUND');
      assert.match(unknown.message, /nosuch\/image:1/);
      assert.equal((await code(a.referrers('nosuch/image:1'))).code, 'ERR_NOT_FOUND');
      assert.equal((await code(a.attach(`${registry.host}/attach/nosuch:1`, { artifactType: SBOM, blob: Buffer.from('x') }))).code, 'ERR_NOT_FOUND');
      assert.equal((await code(a.attach(ref, { artifactType: 'not a type', blob: Buffer.from('x') }))).code, 'ERR_INVALID_ARGUMENT');
      assert.equal((await code(a.attach(ref, { artifactType: SBOM }))).code, 'ERR_INVALID_ARGUMENT');
      assert.match((await code(a.attach(ref, { artifactType: SBOM, blob: Buffer.from('x'), push: false }))).message, /not in the store/);
    } finally {
      await a.close();
    }
  });

  test('push carries the stored referrers (bundle, cosign signature, attachment) to the new repository; referrers: false leaves them', async () => {
    const a = await open();
    const b = await open();
    try {
      const ref = await freshRepo(a, 'attach/carry-src');
      await a.pull(ref, { unpack: false });
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const signer = keySigner(privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const bundle = await a.sign(ref, signer);
      await a.sign(ref, signer, { format: 'cosign' });
      const note = await a.attach(ref, { artifactType: 'application/vnd.example.note', blob: Buffer.from('carried'), push: false });
      assert.equal(note.pushed, undefined);
      assert.deepEqual(await b.referrers(ref), [], 'nothing pushed yet');

      const bare = `${registry.host}/attach/carry-bare:1`;
      const skipped = await a.push(ref, bare, { referrers: false });
      assert.deepEqual(skipped.referrers, []);
      assert.deepEqual(await b.referrers(bare), []);

      const dest = `${registry.host}/attach/carry-dst:1`;
      const pushed = await a.push(ref, dest);
      assert.deepEqual(pushed.referrers.map((r) => r.via).sort(), ['cosign-tag', 'referrers-tag', 'referrers-tag']);
      const index = await rawManifest<ImageIndex>('attach/carry-dst', referrersTag(pushed.digest));
      assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [bundle.signature, note.artifact.digest].sort());
      const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      assert.equal((await b.verifyImage(dest, { key: publicPem })).source, 'registry');
      assert.equal((await b.pull(dest, { unpack: false, verifyKey: publicPem })).manifest.digest, pushed.digest);
      assert.deepEqual((await b.referrers(dest, { source: 'registry', artifactType: 'application/vnd.example.note' })).map((r) => r.digest), [note.artifact.digest]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('interop: skopeo inspect --raw reads the pushed attachment', async (t) => {
    if (!existsSync('/usr/bin/skopeo')) return t.skip('/usr/bin/skopeo is not installed');
    const a = await open();
    try {
      const ref = await freshRepo(a, 'attach/skopeo');
      const result = await a.attach(ref, { artifactType: SBOM, blob: Buffer.from('{"spdxVersion":"SPDX-2.3"}') });
      const { stdout } = await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/attach/skopeo@${result.artifact.digest}`]);
      assert.equal(digestOf(Buffer.from(stdout)), result.artifact.digest, 'byte for byte');
      const manifest = JSON.parse(stdout) as ImageManifest;
      assert.equal(manifest.artifactType, SBOM);
      assert.equal(manifest.subject?.digest, fixtures.app.digest);
      const tagIndex = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/attach/skopeo:${referrersTag(fixtures.app.digest)}`])).stdout) as ImageIndex;
      assert.ok(tagIndex.manifests.some((m) => m.digest === result.artifact.digest));
    } finally {
      await a.close();
    }
  });
});
