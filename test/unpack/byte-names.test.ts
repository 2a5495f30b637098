/**
 * Names are bytes: entries whose names or link targets are not UTF-8 keep every byte through
 * unpack (full and overlay), export and a layer diff, as GNU tar and containerd keep them.
 * Layers written by GNU tar (posix and gnu formats) from a tree made with raw byte names.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, linkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { isStratumError } from '../../src/errors.js';
import { writeTreeAsTar } from '../../src/image/export.js';
import { writeTreeDiff } from '../../src/image/diff.js';
import { showName } from '../../src/sys/byte-path.js';
import { applyLayer } from '../../src/unpack/apply.js';
import { nativeOrSkip } from '../helpers/native.js';
import { entry, pax, tarOf } from '../fixtures/hostile/tar-writer.js';
import { TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());
const { skip } = nativeOrSkip('owners');

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const under = (dir: string, name: Buffer) => Buffer.concat([Buffer.from(`${dir}/`), name]);

/** Names that are not UTF-8 (latin1 é, 0xff 0xfe, a lone continuation byte), one that is, and a long one. */
const FILE = latin1('caf\xe9');
const DIR = latin1('\xff\xfe-dir');
const INNER = latin1('in\x80ner');
const LINK = latin1('link-\xe9');
const HARD = latin1('hard-\xe9');
const UTF8 = Buffer.from('ü-utf8');
const LONG = latin1(`${'l\xe9'.repeat(60)}`);

function makeTree(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(under(dir, FILE), 'café in latin1\n');
  mkdirSync(under(dir, DIR));
  writeFileSync(Buffer.concat([under(dir, DIR), Buffer.from('/'), INNER]), 'inner\n');
  symlinkSync(FILE, under(dir, LINK));
  linkSync(under(dir, FILE), under(dir, HARD));
  writeFileSync(under(dir, UTF8), 'valid utf-8\n');
  writeFileSync(under(dir, LONG), 'long name\n');
}

/** Every entry below dir as `hex(path) type detail`, by raw bytes, sorted. */
function byteTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: Buffer, rel: Buffer) => {
    for (const name of readdirSync(abs, { encoding: 'buffer' })) {
      const a = Buffer.concat([abs, Buffer.from('/'), name]);
      const r = rel.length === 0 ? name : Buffer.concat([rel, Buffer.from('/'), name]);
      const st = lstatSync(a);
      let detail = '';
      if (st.isFile()) detail = `file ${createHash('sha256').update(readFileSync(a)).digest('hex').slice(0, 16)} nlink=${st.nlink}`;
      else if (st.isSymbolicLink()) detail = `symlink ${readlinkSync(a, { encoding: 'buffer' }).toString('hex')}`;
      else if (st.isDirectory()) detail = 'dir';
      else detail = `other ${st.mode.toString(8)}`;
      out.push(`${r.toString('hex')} ${detail}`);
      if (st.isDirectory()) walk(a, r);
    }
  };
  walk(Buffer.from(dir), Buffer.alloc(0));
  return out.sort();
}

async function gnuTar(source: string, format: string, out: string): Promise<void> {
  await exec('tar', ['-cf', out, `--format=${format}`, '--numeric-owner', '-C', source, '.']);
}

async function gnuExtract(tarPath: string): Promise<string> {
  const dir = await tmp.make('gnu-extract');
  await exec('tar', ['-xpf', tarPath, '--numeric-owner', '-C', dir]);
  return dir;
}

async function writeTo(path: string, write: (out: NodeJS.WritableStream & import('node:stream').Writable) => Promise<unknown>): Promise<void> {
  await write(createWriteStream(path));
}

describe('names are bytes: non-UTF-8 names and link targets survive unpack, export and diff', { skip }, () => {
  for (const format of ['posix', 'gnu'] as const) {
    for (const mode of ['full', 'overlay'] as const) {
      test(`GNU tar --format=${format}, ${mode} mode: every byte of every name, link target and hardlink kept`, async () => {
        const work = await tmp.make(`bytes-${format}-${mode}`);
        makeTree(join(work, 'src'));
        await gnuTar(join(work, 'src'), format, join(work, 'layer.tar'));
        const reference = byteTree(await gnuExtract(join(work, 'layer.tar')));
        assert.ok(reference.some((l) => l.startsWith(`${FILE.toString('hex')} file`)), 'GNU tar kept the latin1 name (the oracle works)');

        const root = join(work, 'root');
        await mkdir(root);
        await applyLayer(createReadStream(join(work, 'layer.tar')), root, { mode, subject: `byte-names ${format}`, hasLowerLayers: false });
        assert.deepEqual(byteTree(root), reference, 'unpacked tree, by bytes');

        await writeTo(join(work, 'export.tar'), (out) => writeTreeAsTar(root, out));
        assert.deepEqual(byteTree(await gnuExtract(join(work, 'export.tar'))), reference, 'export, extracted by GNU tar');

        await writeTo(join(work, 'diff.tar'), (out) => writeTreeDiff(undefined, root, out));
        assert.deepEqual(byteTree(await gnuExtract(join(work, 'diff.tar'))), reference, 'layer diff from nothing, extracted by GNU tar');
      });
    }
  }

  test('a refused entry with a non-UTF-8 name is named with its bytes escaped', async () => {
    const work = await tmp.make('bytes-refused');
    // A PAX path holding a latin1 byte and a `..` component: refused, naming the entry readably.
    const layer = tarOf(pax({ path: latin1('caf\xe9/../../x') }), entry({ name: 'placeholder' }, 'x'));
    const root = join(work, 'root');
    await mkdir(root);
    const err = await applyLayer(Readable.from([layer]), root, { mode: 'full', subject: 'byte-names refused' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isStratumError(err), String(err));
    assert.equal(err.code, 'ERR_UNSAFE_ENTRY');
    assert.ok(err.message.includes('caf\\\\xe9/../../x'), err.message);
  });

  test('showName: ASCII as is, valid UTF-8 decoded, other bytes as \\xNN', () => {
    assert.equal(showName('plain/name'), 'plain/name');
    assert.equal(showName(Buffer.from('ü/ß').toString('latin1')), 'ü/ß');
    assert.equal(showName('caf\xe9'), 'caf\\xe9');
    assert.equal(showName('\xff\xfe'), '\\xff\\xfe');
    assert.equal(showName(`${Buffer.from('ü').toString('latin1')}\x80`), 'ü\\x80');
  });
});
