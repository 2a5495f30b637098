/**
 * The library docs (`npm run docs`) build from the doc comments without a warning, the Engine
 * (the entry point the README links) is documented method by method, and the "Build an image"
 * guide (docs/build-an-image.md) is a page of them whose API names link to their reference.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { Engine } from '../../src/index.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const dirs = new TempDirs();
after(() => dirs.cleanup());

test('typedoc builds the API docs with warnings as errors; every public Engine method has a doc comment', { timeout: 180_000 }, async (t) => {
  const bin = 'node_modules/typedoc/bin/typedoc';
  if (!existsSync(bin)) return t.skip('typedoc is not installed (npm ci installs it)');
  const out = await dirs.make('typedoc');
  await run(process.execPath, [bin, '--options', 'typedoc.json', '--out', out]);
  const page = await readFile(join(out, 'classes', 'Engine.html'), 'utf8');
  const methods = Object.getOwnPropertyNames(Engine.prototype).filter((m) => m !== 'constructor');
  const undocumented = methods.filter((m) => {
    const at = page.indexOf(`id="${m.toLowerCase()}"`);
    if (at < 0) return false; // private: not in the docs
    const section = page.slice(at, page.indexOf('</section>', at));
    return !section.includes('tsd-comment');
  });
  assert.ok(methods.length > 20);
  assert.deepEqual(undocumented, [], `Engine methods without a doc comment: ${undocumented.join(', ')}`);

  // The guide: generated, listed on the front page, its {@link}s resolved to the reference pages.
  const guide = await readFile(join(out, 'documents', 'Build_an_image.html'), 'utf8');
  assert.match(await readFile(join(out, 'index.html'), 'utf8'), /href="documents\/Build_an_image\.html"/);
  for (const heading of ['Pull the base image', 'Reproducible digests', 'An index of two platforms', 'Sign and verify', 'Attach an SBOM or an attestation']) assert.ok(guide.includes(heading), heading);
  for (const anchor of ['Engine.html#image', 'Engine.html#createindex', 'Engine.html#push', 'Engine.html#sign', 'Engine.html#verifyimage', 'Engine.html#attach', 'Engine.html#referrers', 'MutableImage.html#withplatform', 'MutableImage.html#appendlayer']) {
    assert.ok(guide.includes(`href="../classes/${anchor}"`), `the guide links ${anchor}`);
  }
});
