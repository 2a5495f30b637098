import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { applyLayer } from '../../src/unpack/apply.js';
import { nativeOrSkip } from '../helpers/native.js';
import { hostileCases, writeHostileCorpus } from '../fixtures/hostile/corpus.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());
const { skip } = nativeOrSkip('devices, chown');

/** Every path under dir except `skip`, with type, mode, owner, size, mtime and content hash. */
async function snapshot(dir: string, skipPath: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(d: string): Promise<void> {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      if (p === skipPath) continue;
      const st = await lstat(p);
      let detail = '';
      if (st.isFile()) detail = createHash('sha256').update(await readFile(p)).digest('hex');
      if (st.isSymbolicLink()) detail = await readlink(p);
      out.set(p, `${st.mode}:${st.uid}:${st.gid}:${st.size}:${st.mtimeMs}:${st.nlink}:${detail}`);
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(dir);
  return out;
}

describe('hostile layers', { skip }, () => {
  let corpus: Map<string, string>;
  before(async () => {
    corpus = await writeHostileCorpus(await tmp.make('hostile-corpus'));
  });

  test('the corpus holds at least 25 cases', () => {
    assert.ok(hostileCases.length >= 25, `${hostileCases.length} cases`);
  });

  for (const mode of ['overlay', 'full'] as const) {
    for (const c of hostileCases) {
      test(`${c.name} (${mode})`, async () => {
        const parent = await tmp.make(`hostile-${mode}`);
        const root = join(parent, 'root');
        await mkdir(root);
        await mkdir(join(parent, 'canary'));
        await writeFile(join(parent, 'canary', 'file'), 'canary');
        const beforeSnap = await snapshot(parent, root);
        const subject = `hostile layer ${c.name}`;
        let error: unknown;
        try {
          await applyLayer(createReadStream(corpus.get(c.name)!), root, { mode, subject, ...(c.limits ? { limits: c.limits } : {}) });
        } catch (err) {
          error = err;
        }
        if ('refused' in c.expect) {
          assert.ok(error, 'expected the layer to be refused');
          assert.ok(isStratumError(error), `not a StratumError: ${String(error)}`);
          assert.equal(error.code, c.expect.refused, error.message);
          assert.ok(error.message.includes(subject), `message names the layer: ${error.message}`);
          if (c.expect.entry !== undefined) assert.ok(error.message.includes(JSON.stringify(c.expect.entry)) || error.message.includes(c.expect.entry), `message names the entry: ${error.message}`);
        } else {
          if (error) throw error;
          await c.expect.applied(root);
        }
        assert.deepEqual(await snapshot(parent, root), beforeSnap, 'nothing outside the root changed');
        for (const name of ['escape', 'pax-escape', 'gnu-escape', 'nul-escape']) {
          assert.equal(existsSync(join(parent, name)), false, `${name} appeared next to the root`);
          assert.equal(existsSync(join(parent, '..', name)), false, `${name} appeared above the root`);
        }
        assert.equal(await readFile(join(parent, 'canary', 'file'), 'utf8'), 'canary');
      });
    }
  }
});
