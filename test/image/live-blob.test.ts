/**
 * Layers are extracted while their blobs download (overlay): the extraction starts on the first
 * bytes, and what it read counts only when the blob is then verified and its download never
 * restarted. Real registry behind fault proxies; the result is checked against a pull that met
 * no fault, through `stratum export` of both.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { TempDirs } from '../helpers/tmp.js';
import { jsonEvents, parseSnapshotLs, runCli } from '../helpers/cli.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay mounts, owners';
  for (const bin of ['/usr/bin/skopeo', '/usr/bin/docker-registry']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

const events = jsonEvents;

describe('layers extract while they download (overlay)', () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  let first: FaultProxy;
  let second: FaultProxy;
  const dirs = new TempDirs();
  let env: NodeJS.ProcessEnv = {};
  /** sha256 of `stratum export` of app:1 from a pull that met no fault. */
  let reference = '';

  const pull = (store: string, mirrors: FaultProxy[], ...flags: string[]) =>
    runCli(['pull', '--store', store, '--json', ...mirrors.flatMap((m) => ['--mirror', `docker.io=${m.url}`]), '--snapshotter', 'overlay', ...flags, 'app:1'], env);
  const exported = async (store: string) => {
    const out = join(await dirs.make('export'), 'app.tar');
    const r = await runCli(['export', '--store', store, 'app:1', '-o', out], env);
    assert.equal(r.code, 0, r.stderr);
    return createHash('sha256').update(await readFile(out)).digest('hex');
  };
  /** Rows of `snapshot ls` for snapshots that are not committed (extractions left behind). */
  const uncommitted = async (store: string) => {
    const rows: string[] = [];
    for (const kind of ['active', 'view']) {
      const r = await runCli(['snapshot', '--store', store, '--snapshotter', 'overlay', 'ls', `kind==${kind}`], env);
      assert.equal(r.code, 0, r.stderr);
      rows.push(...parseSnapshotLs(r.stdout).map((row) => `${row.name} ${row.kind}`));
    }
    return rows;
  };
  /** The app image's last layer: its own files, a `.wh.` deletion and an opaque dir. */
  const topLayer = () => fixtures.app.layers.at(-1)!;
  const blobPath = () => new RegExp(`/blobs/${topLayer().digest}$`);

  before(async () => {
    if (MISSING) return;
    registry = await sharedRegistry({ schema1: true });
    fixtures = await pushFixtures(registry);
    first = await FaultProxy.start(registry.url);
    second = await FaultProxy.start(registry.url);
    const home = await dirs.make('home');
    env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' };
    const store = await dirs.make('store');
    const r = await pull(store, [first]);
    assert.equal(r.code, 0, r.stderr);
    reference = await exported(store);
  });
  after(async () => {
    await first?.stop();
    await second?.stop();
    await registry?.stop();
    await dirs.cleanup();
  });

  for (const snapshotter of ['overlay', 'native'] as const) {
    test(`${snapshotter}: extraction consumes a layer before its blob is complete, and the result equals an undisturbed pull`, async (t) => {
      if (MISSING) return t.skip(MISSING);
      const store = await dirs.make('store');
      const layer = topLayer();
      first.stallAfter(Math.floor(layer.size / 2), 1500, { path: blobPath() });
      const r = await pull(store, [first], '--snapshotter', snapshotter);
      first.reset();
      assert.equal(r.code, 0, r.stderr);
      const ev = events(r).filter((e) => e.digest === layer.digest);
      const extracting = ev.findIndex((e) => e.type === 'extracting');
      const verifying = ev.findIndex((e) => e.type === 'verifying');
      assert.ok(extracting >= 0 && verifying >= 0, JSON.stringify(ev));
      assert.ok(extracting < verifying, `extraction began only after the download: ${ev.map((e) => e.type).join(', ')}`);
      assert.ok((ev[extracting]!.current as number) < layer.size, 'the first extraction progress covers part of the blob');
      if (snapshotter === 'overlay') assert.equal(await exported(store), reference);
      else {
        const plain = await dirs.make('store');
        assert.equal((await pull(plain, [first], '--snapshotter', 'native')).code, 0);
        assert.equal(await exported(store), await exported(plain));
      }
    });
  }

  test('a cut download resumed with Range: the reader goes on from where the file ends, result unchanged', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await dirs.make('store');
    const layer = topLayer();
    first.clearLog();
    first.cutAfter(Math.floor(layer.size / 2), { path: blobPath() });
    const r = await pull(store, [first]);
    first.reset();
    assert.equal(r.code, 0, r.stderr);
    const gets = first.requests('GET', blobPath());
    assert.equal(gets.length, 2);
    assert.equal(gets[1]!.headers.range, `bytes=${Math.floor(layer.size / 2)}-`);
    const progress = events(r).filter((e) => e.type === 'extracting' && e.digest === layer.digest).map((e) => e.current as number);
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'one extraction pass, never restarted');
    assert.equal(await exported(store), reference);
    assert.deepEqual(await uncommitted(store), []);
  });

  test('a registry that ignores Range after a cut: the file restarts, what was read is void, the layer is extracted again from the verified blob', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await dirs.make('store');
    const layer = topLayer();
    first.clearLog();
    first.cutAfter(Math.floor(layer.size / 2), { path: blobPath() });
    first.ignoreRange();
    const r = await pull(store, [first]);
    first.reset();
    assert.equal(r.code, 0, r.stderr);
    const gets = first.requests('GET', blobPath());
    assert.equal(gets.length, 2);
    assert.equal(gets[1]!.headers.range, `bytes=${Math.floor(layer.size / 2)}-`, 'asked to resume; the proxy dropped the Range');
    assert.equal(await exported(store), reference);
    assert.deepEqual(await uncommitted(store), []);
  });

  test('a mirror serving a corrupt blob: the extraction of the bad bytes is dropped, the blob comes from the next mirror, result unchanged', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await dirs.make('store');
    first.clearLog();
    second.clearLog();
    // The flipped byte reaches the reader (the rest of the body waits) before the digest check fails.
    first.corruptByteAt(40, { path: blobPath(), stallMs: 800 });
    const r = await pull(store, [first, second]);
    first.reset();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(first.requests('GET', blobPath()).length, 1, `${first.requests('GET', /./).map((e) => e.path).join(' ')} | ${second.requests('GET', /./).map((e) => e.path).join(' ')}`);
    assert.equal(second.requests('GET', blobPath()).length, 1);
    assert.equal(await exported(store), reference);
    assert.deepEqual(await uncommitted(store), []);
  });

  test('schema1: diffIDs are hashed while the layers download; after a restart (Range ignored) from the stored blob, still right', async (t) => {
    if (MISSING) return t.skip(MISSING);
    if (!fixtures.ubuntu) return t.skip('LOUD SKIP: the registry has no schema1 compatibility, so ubuntu:15.04 could not be pushed');
    const { layer } = fixtures.ubuntu;
    const path = new RegExp(`/blobs/${layer.digest}$`);
    for (const fault of ['stall', 'restart'] as const) {
      const store = await dirs.make('store');
      first.clearLog();
      if (fault === 'stall') first.stallAfter(Math.floor(layer.size / 2), 500, { path });
      else first.cutAfter(Math.floor(layer.size / 2), { path }).ignoreRange();
      const r = await runCli(['pull', '--store', store, '--no-unpack', '--mirror', `docker.io=${first.url}`, 'ubuntu:15.04'], env);
      first.reset();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(first.requests('GET', path).length, fault === 'stall' ? 1 : 2);
      const [inspect] = JSON.parse((await runCli(['inspect', '--store', store, 'ubuntu:15.04'], env)).stdout);
      assert.deepEqual(inspect.RootFS.Layers, [layer.diffId], fault);
    }
  });
});
