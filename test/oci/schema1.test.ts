import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { InvalidManifestError } from '../../src/errors.js';
import { digestOf, EMPTY_GZIP_LAYER_DIGEST, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import {
  convertSchema1,
  isSignedSchema1,
  libtrustKeyId,
  parseSchema1,
  schema1Blobs,
  schema1Layers,
  schema1NonEmptyBlobs,
  schema1Payload,
  schema1PayloadDigest,
  signSchema1,
  verifySchema1Signatures,
  type Schema1Manifest,
} from '../../src/oci/schema1.js';
import { buildLayer, type BuiltLayer } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { EMPTY_GZIP_LAYER, pushSchema1, uploadBlob } from '../fixtures/push.js';
import { UBUNTU_ENTRIES, UBUNTU_STEPS, ubuntuV1History } from '../fixtures/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());

function newKey() {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

const v1 = (o: Record<string, unknown>) => JSON.stringify(o);

/** A 4-step schema1 manifest (newest first), with `real` as the only non-throwaway layer. */
function ubuntuShaped(real: BuiltLayer, uncompressedSize: number): Schema1Manifest {
  const history = ubuntuV1History(real, uncompressedSize);
  const blobs = UBUNTU_STEPS.map((s) => (s.throwaway ? EMPTY_GZIP_LAYER_DIGEST : real.digest));
  return {
    schemaVersion: 1,
    name: 'library/ubuntu',
    tag: '15.04',
    architecture: 'amd64',
    fsLayers: blobs.map((blobSum) => ({ blobSum })).reverse(),
    history: history.map((h) => ({ v1Compatibility: JSON.stringify(h) })).reverse(),
  };
}

const SMALL: Schema1Manifest = {
  schemaVersion: 1,
  name: 'library/small',
  tag: '1',
  architecture: 'amd64',
  fsLayers: [{ blobSum: EMPTY_GZIP_LAYER_DIGEST }],
  history: [{ v1Compatibility: v1({ id: 'a'.repeat(64), created: '2016-01-01T00:00:00Z', throwaway: true, note: '<&>' }) }],
};

describe('schema1 signing and payload digest', () => {
  test('sign → parse → payload digest is the sha256 of the 3-space-indented payload', () => {
    const signed = signSchema1(SMALL, newKey());
    assert.ok(isSignedSchema1(signed));
    const payload = schema1Payload(signed);
    // Go's MarshalIndent escapes <, >, & inside strings; the payload must be exactly that JSON.
    const expected = JSON.stringify(SMALL, null, 3).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
    assert.equal(payload.toString(), expected);
    assert.equal(schema1PayloadDigest(signed), digestOf(expected));
    assert.deepEqual(parseSchema1(signed, 'small'), SMALL);
    verifySchema1Signatures(signed, 'small');
  });

  test('the digest does not depend on key or signing time', () => {
    const a = signSchema1(SMALL, newKey(), { time: new Date('2016-01-01T00:00:00Z') });
    const b = signSchema1(SMALL, newKey(), { time: new Date('2020-06-01T12:00:00Z') });
    assert.notDeepEqual(a, b);
    assert.equal(schema1PayloadDigest(a), schema1PayloadDigest(b));
  });

  test('protected header holds formatLength, formatTail and an RFC 3339 time; jwk has a libtrust kid', () => {
    const key = newKey();
    const signed = signSchema1(SMALL, key, { time: new Date('2016-01-26T17:48:31.5Z') });
    const doc = JSON.parse(signed.toString()) as { signatures: { header: { jwk: Record<string, string>; alg: string }; protected: string }[] };
    assert.equal(doc.signatures.length, 1);
    const sig = doc.signatures[0]!;
    const prot = JSON.parse(Buffer.from(sig.protected, 'base64url').toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(prot), ['formatLength', 'formatTail', 'time']);
    assert.equal(prot.time, '2016-01-26T17:48:31Z');
    assert.equal(Buffer.from(prot.formatTail as string, 'base64url').toString(), '\n}');
    assert.equal(signed.subarray(0, prot.formatLength as number).toString(), schema1Payload(signed).subarray(0, -2).toString());
    assert.equal(sig.header.alg, 'ES256');
    assert.deepEqual(Object.keys(sig.header.jwk), ['crv', 'kid', 'kty', 'x', 'y']);
    assert.match(sig.header.jwk.kid!, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    assert.equal(sig.header.jwk.kid, libtrustKeyId(key));
    // signatures is the last key, spliced in with the payload's indentation.
    assert.match(signed.toString(), /\],\n {3}"signatures": \[\n {6}\{\n {9}"header": \{/);
  });

  test('a tampered payload gives a different digest and fails verification', () => {
    const signed = signSchema1({ ...SMALL, tag: '15.04' }, newKey());
    const tampered = Buffer.from(signed.toString().replace('"tag": "15.04"', '"tag": "15.05"'));
    assert.equal(tampered.length, signed.length);
    assert.notEqual(schema1PayloadDigest(tampered), schema1PayloadDigest(signed));
    assert.throws(() => verifySchema1Signatures(tampered, 'tampered'), (err: unknown) => err instanceof InvalidManifestError && /does not verify/.test(err.message));
  });

  test('a tampered signature keeps the digest but fails verification', () => {
    const signed = signSchema1(SMALL, newKey());
    const doc = JSON.parse(signed.toString()) as { signatures: { signature: string }[] };
    const sig = doc.signatures[0]!.signature;
    const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    const tampered = Buffer.from(signed.toString().replace(sig, flipped));
    assert.equal(schema1PayloadDigest(tampered), schema1PayloadDigest(signed));
    assert.throws(() => verifySchema1Signatures(tampered), InvalidManifestError);
  });

  test('an unsigned manifest is addressed by the sha256 of its bytes', () => {
    const bytes = Buffer.from(JSON.stringify(SMALL));
    assert.equal(isSignedSchema1(bytes), false);
    assert.equal(schema1PayloadDigest(bytes), digestOf(bytes));
    assert.deepEqual(parseSchema1(bytes, 'unsigned'), SMALL);
  });

  test('bytes outside the signed payload cannot change what parseSchema1 returns', () => {
    const signed = signSchema1(SMALL, newKey()).toString();
    // A duplicate "tag" key after the payload would win in a plain JSON.parse of the whole body.
    const sneaky = Buffer.from(signed.replace(/\n}$/, ',\n   "tag": "evil"\n}'));
    assert.equal(JSON.parse(sneaky.toString()).tag, 'evil');
    assert.equal(parseSchema1(sneaky, 'sneaky').tag, '1');
  });
});

describe('schema1 validation', () => {
  const good = JSON.parse(JSON.stringify(SMALL)) as Record<string, unknown>;
  const cases: { name: string; bytes: () => Buffer; field: RegExp }[] = [
    { name: 'not JSON', bytes: () => Buffer.from('{"schemaVersion": 1,'), field: /not valid JSON/ },
    { name: 'schemaVersion 2', bytes: () => Buffer.from(JSON.stringify({ ...good, schemaVersion: 2 })), field: /schemaVersion/ },
    { name: 'no name', bytes: () => Buffer.from(JSON.stringify({ ...good, name: undefined })), field: /name/ },
    { name: 'empty tag', bytes: () => Buffer.from(JSON.stringify({ ...good, tag: '' })), field: /tag/ },
    { name: 'no architecture', bytes: () => Buffer.from(JSON.stringify({ ...good, architecture: 7 })), field: /architecture/ },
    { name: 'empty fsLayers', bytes: () => Buffer.from(JSON.stringify({ ...good, fsLayers: [], history: [] })), field: /fsLayers/ },
    {
      name: 'length mismatch',
      bytes: () => Buffer.from(JSON.stringify({ ...good, fsLayers: [{ blobSum: EMPTY_GZIP_LAYER_DIGEST }, { blobSum: EMPTY_GZIP_LAYER_DIGEST }] })),
      field: /fsLayers has 2 entries but history has 1/,
    },
    { name: 'uppercase blobSum', bytes: () => Buffer.from(JSON.stringify({ ...good, fsLayers: [{ blobSum: EMPTY_GZIP_LAYER_DIGEST.toUpperCase() }] })), field: /fsLayers\[0\]\.blobSum/ },
    { name: 'blobSum with a path', bytes: () => Buffer.from(JSON.stringify({ ...good, fsLayers: [{ blobSum: 'sha256:../../etc/passwd' }] })), field: /fsLayers\[0\]\.blobSum/ },
    { name: 'v1Compatibility not JSON', bytes: () => Buffer.from(JSON.stringify({ ...good, history: [{ v1Compatibility: '{id' }] })), field: /history\[0\]\.v1Compatibility is not valid JSON/ },
    { name: 'v1Compatibility without id', bytes: () => Buffer.from(JSON.stringify({ ...good, history: [{ v1Compatibility: '{"created":"x"}' }] })), field: /history\[0\]\.v1Compatibility has no id/ },
    { name: 'v1Compatibility not a string', bytes: () => Buffer.from(JSON.stringify({ ...good, history: [{ v1Compatibility: { id: 'x' } }] })), field: /history\[0\]\.v1Compatibility must be a string/ },
    { name: 'empty signatures', bytes: () => Buffer.from(JSON.stringify({ ...good, signatures: [] })), field: /signatures must be a non-empty array/ },
  ];
  for (const c of cases) {
    test(`rejects ${c.name}`, () => {
      assert.throws(
        () => parseSchema1(c.bytes(), 'registry.test/library/small:1'),
        (err: unknown) => err instanceof InvalidManifestError && err.code === 'ERR_INVALID_MANIFEST' && err.message.startsWith('registry.test/library/small:1: ') && c.field.test(err.message),
      );
    });
  }

  test('rejects signatures whose protected headers disagree', () => {
    const a = JSON.parse(signSchema1(SMALL, newKey()).toString()) as { signatures: { protected: string }[] };
    const other = JSON.parse(Buffer.from(a.signatures[0]!.protected, 'base64url').toString()) as { formatLength: number };
    const second = { ...a.signatures[0]!, protected: Buffer.from(JSON.stringify({ ...other, formatLength: other.formatLength - 1 })).toString('base64url') };
    const bytes = Buffer.from(JSON.stringify({ ...a, signatures: [a.signatures[0], second] }, null, 3));
    assert.throws(() => schema1Payload(bytes, 'two-sigs'), /signatures\[1\]\.protected disagrees/);
  });

  test('rejects a protected header that is not base64url, or a formatLength past the end', () => {
    const doc = JSON.parse(signSchema1(SMALL, newKey()).toString()) as { signatures: { protected: string }[] };
    const bad = { ...doc, signatures: [{ ...doc.signatures[0], protected: 'e30=!' }] };
    assert.throws(() => schema1Payload(Buffer.from(JSON.stringify(bad)), 'm'), /signatures\[0\]\.protected is not valid base64url/);
    const long = { ...doc, signatures: [{ ...doc.signatures[0], protected: Buffer.from(JSON.stringify({ formatLength: 1e9, formatTail: 'Cn0' })).toString('base64url') }] };
    assert.throws(() => schema1Payload(Buffer.from(JSON.stringify(long)), 'm'), /formatLength 1000000000 exceeds/);
  });
});

describe('schema1 conversion', () => {
  let real: BuiltLayer;
  let realTarSize: number;
  before(async () => {
    const dir = await tmp.make('schema1-conv');
    real = await buildLayer(UBUNTU_ENTRIES, { compression: 'gzip', path: join(dir, 'layer.tar.gz') });
    realTarSize = (await buildLayer(UBUNTU_ENTRIES, { compression: 'none', path: join(dir, 'layer.tar') })).size;
  });

  test('schema1Layers walks oldest first; the empty blob is fetched once', () => {
    const m = ubuntuShaped(real, realTarSize);
    assert.deepEqual(
      schema1Layers(m).map((l) => [l.blobSum, l.empty]),
      [
        [real.digest, false],
        [EMPTY_GZIP_LAYER_DIGEST, true],
        [EMPTY_GZIP_LAYER_DIGEST, true],
        [EMPTY_GZIP_LAYER_DIGEST, true],
      ],
    );
    assert.deepEqual(schema1Blobs(m), [real.digest, EMPTY_GZIP_LAYER_DIGEST]);
    assert.deepEqual(schema1NonEmptyBlobs(m), [real.digest]);
  });

  test('older images without throwaway: the empty gzip blob alone marks an empty layer', () => {
    const m: Schema1Manifest = {
      ...SMALL,
      fsLayers: [{ blobSum: EMPTY_GZIP_LAYER_DIGEST }, { blobSum: real.digest }],
      history: [{ v1Compatibility: v1({ id: 'b'.repeat(64), parent: 'c'.repeat(64), Size: 0 }) }, { v1Compatibility: v1({ id: 'c'.repeat(64), Size: 5 }) }],
    };
    assert.deepEqual(schema1Layers(m).map((l) => l.empty), [false, true]);
  });

  test('a 4-fsLayer manifest with 3 throwaway layers becomes a 1-layer OCI image with 4 history entries', () => {
    const m = parseSchema1(signSchema1(ubuntuShaped(real, realTarSize), newKey()), 'ubuntu:15.04');
    const out = convertSchema1(m, new Map([[real.digest, real.diffId]]), new Map([[real.digest, real.size]]), () => MediaType.OciLayerGzip);
    const newest = JSON.parse(m.history[0]!.v1Compatibility) as Record<string, unknown>;

    assert.deepEqual(out.config.rootfs, { type: 'layers', diff_ids: [real.diffId] });
    assert.equal(out.config.architecture, 'amd64');
    assert.equal(out.config.os, 'linux');
    assert.equal(out.config.created, UBUNTU_STEPS[3].created);
    assert.equal(out.config.docker_version, '1.8.3');
    assert.deepEqual((out.config.config as { Cmd: string[] }).Cmd, ['/bin/bash']);
    assert.deepEqual(out.config.container_config, newest.container_config);
    for (const gone of ['id', 'parent', 'throwaway', 'Size', 'container']) assert.equal(gone in out.config, false, `${gone} must not be in the config`);

    assert.deepEqual(
      out.config.history!.map((h) => [h.created, h.created_by, h.empty_layer]),
      [
        [UBUNTU_STEPS[0].created, `/bin/sh -c #(nop) ADD file:${real.diffId.slice(7)} in /`, undefined],
        [UBUNTU_STEPS[1].created, `/bin/sh -c ${UBUNTU_STEPS[1].cmd()}`, true],
        [UBUNTU_STEPS[2].created, "/bin/sh -c sed -i 's/^#\\s*\\(deb.*universe\\)$/\\1/g' /etc/apt/sources.list", true],
        [UBUNTU_STEPS[3].created, '/bin/sh -c #(nop) CMD ["/bin/bash"]', true],
      ],
    );

    assert.equal(out.manifest.mediaType, MediaType.OciManifest);
    assert.deepEqual(out.manifest.config, { mediaType: MediaType.OciConfig, digest: digestOf(out.configBytes), size: out.configBytes.length });
    assert.deepEqual(out.manifest.layers, [{ mediaType: MediaType.OciLayerGzip, digest: real.digest, size: real.size }]);
    assert.deepEqual(JSON.parse(out.manifestBytes.toString()), out.manifest);
    assert.deepEqual(JSON.parse(out.configBytes.toString()), out.config);
  });

  test('a missing diff_id is an error naming the layer', () => {
    const m = ubuntuShaped(real, realTarSize);
    assert.throws(() => convertSchema1(m, new Map(), new Map([[real.digest, real.size]]), () => MediaType.OciLayerGzip), new RegExp(`no diff_id for layer ${real.digest}`));
  });

  test('the converted image is a valid OCI image: umoci unpacks it and finds /etc/os-release', async (t) => {
    if (!existsSync('/usr/bin/umoci')) return t.skip('umoci is not installed (apt-get install umoci)');
    const dir = await tmp.make('schema1-umoci');
    const m = ubuntuShaped(real, realTarSize);
    const out = convertSchema1(m, new Map([[real.digest, real.diffId]]), new Map([[real.digest, real.size]]), () => MediaType.OciLayerGzip);
    const layout = join(dir, 'layout');
    await writeOciLayout(layout, [{ tag: 'probe', layers: [real] }]);
    // Replace the probe image with the converted one: write its config and manifest blobs and point index.json at them.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(layout, 'blobs/sha256', out.manifest.config.digest.slice(7)), out.configBytes);
    const manifestDigest: Digest = digestOf(out.manifestBytes);
    await writeFile(join(layout, 'blobs/sha256', manifestDigest.slice(7)), out.manifestBytes);
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.OciManifest, digest: manifestDigest, size: out.manifestBytes.length, annotations: { 'org.opencontainers.image.ref.name': '15.04' } }] }),
    );
    const bundle = join(dir, 'bundle');
    await run('umoci', ['unpack', '--image', `${layout}:15.04`, bundle]);
    assert.match(await readFile(join(bundle, 'rootfs/etc/os-release'), 'utf8'), /VERSION_ID="15.04"/);
    const { stdout } = await run('skopeo', ['inspect', '--config', `oci:${layout}:15.04`]);
    assert.equal((JSON.parse(stdout) as { history: unknown[] }).history.length, 4);
  });
});

describe('schema1 against the real registry (distribution 2.8)', () => {
  let registry: TestRegistry | undefined;
  let plain: TestRegistry | undefined;
  before(async () => {
    if (!existsSync('/usr/bin/docker-registry')) return;
    registry = await startRegistry({ schema1: true });
    plain = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
    await plain?.stop();
  });

  test('accepts our signed PUT, answers with the payload digest, and re-signs on GET with a key our verifier accepts', async (t) => {
    if (!registry) return t.skip('/usr/bin/docker-registry is not installed');
    const pushed = await pushSchema1(registry, 'library/small', '1', [null], [JSON.parse(SMALL.history[0]!.v1Compatibility) as object]);
    assert.equal(pushed.digest, schema1PayloadDigest(pushed.bytes));
    const res = await fetch(`${registry.url}/v2/library/small/manifests/1`, { headers: { accept: MediaType.DockerSchema1SignedManifest } });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), MediaType.DockerSchema1SignedManifest);
    assert.equal(res.headers.get('docker-content-digest'), pushed.digest);
    assert.notDeepEqual(body, pushed.bytes, 'the registry signs with its own key');
    assert.equal(schema1PayloadDigest(body), pushed.digest);
    verifySchema1Signatures(body, 'registry GET');
    const byDigest = await fetch(`${registry.url}/v2/library/small/manifests/${pushed.digest}`, { headers: { accept: MediaType.DockerSchema1SignedManifest } });
    assert.equal(byDigest.status, 200);
    assert.equal(schema1PayloadDigest(Buffer.from(await byDigest.arrayBuffer())), pushed.digest);
  });

  test('refuses a manifest whose kid does not match its key', async (t) => {
    if (!registry) return t.skip('/usr/bin/docker-registry is not installed');
    await uploadBlob(registry, 'library/badkid', EMPTY_GZIP_LAYER_DIGEST, { bytes: EMPTY_GZIP_LAYER });
    const signed = signSchema1({ ...SMALL, name: 'library/badkid' }, newKey()).toString();
    const kid = (JSON.parse(signed) as { signatures: { header: { jwk: { kid: string } } }[] }).signatures[0]!.header.jwk.kid;
    const wrongKid = kid.replace(/^[A-Z2-7]/, (c) => (c === 'A' ? 'B' : 'A'));
    const res = await fetch(`${registry.url}/v2/library/badkid/manifests/1`, {
      method: 'PUT',
      headers: { 'content-type': MediaType.DockerSchema1SignedManifest },
      body: signed.replace(kid, wrongKid),
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /MANIFEST_INVALID/);
  });

  test('a registry without compatibility.schema1.enabled refuses schema1 PUTs', async (t) => {
    if (!plain) return t.skip('/usr/bin/docker-registry is not installed');
    await assert.rejects(
      pushSchema1(plain, 'library/small', '1', [null], [JSON.parse(SMALL.history[0]!.v1Compatibility) as object]),
      /HTTP 500/,
    );
  });
});
