/** The hostile corpus (test/fixtures/hostile) written as EROFS images: the same refusals as extraction, nothing written beside the image. */
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeLayerImage } from '../../src/erofs/build.js';
import { isStratumError } from '../../src/errors.js';
import { erofsUnavailable } from '../../src/snapshotter/erofs/erofs.js';
import { unmountAll } from '../../src/snapshotter/mount.js';
import { loadNative } from '../../src/sys/native.js';
import { hostileCases, writeHostileCorpus } from '../fixtures/hostile/corpus.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const skip = (await erofsUnavailable()) ?? false;
if (skip) console.error(`SKIP erofs hostile layers: ${skip}`);

describe('hostile layers written as EROFS images', { skip }, () => {
  let corpus: Map<string, string>;
  before(async () => {
    corpus = await writeHostileCorpus(await tmp.make('hostile-corpus'));
  });

  for (const c of hostileCases) {
    test(c.name, async () => {
      const parent = await tmp.make('hostile-erofs');
      await mkdir(join(parent, 'canary'));
      await writeFile(join(parent, 'canary', 'file'), 'canary');
      const image = join(parent, 'layer.erofs');
      const subject = `hostile layer ${c.name}`;
      let error: unknown;
      try {
        const written = await writeLayerImage(createReadStream(corpus.get(c.name)!), image, { subject, ...(c.limits ? { limits: c.limits } : {}) });
        await written.image.finish();
      } catch (err) {
        error = err;
      }
      if ('refused' in c.expect) {
        assert.ok(isStratumError(error), `not refused with a StratumError: ${String(error)}`);
        assert.equal(error.code, c.expect.refused, error.message);
        assert.ok(error.message.includes(subject), `message names the layer: ${error.message}`);
        assert.equal(existsSync(image), false, 'the unfinished image is removed');
      } else {
        if (error) throw error;
        const mounted = join(parent, 'root');
        await mkdir(mounted);
        loadNative().mountErofs(image, mounted);
        try {
          await c.expect.applied(mounted);
        } finally {
          await unmountAll(mounted);
        }
      }
      assert.deepEqual((await readdir(parent)).filter((n) => n !== 'layer.erofs' && n !== 'root').sort(), ['canary'], 'nothing beside the image');
      assert.equal(await readFile(join(parent, 'canary', 'file'), 'utf8'), 'canary');
    });
  }
});
