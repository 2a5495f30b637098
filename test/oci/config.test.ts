import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigMatchesManifest, nonEmptyHistoryCount, parseImageConfig } from '../../src/oci/config.js';
import { parseManifest } from '../../src/oci/manifest.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { ImageConfig, ImageManifest } from '../../src/oci/types.js';
import { InvalidImageConfigError, isStratumError } from '../../src/errors.js';
import { buildRealImage, type RealImage } from './parsing-fixture.js';

const SUBJECT = 'localhost:5000/app:1 config';
const enc = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const diffIds = ['one', 'two', 'three'].map((s) => digestOf(`diff ${s}`));

const baseConfig = {
  created: '2015-04-21T22:25:46.128Z',
  architecture: 'amd64',
  os: 'linux',
  config: { Cmd: ['/bin/bash'], Env: ['PATH=/usr/bin'] },
  rootfs: { type: 'layers', diff_ids: diffIds },
  history: [
    { created: '2015-04-21T22:25:40Z', created_by: '/bin/sh -c #(nop) ADD file:abc in /' },
    { created: '2015-04-21T22:25:43Z', created_by: "/bin/sh -c echo '#!/bin/sh' > /usr/sbin/policy-rc.d" },
    { created: '2015-04-21T22:25:45Z', created_by: "/bin/sh -c sed -i 's/^#\\s*//' /etc/apt/sources.list" },
    { created: '2015-04-21T22:25:46Z', created_by: '/bin/sh -c #(nop) CMD ["/bin/bash"]', empty_layer: true },
  ],
};

function manifestWith(layers: number): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: digestOf('config'), size: 1 },
    layers: Array.from({ length: layers }, (_, i) => ({ mediaType: MediaType.OciLayerGzip, digest: digestOf(`layer ${i}`), size: 10 })),
  };
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidImageConfigError, `expected InvalidImageConfigError, got ${String(err)}`);
    assert.ok(isStratumError(err, 'ERR_INVALID_IMAGE_CONFIG'));
    assert.ok(err.message.startsWith(`${SUBJECT}: invalid image config: `), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('parseImageConfig: a real umoci image', () => {
  let real: RealImage | { skip: string };
  before(async () => {
    real = await buildRealImage();
  });
  after(async () => {
    if (real && !('skip' in real)) await real.cleanup();
  });

  it('parses the config and agrees with its manifest', (t) => {
    if ('skip' in real) return t.skip(real.skip);
    const config = parseImageConfig(real.config, SUBJECT);
    assert.equal(config.os, 'linux');
    assert.equal(config.rootfs.diff_ids.length, 2);
    // umoci insert, umoci config (empty_layer), umoci insert
    assert.equal(config.history?.length, 3);
    assert.equal(nonEmptyHistoryCount(config), 2);
    const parsed = parseManifest(real.ociManifest, undefined, SUBJECT);
    assert.equal(parsed.kind, 'image');
    if (parsed.kind !== 'image') return;
    assert.deepEqual(checkConfigMatchesManifest(config, parsed.manifest, SUBJECT), []);
    // Dropping one layer from the manifest breaks the pairing.
    const short = { ...parsed.manifest, layers: parsed.manifest.layers.slice(1) };
    expectInvalid(() => checkConfigMatchesManifest(config, short, SUBJECT), /rootfs\.diff_ids has 2 entries but the manifest has 1 layers/);
  });
});

describe('parseImageConfig: validation', () => {
  it('parses a valid config', () => {
    const config = parseImageConfig(enc(baseConfig), SUBJECT);
    assert.deepEqual(config.rootfs.diff_ids, diffIds);
    assert.equal(nonEmptyHistoryCount(config), 3);
  });

  it('treats "config": null as no runtime config', () => {
    const config = parseImageConfig(enc({ ...baseConfig, config: null }), SUBJECT);
    assert.equal(config.config, undefined);
  });

  const malformations: Array<[string, (c: any) => void, RegExp]> = [
    ['architecture missing', (c) => delete c.architecture, /architecture: must be a string, got undefined/],
    ['architecture empty', (c) => (c.architecture = ''), /architecture: must not be empty/],
    ['os not a string', (c) => (c.os = ['linux']), /os: must be a string, got an array/],
    ['variant not a string', (c) => (c.variant = 7), /variant: must be a string, got number 7/],
    ['created not a string', (c) => (c.created = 1429655146), /created: must be a string/],
    ['config not an object', (c) => (c.config = 'x'), /config: must be an object, got string "x"/],
    ['rootfs missing', (c) => delete c.rootfs, /rootfs: must be an object, got undefined/],
    ['rootfs.type wrong', (c) => (c.rootfs.type = 'layer'), /rootfs\.type: must be "layers", got string "layer"/],
    ['rootfs.diff_ids missing', (c) => delete c.rootfs.diff_ids, /rootfs\.diff_ids: must be an array, got undefined/],
    ['rootfs.diff_ids entry invalid', (c) => (c.rootfs.diff_ids[1] = 'sha256:1234'), /rootfs\.diff_ids\[1\]: invalid digest "sha256:1234"/],
    ['rootfs.diff_ids entry not a string', (c) => (c.rootfs.diff_ids[2] = null), /rootfs\.diff_ids\[2\]: must be a digest string, got null/],
    ['history not an array', (c) => (c.history = {}), /history: must be an array, got an object/],
    ['history entry not an object', (c) => (c.history[0] = 'ADD'), /history\[0\]: must be an object, got string "ADD"/],
    ['history created_by not a string', (c) => (c.history[2].created_by = ['sh']), /history\[2\]\.created_by: must be a string, got an array/],
    ['history empty_layer not a boolean', (c) => (c.history[3].empty_layer = 'true'), /history\[3\]\.empty_layer: must be a boolean, got string "true"/],
  ];
  for (const [name, mutate, message] of malformations) {
    it(name, () => {
      const c = structuredClone(baseConfig);
      mutate(c);
      expectInvalid(() => parseImageConfig(enc(c), SUBJECT), message);
    });
  }

  it('bodies that are not a JSON object', () => {
    expectInvalid(() => parseImageConfig(enc('[]'), SUBJECT), /body must be a JSON object, got an array/);
    expectInvalid(() => parseImageConfig(enc('{'), SUBJECT), /body is not valid JSON/);
    expectInvalid(() => parseImageConfig(new Uint8Array([0xc3, 0x28]), SUBJECT), /not valid UTF-8/);
  });
});

describe('checkConfigMatchesManifest', () => {
  const config = (changes: Partial<ImageConfig> = {}): ImageConfig => ({ ...parseImageConfig(enc(baseConfig), SUBJECT), ...changes });

  it('a matching config has no problems', () => {
    assert.deepEqual(checkConfigMatchesManifest(config(), manifestWith(3), SUBJECT), []);
  });

  it('throws when the diff_ids count differs from the layer count', () => {
    expectInvalid(() => checkConfigMatchesManifest(config(), manifestWith(4), SUBJECT), /rootfs\.diff_ids has 3 entries but the manifest has 4 layers/);
    expectInvalid(() => checkConfigMatchesManifest(config(), manifestWith(0), SUBJECT), /has 3 entries but the manifest has 0 layers/);
  });

  it('reports, without throwing, a history that disagrees with the layers', () => {
    const history = baseConfig.history.map((h) => ({ ...h, empty_layer: false }));
    const problems = checkConfigMatchesManifest(config({ history }), manifestWith(3), SUBJECT);
    assert.deepEqual(problems, [`${SUBJECT}: history has 4 entries that are not empty_layer (of 4) but the manifest has 3 layers`]);
  });

  it('an absent history is not a problem', () => {
    const c = config();
    delete c.history;
    assert.equal(nonEmptyHistoryCount(c), 0);
    assert.deepEqual(checkConfigMatchesManifest(c, manifestWith(3), SUBJECT), []);
  });

  it('an empty history array is reported', () => {
    assert.equal(checkConfigMatchesManifest(config({ history: [] }), manifestWith(3), SUBJECT).length, 1);
  });
});
