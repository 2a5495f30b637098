import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf } from '../../src/oci/digest.js';
import { imageHistory } from '../../src/image/history.js';
import type { StoredImage } from '../../src/image/image.js';
import type { ImageConfig } from '../../src/oci/types.js';

function image(history: ImageConfig['history'], layerCount: number): StoredImage {
  const layers = Array.from({ length: layerCount }, (_, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(`layer${i}`), size: 100 * (i + 1) }));
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, ...(history ? { history } : {}) };
  const cfg = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('config'), size: 10 };
  return { name: 'docker.io/library/x:1', descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf('m'), size: 1 }, manifest: { schemaVersion: 2, config: cfg, layers }, config, configDescriptor: cfg };
}

describe('imageHistory', () => {
  it('pairs non-empty steps with layers in order and lists newest first', () => {
    const rows = imageHistory(
      image(
        [
          { created: '2015-01-01T00:00:00Z', created_by: 'ADD file' },
          { created_by: 'ENV A=1', empty_layer: true },
          { created_by: 'RUN make' },
          { created_by: 'CMD ["sh"]', empty_layer: true },
        ],
        2,
      ),
    );
    assert.deepEqual(
      rows.map((r) => [r.createdBy, r.layer?.digest ?? null, r.size, r.emptyLayer]),
      [
        ['CMD ["sh"]', null, 0, true],
        ['RUN make', digestOf('layer1'), 200, false],
        ['ENV A=1', null, 0, true],
        ['ADD file', digestOf('layer0'), 100, false],
      ],
    );
  });

  it('without history, one row per layer; layers the history misses still show', () => {
    assert.deepEqual(imageHistory(image(undefined, 2)).map((r) => r.layer?.digest), [digestOf('layer1'), digestOf('layer0')]);
    const rows = imageHistory(image([{ created_by: 'ADD' }], 3));
    assert.equal(rows.length, 3);
    assert.equal(rows[0]!.layer?.digest, digestOf('layer2'));
  });
});
