// Interop with an independent Sigstore implementation: @sigstore/cli 0.8's own signing and
// verification stack (its @sigstore/sign 3.1, and sigstore 3.1's @sigstore/verify 2.1 /
// @sigstore/bundle 3.1: older majors than stratum's, installed apart under their node_modules).
// Nothing here goes through stratum to read or place a bundle: the registry is spoken to with
// plain fetch, so the layout itself (referrers tag schema, artifact manifest) is checked too.
//
// `sigstore verify` (the CLI command) cannot take part: it has no flag for a public key (it
// verifies Fulcio certificates only) and it refreshes the public-good TUF root over the network
// first; the test runs it once and skips that step loudly with its message.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { keySigner } from '../../src/sign/key.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { openTestEngine } from '../helpers/engines.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The sign library @sigstore/cli 0.8 itself loads (3.1.x). */
const cliRequire = createRequire(join(ROOT, 'node_modules/@sigstore/cli/package.json'));
/** The verify library the `sigstore` package (what @sigstore/cli verifies with) loads (2.1.x). */
const sigstoreRequire = createRequire(join(ROOT, 'node_modules/sigstore/package.json'));

const BUNDLE_MT = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const INDEX_MT = 'application/vnd.oci.image.index.v1+json';
const MANIFEST_MT = 'application/vnd.oci.image.manifest.v1+json';

let registry: TestRegistry;
let fixtures: PushedFixtures;
const tmp = new TempDirs();
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function get(path: string, accept = '*/*'): Promise<Buffer> {
  const res = await fetch(`${registry.url}${path}`, { headers: { accept } });
  assert.equal(res.status, 200, `GET ${path}: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

async function putBlob(repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const start = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202);
  const location = new URL(start.headers.get('location')!, registry.url);
  location.searchParams.set('digest', digest);
  const done = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(done.status, 201);
  return digest;
}

async function putManifest(repo: string, reference: string, mediaType: string, bytes: Buffer): Promise<void> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType } });
  assert.equal(res.status, 201, await res.text());
}

/** Places a bundle as cosign v3 does on a registry without the referrers API, by hand. */
async function attachBundle(repo: string, subject: { digest: string; size: number }, bundle: Buffer): Promise<void> {
  const empty = Buffer.from('{}');
  await putBlob(repo, empty);
  const layer = await putBlob(repo, bundle);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_MT,
      artifactType: BUNDLE_MT,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [{ mediaType: BUNDLE_MT, digest: layer, size: bundle.length }],
      subject: { mediaType: MANIFEST_MT, ...subject },
    }),
  );
  await putManifest(repo, sha256(manifest), MANIFEST_MT, manifest);
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MT, manifests: [{ mediaType: MANIFEST_MT, digest: sha256(manifest), size: manifest.length, artifactType: BUNDLE_MT }] }));
  await putManifest(repo, `sha256-${subject.digest.slice(7)}`, INDEX_MT, index);
}

/** The signer shape @sigstore/sign 3.1 takes: the same local key, its own hint scheme (none). */
const foreignSigner = {
  async sign(data: Buffer) {
    return { signature: cryptoSign('sha256', data, privateKey), key: { $case: 'publicKey' as const, publicKey: publicPem, hint: '' } };
  },
};

const open = () => openTestEngine(tmp, 'interop-store');

before(async () => {
  registry = await sharedRegistry();
  fixtures = await pushFixtures(registry);
});
after(async () => {
  await registry?.stop();
  await tmp.cleanup();
});

describe('interop with @sigstore/cli 0.8 (sign 3.1, verify 2.1)', () => {
  test('its verifier checks the bundle stratum pushed, read from the registry by hand, with only the public key', async () => {
    const engine = await open();
    const ref = `${registry.host}/interop/stratum-signed:1`;
    try {
      await engine.copy(`${registry.host}/library/app:1`, ref);
      await engine.sign(ref, keySigner(privatePem));
    } finally {
      await engine.close();
    }
    const digest = fixtures.app.digest;
    const index = JSON.parse((await get(`/v2/interop/stratum-signed/manifests/sha256-${digest.slice(7)}`, INDEX_MT)).toString());
    const entry = index.manifests.find((m: { artifactType?: string }) => m.artifactType === BUNDLE_MT);
    const artifact = JSON.parse((await get(`/v2/interop/stratum-signed/manifests/${entry.digest}`, MANIFEST_MT)).toString());
    assert.equal(artifact.subject.digest, digest);
    const bundleBytes = await get(`/v2/interop/stratum-signed/blobs/${artifact.layers[0].digest}`);
    const file = join(await tmp.make('interop'), 'image.sigstore.json');
    await writeFile(file, bundleBytes);

    const { Verifier, toSignedEntity } = sigstoreRequire('@sigstore/verify') as typeof import('@sigstore/verify');
    const { bundleFromJSON } = sigstoreRequire('@sigstore/bundle') as typeof import('@sigstore/bundle');
    assert.match((sigstoreRequire('@sigstore/verify/package.json') as { version: string }).version, /^2\./);
    const trust = { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [], publicKey: () => ({ publicKey, validFor: () => true }) };
    const bundle = bundleFromJSON(JSON.parse(bundleBytes.toString()));
    const signer = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, tsaThreshold: 0 } as never).verify(toSignedEntity(bundle));
    assert.ok(signer.key);
    assert.equal(bundle.content.$case, 'dsseEnvelope');
    const statement = JSON.parse(Buffer.from(bundle.content.$case === 'dsseEnvelope' ? bundle.content.dsseEnvelope.payload : Buffer.alloc(0)).toString());
    assert.equal(statement.subject[0].digest.sha256, digest.slice(7));
    // The same bundle with another key: refused by that verifier too.
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    assert.throws(() => new Verifier({ ...trust, publicKey: () => ({ publicKey: otherKey, validFor: () => true }) }, { tlogThreshold: 0, ctlogThreshold: 0, tsaThreshold: 0 } as never).verify(toSignedEntity(bundle)));

    // The CLI command itself: it needs the public-good TUF root (network) and takes no key.
    const run = await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/@sigstore/cli/bin/run'), 'verify', file, '--tlog-threshold', '0', '--ctlog-threshold', '0', '--tuf-cache-path', join(file, '..', 'tuf')], { timeout: 60_000 }).then(
      () => undefined,
      (err: { stderr?: string; message: string }) => (err.stderr ?? err.message).split('\n').find((l) => /^\w*Error: /.test(l)) ?? err.message,
    );
    if (run !== undefined) test.skip?.(`sigstore verify (the @sigstore/cli command) cannot check a key-signed bundle offline: ${run}`);
    if (run !== undefined) console.warn(`# SKIPPED step: @sigstore/cli 'sigstore verify' offline: ${run}`);
  });

  test('stratum verifies bundles made by its signer: an in-toto DSSE statement (as `sigstore attest`) and a message signature over the manifest', async () => {
    const { DSSEBundleBuilder, MessageSignatureBundleBuilder } = cliRequire('@sigstore/sign') as typeof import('@sigstore/sign');
    const { bundleToJSON } = cliRequire('@sigstore/bundle') as typeof import('@sigstore/bundle');
    assert.match((cliRequire('@sigstore/sign/package.json') as { version: string }).version, /^3\./);
    const engine = await open();
    try {
      const dsseRef = `${registry.host}/interop/foreign-dsse:1`;
      await engine.copy(`${registry.host}/library/app:1`, dsseRef);
      const manifest = await get(`/v2/interop/foreign-dsse/manifests/1`, MANIFEST_MT);
      const subject = { digest: sha256(manifest), size: manifest.length };
      const statement = { _type: 'https://in-toto.io/Statement/v1', subject: [{ name: `${registry.host}/interop/foreign-dsse`, digest: { sha256: subject.digest.slice(7) } }], predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {} };
      const dsse = await new DSSEBundleBuilder({ signer: foreignSigner as never, witnesses: [] }).create({ data: Buffer.from(JSON.stringify(statement)), type: 'application/vnd.in-toto+json' });
      await attachBundle('interop/foreign-dsse', subject, Buffer.from(JSON.stringify(bundleToJSON(dsse))));
      const ok = await engine.verifyImage(dsseRef, { key: publicPem });
      assert.equal(ok.format, 'bundle');
      assert.equal(ok.subject, subject.digest);

      const msgRef = `${registry.host}/interop/foreign-message:1`;
      await engine.copy(`${registry.host}/library/app:1`, msgRef);
      const message = await new MessageSignatureBundleBuilder({ signer: foreignSigner as never, witnesses: [] }).create({ data: manifest });
      await attachBundle('interop/foreign-message', subject, Buffer.from(JSON.stringify(bundleToJSON(message))));
      assert.equal((await engine.verifyImage(msgRef, { key: publicPem })).subject, subject.digest);
      // The same stored image checked through the store (no signature there: asked at the registry by digest).
      await engine.pull(msgRef, { unpack: false });
      assert.equal((await engine.verifyImage(msgRef, { key: publicPem })).source, 'store');

      // Another key against their bundles: no hint to tell, so a bad signature.
      const otherPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      await assert.rejects(engine.verifyImage(dsseRef, { key: otherPem }), (e: unknown) => isStratumError(e, 'ERR_SIGNATURE_INVALID'));
    } finally {
      await engine.close();
    }
  });
});
