/**
 * A full disk while a layer is unpacked is a storage failure (ERR_NO_SPACE naming the snapshot
 * root and the layer), not a bad layer: the snapshot root sits on a small tmpfs, the store beside
 * it on the real disk, and the layer is bigger than the tmpfs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { OciStore } from '../../src/content/store.js';
import { unpackLayers } from '../../src/image/unpack.js';
import { openSnapshotter } from '../../src/snapshotter/index.js';
import { putTinyImage, tarOf } from '../content/store-fixtures.js';
import { digestOf } from '../../src/oci/digest.js';
import { TempDirs } from '../helpers/tmp.js';

const dirs = new TempDirs();
after(() => dirs.cleanup());

const notRoot = process.getuid?.() !== 0 ? 'LOUD SKIP: needs root to mount a small tmpfs' : undefined;

describe('unpacking onto a full disk', { skip: notRoot }, () => {
  for (const backend of ['native', 'overlay'] as const) {
    test(`${backend}: ENOSPC → ERR_NO_SPACE naming the layer and the snapshot root, nothing committed`, async () => {
      const base = await dirs.make('nospace');
      const store = await OciStore.open(join(base, 'store'));
      const files = [
        { path: 'data', type: 'directory' as const },
        { path: 'data/big.bin', type: 'file' as const, content: randomBytes(1536 * 1024).toString('latin1') },
      ];
      const image = await putTinyImage(store, files, 'no-space');
      const diffId = digestOf(await tarOf(files));
      const mnt = join(base, 'small');
      await mkdir(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
      try {
        const snapshotter = await openSnapshotter(backend, join(mnt, 'snaps'));
        try {
          await assert.rejects(
            unpackLayers({ store, snapshotter, layers: [image.layer], diffIds: [diffId], subject: 'no-space:1' }),
            (err: Error) => {
              assert.ok(isStratumError(err, 'ERR_NO_SPACE'), `${err.name} (${(err as { code?: string }).code}): ${err.message}`);
              assert.ok(err.message.includes(image.layer.digest), err.message);
              assert.ok(err.message.includes(join(mnt, 'snaps')), err.message);
              return true;
            },
          );
          const committed: string[] = [];
          await snapshotter.walk((info) => void committed.push(info.name), 'kind==committed');
          assert.deepEqual(committed, []);
        } finally {
          await snapshotter.close();
        }
      } finally {
        execFileSync('umount', ['-l', mnt]);
      }
    });
  }
});
