import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MANIFEST_BYTES, manifestContentType, parseManifest, type ParsedManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { digestOf } from '../../src/oci/digest.js';
import { InvalidManifestError, UnsupportedMediaTypeError, isStratumError } from '../../src/errors.js';
import { buildRealImage, type RealImage } from './parsing-fixture.js';

const SUBJECT = 'localhost:5000/test/app:1';
const enc = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const clone = <T>(value: T): T => structuredClone(value);

const configDigest = digestOf('{"architecture":"amd64","os":"linux"}');
const layerDigests = ['layer one', 'layer two', 'layer three'].map((s) => digestOf(s));
const childDigests = ['amd64 manifest', 'arm manifest'].map((s) => digestOf(s));

function imageManifest(mediaType: string | undefined, configType: string, layerType: string): Record<string, unknown> {
  return {
    schemaVersion: 2,
    ...(mediaType === undefined ? {} : { mediaType }),
    config: { mediaType: configType, digest: configDigest, size: 37 },
    layers: layerDigests.map((digest, i) => ({ mediaType: layerType, digest, size: 100 + i })),
  };
}

function index(mediaType: string | undefined, childType: string): Record<string, unknown> {
  return {
    schemaVersion: 2,
    ...(mediaType === undefined ? {} : { mediaType }),
    manifests: [
      { mediaType: childType, digest: childDigests[0], size: 500, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: childType, digest: childDigests[1], size: 501, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    ],
  };
}

const ociManifest = imageManifest(MediaType.OciManifest, MediaType.OciConfig, MediaType.OciLayerGzip);
const dockerManifest = imageManifest(MediaType.DockerManifest, MediaType.DockerConfig, MediaType.DockerLayerGzip);
const ociIndex = index(MediaType.OciIndex, MediaType.OciManifest);
const dockerList = index(MediaType.DockerManifestList, MediaType.DockerManifest);

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidManifestError, `expected InvalidManifestError, got ${String(err)}`);
    assert.ok(isStratumError(err, 'ERR_INVALID_MANIFEST'));
    assert.ok(err.message.startsWith(`${SUBJECT}: invalid manifest: `), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

function asImage(parsed: ParsedManifest) {
  assert.equal(parsed.kind, 'image');
  return parsed as Extract<ParsedManifest, { kind: 'image' }>;
}
function asIndex(parsed: ParsedManifest) {
  assert.equal(parsed.kind, 'index');
  return parsed as Extract<ParsedManifest, { kind: 'index' }>;
}

describe('parseManifest: real manifests from umoci and skopeo', () => {
  let real: RealImage | { skip: string };
  before(async () => {
    real = await buildRealImage();
  });
  after(async () => {
    if (real && !('skip' in real)) await real.cleanup();
  });

  it('umoci OCI manifest (no mediaType field) with the registry Content-Type', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    const parsed = asImage(parseManifest(real.ociManifest, MediaType.OciManifest, SUBJECT));
    assert.equal(parsed.mediaType, MediaType.OciManifest);
    assert.equal(parsed.manifest.layers.length, 2);
    assert.equal(parsed.manifest.config.digest, digestOf(real.config));
    assert.equal(parsed.manifest.config.size, real.config.length);
  });

  it('umoci OCI manifest without any Content-Type is recognised by shape', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    assert.equal(parseManifest(real.ociManifest, undefined, SUBJECT).mediaType, MediaType.OciManifest);
    assert.equal(parseManifest(real.ociManifest, 'application/octet-stream', SUBJECT).kind, 'image');
  });

  it('OCI layout index.json is an index by shape', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    const parsed = asIndex(parseManifest(real.ociIndex, undefined, SUBJECT));
    assert.equal(parsed.mediaType, MediaType.OciIndex);
    assert.equal(parsed.index.manifests.length, 1);
    assert.equal(parsed.index.manifests[0]!.digest, digestOf(real.ociManifest));
  });

  it('skopeo Docker schema2 manifest', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    const parsed = asImage(parseManifest(real.dockerSchema2, MediaType.DockerManifest, SUBJECT));
    assert.equal(parsed.mediaType, MediaType.DockerManifest);
    assert.equal(parsed.manifest.config.mediaType, MediaType.DockerConfig);
    assert.deepEqual(
      parsed.manifest.layers.map((l) => l.mediaType),
      [MediaType.DockerLayerGzip, MediaType.DockerLayerGzip],
    );
  });

  it('skopeo signed schema1 manifest is detected and handed on byte for byte', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    for (const ct of [MediaType.DockerSchema1SignedManifest, undefined, 'application/json']) {
      const parsed = parseManifest(real.dockerSchema1, ct, SUBJECT);
      assert.equal(parsed.kind, 'schema1');
      assert.equal(parsed.mediaType, MediaType.DockerSchema1SignedManifest);
      assert.equal(parsed.kind === 'schema1' && parsed.bytes, real.dockerSchema1);
    }
  });

  it('a schema1 body under a schema2 Content-Type is refused', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    const schema1 = real.dockerSchema1;
    expectInvalid(() => parseManifest(schema1, MediaType.DockerManifest, SUBJECT), /schemaVersion: must be 2, got number 1/);
  });
});

describe('parseManifest: valid synthetic manifests', () => {
  it('OCI image manifest', () => {
    const parsed = asImage(parseManifest(enc(ociManifest), MediaType.OciManifest, SUBJECT));
    assert.equal(parsed.manifest.layers.length, 3);
    assert.equal(parsed.manifest.layers[2]!.digest, layerDigests[2]);
  });

  it('Docker schema2 manifest', () => {
    const parsed = asImage(parseManifest(enc(dockerManifest), `${MediaType.DockerManifest}; charset=utf-8`, SUBJECT));
    assert.equal(parsed.mediaType, MediaType.DockerManifest);
  });

  it('Docker schema2 manifest pointing at an OCI config type is accepted', () => {
    const m = clone(dockerManifest) as any;
    m.config.mediaType = MediaType.OciConfig;
    assert.equal(parseManifest(enc(m), undefined, SUBJECT).kind, 'image');
  });

  it('OCI artifact manifest with any config type and no layers', () => {
    const m = clone(ociManifest) as any;
    m.config = { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2 };
    m.layers = [];
    m.artifactType = 'application/vnd.example.sbom';
    m.subject = { mediaType: MediaType.OciManifest, digest: layerDigests[0], size: 10 };
    m.annotations = { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' };
    assert.equal(asImage(parseManifest(enc(m), MediaType.OciManifest, SUBJECT)).manifest.artifactType, 'application/vnd.example.sbom');
  });

  it('OCI index with platforms', () => {
    const parsed = asIndex(parseManifest(enc(ociIndex), MediaType.OciIndex, SUBJECT));
    assert.deepEqual(parsed.index.manifests[1]!.platform, { os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  it('Docker manifest list', () => {
    const parsed = asIndex(parseManifest(enc(dockerList), MediaType.DockerManifestList, SUBJECT));
    assert.equal(parsed.mediaType, MediaType.DockerManifestList);
    assert.equal(parsed.index.manifests.length, 2);
  });

  it('index entries without a platform are allowed (attestations carry unknown/unknown instead)', () => {
    const m = clone(ociIndex) as any;
    delete m.manifests[0].platform;
    m.manifests.push({
      mediaType: MediaType.OciManifest,
      digest: layerDigests[1],
      size: 10,
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    });
    assert.equal(asIndex(parseManifest(enc(m), undefined, SUBJECT)).index.manifests.length, 3);
  });

  it('generic Content-Types defer to the body mediaType', () => {
    for (const ct of ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream', '']) {
      assert.equal(parseManifest(enc(dockerList), ct, SUBJECT).mediaType, MediaType.DockerManifestList, ct);
    }
  });

  it('the Content-Type decides when the body has no mediaType', () => {
    const m = clone(dockerManifest);
    delete m.mediaType;
    assert.equal(parseManifest(enc(m), MediaType.DockerManifest, SUBJECT).mediaType, MediaType.DockerManifest);
    assert.equal(parseManifest(enc(m), undefined, SUBJECT).mediaType, MediaType.OciManifest);
  });

  it('unsigned schema1 is recognised by schemaVersion', () => {
    const body = { schemaVersion: 1, name: 'library/ubuntu', tag: '15.04', architecture: 'amd64', fsLayers: [], history: [] };
    const parsed = parseManifest(enc(body), undefined, SUBJECT);
    assert.deepEqual([parsed.kind, parsed.mediaType], ['schema1', MediaType.DockerSchema1Manifest]);
    const viaCt = parseManifest(enc(body), MediaType.DockerSchema1Manifest, SUBJECT);
    assert.deepEqual([viaCt.kind, viaCt.mediaType], ['schema1', MediaType.DockerSchema1Manifest]);
  });

  it('manifestContentType strips parameters and ignores generic types', () => {
    assert.equal(manifestContentType(' Application/VND.OCI.Image.Manifest.v1+json ; charset=utf-8'), MediaType.OciManifest);
    assert.equal(manifestContentType('application/json'), undefined);
    assert.equal(manifestContentType(undefined), undefined);
  });
});

type Mutation = [name: string, base: Record<string, unknown>, mutate: (m: any) => void, message: RegExp];

const malformations: Mutation[] = [
  ['schemaVersion missing', ociManifest, (m) => delete m.schemaVersion, /schemaVersion: must be 2, got undefined/],
  ['schemaVersion 3', ociManifest, (m) => (m.schemaVersion = 3), /schemaVersion: must be 2, got number 3/],
  ['schemaVersion as a string', ociIndex, (m) => (m.schemaVersion = '2'), /schemaVersion: must be 2, got string "2"/],
  ['mediaType not a string', ociManifest, (m) => (m.mediaType = 5), /mediaType: must be a non-empty string, got number 5/],
  ['config missing', ociManifest, (m) => delete m.config, /config: is required/],
  ['config not an object', ociManifest, (m) => (m.config = 'sha256:x'), /config: must be an object/],
  ['config digest missing', ociManifest, (m) => delete m.config.digest, /config\.digest: must be a digest string, got undefined/],
  ['Docker config media type wrong', dockerManifest, (m) => (m.config.mediaType = MediaType.DockerLayerGzip), /config\.mediaType: "application\/vnd\.docker\.image\.rootfs\.diff\.tar\.gzip" is not an image config type/],
  ['layers missing', ociManifest, (m) => delete m.layers, /layers: is required/],
  ['layers not an array', ociManifest, (m) => (m.layers = {}), /layers: must be an array, got an object/],
  ['layer not an object', ociManifest, (m) => (m.layers[1] = null), /layers\[1\]: must be an object, got null/],
  ['layer digest invalid', ociManifest, (m) => (m.layers[2].digest = 'sha256:abc'), /layers\[2\]\.digest: invalid digest "sha256:abc": sha256 needs 64 hex characters/],
  ['layer digest uppercase', dockerManifest, (m) => (m.layers[0].digest = `sha256:${'A'.repeat(64)}`), /layers\[0\]\.digest: invalid digest .*lowercase hex/],
  ['layer digest unknown algorithm', ociManifest, (m) => (m.layers[0].digest = `md5:${'a'.repeat(32)}`), /layers\[0\]\.digest: invalid digest .*unsupported algorithm "md5"/],
  ['layer mediaType missing', ociManifest, (m) => delete m.layers[1].mediaType, /layers\[1\]\.mediaType: must be a string, got undefined/],
  ['layer mediaType empty', ociManifest, (m) => (m.layers[1].mediaType = ''), /layers\[1\]\.mediaType: must not be empty/],
  ['layer size negative', ociManifest, (m) => (m.layers[0].size = -1), /layers\[0\]\.size: must be a non-negative integer, got number -1/],
  ['layer size fractional', ociManifest, (m) => (m.layers[0].size = 1.5), /layers\[0\]\.size: must be a non-negative integer/],
  ['layer size a string', ociManifest, (m) => (m.layers[0].size = '100'), /layers\[0\]\.size: must be a non-negative integer, got string "100"/],
  ['layer size beyond 2^53', ociManifest, (m) => (m.layers[0].size = 2 ** 53), /layers\[0\]\.size: must be a non-negative integer/],
  ['layer urls not strings', ociManifest, (m) => (m.layers[0].urls = [1]), /layers\[0\]\.urls\[0\]: must be a string/],
  ['annotation value not a string', ociManifest, (m) => (m.annotations = { a: 1 }), /annotations\["a"\]: must be a string, got number 1/],
  ['subject without a digest', ociManifest, (m) => (m.subject = { mediaType: MediaType.OciManifest, size: 1 }), /subject\.digest: must be a digest string/],
  ['manifests missing', ociIndex, (m) => delete m.manifests, /manifests: is required/],
  ['manifests not an array', dockerList, (m) => (m.manifests = 'x'), /manifests: must be an array, got string "x"/],
  ['index entry digest invalid', dockerList, (m) => (m.manifests[1].digest = 'latest'), /manifests\[1\]\.digest: invalid digest "latest"/],
  ['platform not an object', ociIndex, (m) => (m.manifests[0].platform = 'linux/amd64'), /manifests\[0\]\.platform: must be an object/],
  ['platform without os', ociIndex, (m) => delete m.manifests[0].platform.os, /manifests\[0\]\.platform\.os: must be a string, got undefined/],
  ['platform architecture empty', dockerList, (m) => (m.manifests[1].platform.architecture = ''), /manifests\[1\]\.platform\.architecture: must not be empty/],
  ['platform variant not a string', ociIndex, (m) => (m.manifests[1].platform.variant = 7), /manifests\[1\]\.platform\.variant: must be a string, got number 7/],
  ['platform os.features not an array', ociIndex, (m) => (m.manifests[0].platform['os.features'] = 'sse4'), /manifests\[0\]\.platform\["os\.features"\]: must be an array/],
];

describe('parseManifest: malformations', () => {
  for (const [name, base, mutate, message] of malformations) {
    it(name, () => {
      const m = clone(base);
      mutate(m);
      expectInvalid(() => parseManifest(enc(m), undefined, SUBJECT), message);
    });
  }

  it('the base documents of the malformation table are themselves valid', () => {
    for (const base of [ociManifest, dockerManifest, ociIndex, dockerList]) parseManifest(enc(base), undefined, SUBJECT);
  });

  it('JSON that is not an object', () => {
    expectInvalid(() => parseManifest(enc('[]'), MediaType.OciManifest, SUBJECT), /body must be a JSON object, got an array/);
    expectInvalid(() => parseManifest(enc('null'), MediaType.OciManifest, SUBJECT), /got null/);
    expectInvalid(() => parseManifest(enc('"x"'), MediaType.OciManifest, SUBJECT), /got string "x"/);
    expectInvalid(() => parseManifest(enc('42'), undefined, SUBJECT), /got number 42/);
  });

  it('bytes that are not JSON or not UTF-8', () => {
    expectInvalid(() => parseManifest(enc('{"schemaVersion": 2,'), MediaType.OciManifest, SUBJECT), /body is not valid JSON/);
    expectInvalid(() => parseManifest(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), MediaType.OciManifest, SUBJECT), /not valid UTF-8/);
  });

  it('a body over 4 MiB is refused before parsing', () => {
    const m = clone(ociManifest) as any;
    m.annotations = { pad: 'x'.repeat(MAX_MANIFEST_BYTES) };
    const bytes = enc(m);
    assert.ok(bytes.length > MAX_MANIFEST_BYTES);
    expectInvalid(() => parseManifest(bytes, MediaType.OciManifest, SUBJECT), new RegExp(`${bytes.length} bytes is over the 4194304-byte`));
    // Just under the limit still parses.
    m.annotations = { pad: 'x'.repeat(MAX_MANIFEST_BYTES - enc(ociManifest).length - 100) };
    assert.equal(parseManifest(enc(m), MediaType.OciManifest, SUBJECT).kind, 'image');
  });

  it('a body that is neither an index nor an image manifest by shape', () => {
    expectInvalid(() => parseManifest(enc({ schemaVersion: 2 }), undefined, SUBJECT), /cannot tell the manifest kind/);
    const both = { ...clone(ociManifest), manifests: [] } as any;
    delete both.mediaType;
    expectInvalid(() => parseManifest(enc(both), undefined, SUBJECT), /cannot tell an index from an image manifest/);
  });

  it('an index served as an image manifest fails on the missing fields', () => {
    expectInvalid(() => parseManifest(enc({ schemaVersion: 2, manifests: [] }), MediaType.DockerManifest, SUBJECT), /config: is required/);
  });

  it('schema1 media type with a schema2 body', () => {
    const m = clone(dockerManifest);
    delete m.mediaType;
    expectInvalid(() => parseManifest(enc(m), MediaType.DockerSchema1SignedManifest, SUBJECT), /schemaVersion: must be 1 for application\/vnd\.docker\.distribution\.manifest\.v1\+prettyjws, got number 2/);
  });
});

describe('parseManifest: media types', () => {
  it('Content-Type and body mediaType must agree', () => {
    expectInvalid(
      () => parseManifest(enc(ociManifest), MediaType.DockerManifest, SUBJECT),
      /Content-Type application\/vnd\.docker\.distribution\.manifest\.v2\+json does not match the body's mediaType application\/vnd\.oci\.image\.manifest\.v1\+json/,
    );
    expectInvalid(() => parseManifest(enc(dockerList), MediaType.OciIndex, SUBJECT), /does not match the body's mediaType/);
    expectInvalid(() => parseManifest(enc(ociIndex), MediaType.OciManifest, SUBJECT), /does not match/);
  });

  const unsupported: Array<[string, Record<string, unknown>, string | undefined, string]> = [
    ['unknown body mediaType', { ...ociManifest, mediaType: 'application/vnd.oci.artifact.manifest.v1+json' }, undefined, 'application/vnd.oci.artifact.manifest.v1+json'],
    ['unknown body mediaType under a known Content-Type', { ...ociManifest, mediaType: 'application/vnd.example+json' }, MediaType.OciManifest, 'application/vnd.example+json'],
    ['unknown Content-Type and no body mediaType', { schemaVersion: 2, layers: [] }, 'application/vnd.example.thing.v1+json', 'application/vnd.example.thing.v1+json'],
    ['a layer media type as the manifest type', { ...ociManifest, mediaType: MediaType.OciLayerGzip }, undefined, MediaType.OciLayerGzip],
  ];
  for (const [name, body, ct, mediaType] of unsupported) {
    it(`UnsupportedMediaTypeError: ${name}`, () => {
      assert.throws(
        () => parseManifest(enc(body), ct, SUBJECT),
        (err: unknown) => {
          assert.ok(err instanceof UnsupportedMediaTypeError, String(err));
          assert.ok(isStratumError(err, 'ERR_UNSUPPORTED_MEDIA_TYPE'));
          assert.equal(err.mediaType, mediaType);
          assert.equal(err.message, `${SUBJECT}: unsupported media type ${JSON.stringify(mediaType)}`);
          return true;
        },
      );
    });
  }
});
