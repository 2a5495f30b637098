/**
 * `stratum export IMAGE -o FILE` end to end: for the proof images links, xattrs, modes and
 * longnames, the tar extracted by GNU tar (as root, with xattrs) equals the overlay merged view
 * entry by entry (type, mode, owner, content, link target, xattrs incl. binary
 * security.capability, hardlink groups); `-o -` writes the same bytes to standard output.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { buildLayer, type BuiltLayer } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { pushOciLayout } from '../fixtures/push.js';
import { CAP_NET_BIND_SERVICE, checkExpectations, proofImageSpecs, type Expectation } from '../fixtures/proof-images.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { CLI, runCli } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';
import { assertSameTree, snapshotTree } from '../helpers/tree.js';

const exec = promisify(execFile);
const tmpDirs = new TempDirs();
const tmp = (prefix: string) => tmpDirs.make(prefix);

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay mounts, and GNU tar must restore owners, modes and security.capability';
  for (const bin of ['/usr/bin/docker-registry', '/usr/bin/tar']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

const NAMES = ['links', 'xattrs', 'modes', 'longnames'] as const;
type Name = (typeof NAMES)[number];

let registry: TestRegistry | undefined;
let env: NodeJS.ProcessEnv = {};
let store = '';
const images = {} as Record<Name, { reference: string; layers: BuiltLayer[]; expectations: Expectation[] }>;

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  const home = await tmp('export-home');
  env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '' };
  const work = await tmp('export-images');
  const specs = proofImageSpecs().filter((s) => (NAMES as readonly string[]).includes(s.name));
  await Promise.all(
    specs.map(async (spec) => {
      const blobs = join(work, spec.name, 'blobs', 'sha256');
      const layers: BuiltLayer[] = [];
      for (const l of spec.layers) layers.push(await buildLayer(l.entries, { compression: l.compression, dir: blobs }));
      const layout = await writeOciLayout(join(work, spec.name), [{ tag: '1', layers }]);
      await pushOciLayout(layout.dir, '1', registry!, `export/${spec.name}:1`, 'oci');
      images[spec.name as Name] = { reference: `${registry!.host}/export/${spec.name}:1`, layers, expectations: spec.expectations };
    }),
  );
  store = await tmp('export-store');
  for (const name of NAMES) {
    const r = await runCli(['pull', '--store', store, images[name].reference], env);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

/** The overlay merged view of the image, through `stratum mount` (read-only view). */
async function mergedTree(reference: string) {
  const dir = await tmp('export-merged');
  const m = await runCli(['mount', '--store', store, reference, dir], env);
  assert.equal(m.code, 0, m.stderr);
  try {
    return await snapshotTree(dir);
  } finally {
    assert.equal((await runCli(['unmount', '--store', store, dir], env)).code, 0);
  }
}

async function gnuTarExtract(file: string) {
  const dir = await tmp('export-extracted');
  await exec('tar', ['--xattrs', '--xattrs-include=*', '-xpf', file, '-C', dir]);
  return snapshotTree(dir);
}

/** `stratum export … -o -` with standard output going straight to a file (the tar is binary). */
function exportToStdout(reference: string, file: string): Promise<{ code: number; stderr: string }> {
  const fd = openSync(file, 'w');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'export', '--store', store, reference, '-o', '-'], { env: { ...process.env, ...env }, stdio: ['ignore', fd, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      closeSync(fd);
      resolve({ code: code ?? -1, stderr });
    });
  });
}


describe('stratum export', () => {
  for (const name of NAMES) {
    test(`${name}: GNU tar's extraction of the export equals the overlay merged view; -o - gives the same bytes`, async (t) => {
      if (MISSING) return t.skip(MISSING);
      const image = images[name];
      const out = await tmp(`export-${name}`);
      const file = join(out, 'rootfs.tar');
      const r = await runCli(['export', '--store', store, image.reference, '-o', file], env);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await readdir(out), ['rootfs.tar'], 'no .partial file left');

      const extracted = await gnuTarExtract(file);
      assert.deepEqual(checkExpectations(extracted, image.expectations), []);
      const merged = await mergedTree(image.reference);
      // The root itself is not in the tar (the extraction dir is a mkdtemp dir).
      assertSameTree(merged, extracted, { names: ['merged view', 'exported tar'], ignore: (p) => p === '.' });
      if (name === 'xattrs') {
        const ping = extracted.find((e) => e.path === 'bin/ping')!;
        assert.ok(ping.xattrs['security.capability']?.equals(CAP_NET_BIND_SERVICE), 'security.capability survives byte for byte');
      }

      const piped = join(out, 'stdout.tar');
      const s = await exportToStdout(image.reference, piped);
      assert.equal(s.code, 0, s.stderr);
      assert.ok((await readFile(piped)).equals(await readFile(file)), '-o - writes the same tar as -o FILE');

      // Nothing is left behind: no view snapshot of this image remains.
      const views = await runCli(['snapshot', '--store', store, 'ls', `kind==view,labels.dev.stratum.image==${image.reference}`], env);
      assert.equal(views.code, 0, views.stderr);
      assert.equal(views.stdout.trimEnd().split('\n').length, 1, views.stdout);
    });
  }

  test('export errors: unknown image exits 1 with ERR_NOT_FOUND and writes no file; -o is required', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const out = await tmp('export-errors');
    const r = await runCli(['export', '--store', store, `${registry!.host}/export/nosuch:1`, '-o', join(out, 'x.tar')], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nosuch:1 not found.*\(ERR_NOT_FOUND\)/);
    assert.deepEqual(await readdir(out), []);
    const u = await runCli(['export', '--store', store, images.links.reference], env);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /"stratum export" requires -o FILE/);
  });
});
