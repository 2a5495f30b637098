// Signing and verifying images with Sigstore, offline key mode, against the real registry
// (distribution 2.8: no referrers API, so the referrers tag schema is what carries bundles).
import assert from 'node:assert/strict';
import { generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { isStratumError, SignatureError } from '../../src/errors.js';
import { digestOf, parseDigest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { parseReference, withTag } from '../../src/oci/reference.js';
import type { ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import { keySigner, publicKeyHint } from '../../src/sign/key.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from '../../src/sign/bundle.js';
import { COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIMPLE_SIGNING_MEDIA_TYPE, cosignTag } from '../../src/sign/artifact.js';
import { referrersTag } from '../../src/referrers/artifact.js';
import { fetchSmallBlob } from '../../src/sign/remote.js';
import { REFERRERS_ANNOTATION } from '../../src/referrers/local.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { copyOfApp, openTestEngine, stratumError } from '../helpers/engines.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

function p256(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

let registry: TestRegistry;
let fixtures: PushedFixtures;
let client: RegistryClient;
const tmp = new TempDirs();
const key = p256();
const other = p256();

const open = () => openTestEngine(tmp, 'sign-store');
const freshRepo = (engine: Engine, name: string) => copyOfApp(engine, registry, name);
const code = async (promise: Promise<unknown>) => (await stratumError(promise)).code;

before(async () => {
  registry = await sharedRegistry();
  fixtures = await pushFixtures(registry);
  client = new RegistryClient({ credentials: new StaticCredentials({}) });
});
after(async () => {
  await client?.close();
  await registry?.stop();
  await tmp.cleanup();
});

describe('keySigner', () => {
  test('signs with ECDSA P-256 and names its key; other key types are refused', async () => {
    const signer = keySigner(key.privatePem);
    const data = Buffer.from('payload');
    const sig = await signer.sign(data);
    assert.equal(sig.key.$case, 'publicKey');
    assert.ok(sig.key.$case === 'publicKey' && sig.key.hint === publicKeyHint(key.publicPem));
    assert.ok(cryptoVerify('sha256', data, key.publicPem, sig.signature));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.throws(() => keySigner(rsa), (e: unknown) => isStratumError(e, 'ERR_INVALID_ARGUMENT') && /P-256/.test((e as Error).message));
    assert.throws(() => keySigner('not a key'), (e: unknown) => isStratumError(e, 'ERR_INVALID_ARGUMENT'));
  });
});

describe('bundle format (cosign v3 layout)', () => {
  test('sign a stored image → kept in the store and pushed (referrers tag schema) → a fresh store verifies from the registry, pull --verify-key passes', async () => {
    const a = await open();
    const b = await open();
    try {
      const ref = await freshRepo(a, 'signed/bundle');
      await a.pull(ref, { unpack: false });
      const result = await a.sign(ref, keySigner(key.privatePem), { push: true });
      const digest = fixtures.app.digest;
      assert.equal(result.subject.digest, digest);
      assert.equal(result.format, 'bundle');
      assert.equal(result.stored, true);
      assert.deepEqual(result.pushed, { repository: parseReference(ref).name, via: 'referrers-tag' });

      // At the registry: the sha256-<hex> tag holds an index listing the artifact; the artifact has subject = the image.
      const repo = parseReference(ref);
      const index = JSON.parse((await client.resolve(withTag(repo, referrersTag(digest)))).bytes.toString()) as ImageIndex;
      assert.equal(index.mediaType, MediaType.OciIndex);
      assert.deepEqual(index.manifests.map((m) => [m.digest, m.artifactType]), [[result.signature, SIGSTORE_BUNDLE_MEDIA_TYPE]]);
      const artifact = JSON.parse((await client.fetchManifest(repo, result.signature)).bytes.toString()) as ImageManifest;
      assert.equal(artifact.artifactType, SIGSTORE_BUNDLE_MEDIA_TYPE);
      assert.equal(artifact.subject?.digest, digest);
      assert.equal(artifact.config.mediaType, MediaType.OciEmpty);
      assert.equal(artifact.layers[0]!.mediaType, SIGSTORE_BUNDLE_MEDIA_TYPE);
      const bundle = JSON.parse((await fetchSmallBlob(client, repo, artifact.layers[0]!)).toString());
      assert.equal(bundle.mediaType, SIGSTORE_BUNDLE_MEDIA_TYPE);
      assert.equal(bundle.verificationMaterial.publicKey.hint, publicKeyHint(key.publicPem));
      const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
      assert.deepEqual(statement.subject, [{ name: repo.name, digest: { sha256: digest.slice(7) } }]);
      assert.equal(statement.predicateType, 'https://sigstore.dev/cosign/sign/v1');

      // In the store that signed it: found there, without asking the registry.
      const local = await a.verifyImage(ref, { key: key.publicPem, source: 'store' });
      assert.equal(local.source, 'store');
      assert.equal(local.format, 'bundle');

      // A fresh store: found at the registry.
      const remote = await b.verifyImage(ref, { key: key.publicPem });
      assert.equal(remote.source, 'registry');
      assert.equal(remote.subject, digest);
      assert.match(remote.where, new RegExp(`registry tag ${referrersTag(digest)}`));
      const pulled = await b.pull(ref, { unpack: false, verifyKey: key.publicPem });
      assert.equal(pulled.manifest.digest, digest);
      // Another key: refused with its own code, before anything is stored.
      const c = await open();
      try {
        assert.equal(await code(c.verifyImage(ref, { key: other.publicPem })), 'ERR_SIGNATURE_OTHER_KEY');
        assert.equal(await code(c.pull(ref, { unpack: false, verifyKey: other.publicPem })), 'ERR_SIGNATURE_OTHER_KEY');
        assert.deepEqual(await c.store.listTags(), []);
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('an unsigned image is missing; pull --verify-key fetches no layer of it', async () => {
    const engine = await open();
    try {
      const ref = await freshRepo(engine, 'unsigned/app');
      const err = await engine.verifyImage(ref, { key: key.publicPem }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof SignatureError, String(err));
      assert.equal(err.code, 'ERR_SIGNATURE_MISSING');
      assert.equal(err.reason, 'missing');
      assert.equal(await code(engine.pull(ref, { unpack: false, verifyKey: key.publicPem })), 'ERR_SIGNATURE_MISSING');
      assert.deepEqual(await engine.store.listTags(), []);
      for (const layer of fixtures.app.layers) assert.equal(await engine.store.has(layer.digest), false);
    } finally {
      await engine.close();
    }
  });

  test('a tampered manifest is unsigned; a signature moved to it names another digest; an altered bundle is a bad signature', async () => {
    const engine = await open();
    try {
      const ref = await freshRepo(engine, 'tampered/app');
      const repo = parseReference(ref);
      const signed = await engine.sign(ref, keySigner(key.privatePem)); // not in the store: signed at the registry
      assert.equal(signed.stored, false);
      assert.equal(signed.pushed?.via, 'referrers-tag');
      assert.equal((await engine.verifyImage(ref, { key: key.publicPem })).subject, fixtures.app.digest);

      // The tag now names a changed manifest (an annotation added): its digest has no signature.
      const original = (await client.resolve(repo)).bytes;
      const changed = JSON.parse(original.toString()) as ImageManifest;
      changed.annotations = { ...changed.annotations, 'org.example.tampered': 'yes' };
      const changedBytes = Buffer.from(JSON.stringify(changed));
      const changedDigest = await client.pushManifest(repo, '1', MediaType.OciManifest, changedBytes);
      assert.equal(await code(engine.verifyImage(ref, { key: key.publicPem })), 'ERR_SIGNATURE_MISSING');

      // The valid signature of the old digest copied to the new digest's referrers tag: other digest.
      const oldIndex = (await client.resolve(withTag(repo, referrersTag(fixtures.app.digest)))).bytes;
      await client.pushManifest(repo, referrersTag(changedDigest), MediaType.OciIndex, oldIndex);
      const moved = await engine.verifyImage(ref, { key: key.publicPem }).then(() => undefined, (e: unknown) => e);
      assert.ok(moved instanceof SignatureError && moved.code === 'ERR_SIGNATURE_OTHER_DIGEST', String(moved));

      // The bundle's statement edited to name the new digest (the signature kept): bad signature.
      const artifact = JSON.parse((await client.fetchManifest(repo, signed.signature)).bytes.toString()) as ImageManifest;
      const bundle = JSON.parse((await fetchSmallBlob(client, repo, artifact.layers[0]!)).toString());
      const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
      statement.subject[0].digest.sha256 = changedDigest.slice(7);
      bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
      const { bundleArtifact } = await import('../../src/sign/artifact.js');
      const { pushReferrer } = await import('../../src/referrers/remote.js');
      await client.pushManifest(repo, referrersTag(changedDigest), MediaType.OciIndex, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] })));
      await pushReferrer(client, repo, changedDigest, bundleArtifact(Buffer.from(JSON.stringify(bundle)), { mediaType: MediaType.OciManifest, digest: changedDigest, size: changedBytes.length }));
      const bad = await engine.verifyImage(ref, { key: key.publicPem }).then(() => undefined, (e: unknown) => e);
      assert.ok(bad instanceof SignatureError && bad.code === 'ERR_SIGNATURE_INVALID', String(bad));
      assert.equal(await code(engine.pull(ref, { unpack: false, verifyKey: key.publicPem })), 'ERR_SIGNATURE_INVALID');
      assert.equal(digestOf(changedBytes), changedDigest);
    } finally {
      await engine.close();
    }
  });

  test('the store keeps a signature while the image is tagged; gc frees it with the image', async () => {
    const engine = await open();
    try {
      const ref = await freshRepo(engine, 'gc/app');
      await engine.pull(ref, { unpack: false });
      const signed = await engine.sign(ref, keySigner(key.privatePem));
      assert.equal(signed.pushed, undefined);
      const tagged = await engine.store.getTag(parseReference(ref).toString());
      const index = tagged?.descriptor.annotations?.[REFERRERS_ANNOTATION];
      assert.ok(index);
      await engine.gc();
      assert.equal((await engine.verifyImage(ref, { key: key.publicPem, source: 'store' })).where.startsWith('store'), true);
      // Not pushed: the registry has nothing for a fresh store.
      const fresh = await open();
      try {
        assert.equal(await code(fresh.verifyImage(ref, { key: key.publicPem })), 'ERR_SIGNATURE_MISSING');
      } finally {
        await fresh.close();
      }
      await engine.removeImage(ref);
      await engine.gc();
      assert.equal(await engine.store.has(signed.signature), false);
      assert.equal(await engine.store.has(parseDigest(index)), false);
    } finally {
      await engine.close();
    }
  });
});

describe('cosign format (sha256-<hex>.sig)', () => {
  test('round trip: simple-signing payload layer with the signature annotation; verified from the registry and the store', async () => {
    const a = await open();
    const b = await open();
    try {
      const ref = await freshRepo(a, 'cosign/app');
      await a.pull(ref, { unpack: false });
      const result = await a.sign(ref, keySigner(key.privatePem), { format: 'cosign', push: true });
      assert.deepEqual(result.pushed?.via, 'cosign-tag');
      const repo = parseReference(ref);
      const digest = fixtures.app.digest;
      const sig = JSON.parse((await client.resolve(withTag(repo, cosignTag(digest)))).bytes.toString()) as ImageManifest;
      assert.equal(sig.layers.length, 1);
      const layer = sig.layers[0]!;
      assert.equal(layer.mediaType, COSIGN_SIMPLE_SIGNING_MEDIA_TYPE);
      const payload = await fetchSmallBlob(client, repo, layer);
      assert.deepEqual(JSON.parse(payload.toString()).critical, { identity: { 'docker-reference': repo.name }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' });
      // What any cosign verifier does: the annotation's signature over the payload bytes.
      assert.ok(cryptoVerify('sha256', payload, key.publicPem, Buffer.from(layer.annotations![COSIGN_SIGNATURE_ANNOTATION]!, 'base64')));

      assert.equal((await a.verifyImage(ref, { key: key.publicPem, source: 'store' })).format, 'cosign');
      const remote = await b.verifyImage(ref, { key: key.publicPem });
      assert.equal(remote.format, 'cosign');
      assert.equal(remote.where, `registry tag ${cosignTag(digest)}`);
      assert.equal(await code(b.verifyImage(ref, { key: other.publicPem })), 'ERR_SIGNATURE_OTHER_KEY');

      // A second signer appends a layer, as cosign does; both verify.
      await b.sign(ref, keySigner(other.privatePem), { format: 'cosign' });
      const twice = JSON.parse((await client.resolve(withTag(repo, cosignTag(digest)))).bytes.toString()) as ImageManifest;
      assert.equal(twice.layers.length, 2);
      assert.equal((await b.verifyImage(ref, { key: other.publicPem })).format, 'cosign');
      assert.equal((await b.verifyImage(ref, { key: key.publicPem })).format, 'cosign');
      await b.pull(ref, { unpack: false, verifyKey: key.publicPem });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('keyless (Fulcio + Rekor): needs their network', () => {
  test('an unreachable Fulcio is ERR_KEYLESS_UNAVAILABLE, and nothing is stored or pushed', async () => {
    const { keylessSigner } = await import('../../src/sign/key.js');
    const engine = await open();
    try {
      const ref = await freshRepo(engine, 'keyless/app');
      const signer = await keylessSigner({ fulcioURL: 'http://127.0.0.1:9', identityToken: 'not-a-token', timeoutMs: 2000 });
      const err = await engine.sign(ref, signer, { rekorURL: 'http://127.0.0.1:9' }).then(() => undefined, (e: unknown) => e);
      assert.ok(isStratumError(err, 'ERR_KEYLESS_UNAVAILABLE'), String(err));
      assert.equal(await code(engine.verifyImage(ref, { key: key.publicPem })), 'ERR_SIGNATURE_MISSING');
    } finally {
      await engine.close();
    }
  });

  test('against the configured services ($STRATUM_FULCIO_URL, $STRATUM_REKOR_URL, $SIGSTORE_ID_TOKEN; public-good Sigstore by default)', async (t) => {
    const { keylessSettings } = await import('../../src/sign/key.js');
    const settings = keylessSettings();
    // Try Fulcio for real first: a skip must say what was tried and why it failed.
    const reach = await fetch(new URL('/api/v2/configuration', settings.fulcioURL), { signal: AbortSignal.timeout(5000) }).then(
      (res) => (res.ok ? undefined : `HTTP ${res.status}`),
      (err: unknown) => `${(err as Error).message}${(err as { cause?: Error }).cause ? `: ${(err as { cause: Error }).cause.message}` : ''}`,
    );
    if (reach !== undefined) {
      console.warn(`# SKIPPED: keyless signing: no Fulcio reachable at ${settings.fulcioURL} (${reach})`);
      return t.skip(`no Fulcio reachable at ${settings.fulcioURL} (${reach})`);
    }
    const token = settings.identityToken;
    if (!token) {
      console.warn(`# SKIPPED: keyless signing: Fulcio at ${settings.fulcioURL} answers, but no OIDC token ($SIGSTORE_ID_TOKEN)`);
      return t.skip(`Fulcio at ${settings.fulcioURL} answers, but there is no OIDC token ($SIGSTORE_ID_TOKEN)`);
    }
    const { keylessSigner } = await import('../../src/sign/key.js');
    const engine = await open();
    try {
      const ref = await freshRepo(engine, 'keyless/online');
      const signer = await keylessSigner({ identityToken: token, fulcioURL: settings.fulcioURL });
      const result = await engine.sign(ref, signer, { rekorURL: settings.rekorURL });
      assert.equal(result.pushed?.via, 'referrers-tag');
    } finally {
      await engine.close();
    }
  });
});
