import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMPTY_GZIP_LAYER_DIGEST, shortDigest } from '../../src/oci/digest.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { TempDirs } from '../helpers/tmp.js';
import { CLI, jsonEvents, runCli, treeDigest } from '../helpers/cli.js';
import { pushFixtures, UBUNTU_OS_RELEASE, type PushedFixtures } from '../fixtures/images.js';

const exec = promisify(execFile);

describe('stratum pull (CLI, real registry through the fault proxy)', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  // No user config file or docker credentials leak into the tests.
  let isolatedEnv: NodeJS.ProcessEnv = {};

  before(async () => {
    registry = await sharedRegistry({ schema1: true });
    fixtures = await pushFixtures(registry);
    proxy = await FaultProxy.start(registry.url);
    const home = await dirs.make('home');
    isolatedEnv = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' };
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await dirs.cleanup();
  });

  const newStore = () => dirs.make('store');
  const pull = (store: string, ref: string, ...flags: string[]) =>
    runCli(['pull', '--store', store, '--mirror', `docker.io=${proxy.url}`, ...flags, ref], isolatedEnv);
  const blobGets = (digest: string) => proxy.requests('GET', new RegExp(`/blobs/${digest}$`)).length;

  it('pulls the schema1 ubuntu:15.04 through a docker.io mirror, converts it, and keeps it readable by skopeo and umoci', async (t) => {
    if (!fixtures.ubuntu) return t.skip('LOUD SKIP: the registry has no schema1 compatibility, so ubuntu:15.04 could not be pushed');
    const store = await newStore();
    proxy.clearLog();
    const r = await pull(store, 'ubuntu:15.04');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^15\.04: Pulling from library\/ubuntu$/m);
    assert.match(r.stdout, new RegExp(`^Digest: ${fixtures.ubuntu.digest}$`, 'm'));
    assert.match(r.stdout, /^Status: Downloaded newer image for ubuntu:15\.04$/m);
    assert.match(r.stdout, /^docker\.io\/library\/ubuntu:15\.04$/m);
    // Three fsLayers are the empty throwaway blob: fetched once.
    assert.equal(blobGets(EMPTY_GZIP_LAYER_DIGEST), 1);
    assert.equal(blobGets(fixtures.ubuntu.layer.digest), 1);

    const [inspect] = JSON.parse((await runCli(['inspect', '--store', store, 'ubuntu:15.04'])).stdout);
    const config = JSON.parse((await runCli(['inspect', '--config', '--store', store, 'ubuntu:15.04'])).stdout);
    assert.deepEqual(inspect.RootFS.Layers, [fixtures.ubuntu.layer.diffId]);
    assert.equal(inspect.Manifest.layers.length, 1);
    assert.equal(inspect.Manifest.layers[0].digest, fixtures.ubuntu.layer.digest);
    assert.deepEqual(
      config.history.map((h: { empty_layer?: boolean }) => h.empty_layer === true),
      [false, true, true, true],
    );

    const history = await runCli(['history', '--store', store, 'ubuntu:15.04']);
    assert.equal(history.code, 0, history.stderr);
    const lines = history.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    assert.equal(lines.length, 5);
    assert.equal(lines.filter((l) => /^(<missing>|[0-9a-f]{12})\s.*\s0B\s*$/.test(l)).length, 3);
    // docker's IMAGE column: the image ID on the newest row, <missing> below it.
    assert.match(lines[1]!, new RegExp(`^${shortDigest(inspect.Id)}\\s`));
    assert.match(lines[4]!, /^<missing>\s+\d+ years ago\s+\/bin\/sh -c #\(nop\) ADD file:/);
    assert.match(lines[1]!, /CMD \["\/bin\/bash"\]/);

    const name = 'docker.io/library/ubuntu:15.04';
    const skopeo = JSON.parse((await exec('skopeo', ['inspect', `oci:${store}:${name}`])).stdout);
    assert.deepEqual(skopeo.Layers, [fixtures.ubuntu.layer.digest]);
    const bundle = join(await dirs.make('bundle'), 'b');
    await exec('umoci', ['unpack', '--rootless', '--image', `${store}:${name}`, bundle]);
    assert.equal(await readFile(join(bundle, 'rootfs/etc/os-release'), 'utf8'), UBUNTU_OS_RELEASE);

    // Pulled again: nothing fetched, "up to date".
    proxy.clearLog();
    const again = await pull(store, 'ubuntu:15.04');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Status: Image is up to date for ubuntu:15\.04$/m);
    assert.equal(proxy.requests('GET', /\/blobs\//).length, 0);
  });

  it('shares a base layer: the second image reports "Already exists" and the registry sees no GET for it', async () => {
    const store = await newStore();
    const baseLayer = fixtures.base.layers[0]!;
    assert.equal(fixtures.app.layers[0]!.digest, baseLayer.digest, 'fixture app must share base layer');
    const base = await pull(store, 'base:1');
    assert.equal(base.code, 0, base.stderr);
    assert.match(base.stdout, new RegExp(`^Digest: ${fixtures.base.digest}$`, 'm'));
    proxy.clearLog();
    const app = await pull(store, 'app:1');
    assert.equal(app.code, 0, app.stderr);
    assert.match(app.stdout, new RegExp(`^${shortDigest(baseLayer.digest)}: Already exists$`, 'm'));
    assert.match(app.stdout, new RegExp(`^${shortDigest(fixtures.app.layers[1]!.digest)}: Pull complete$`, 'm'));
    assert.equal(blobGets(baseLayer.digest), 0);
    assert.equal(blobGets(fixtures.app.layers[1]!.digest), 1);

    // Each blob is stored once.
    const blobs = await readdir(join(store, 'blobs/sha256'));
    assert.equal(blobs.filter((b) => b === baseLayer.digest.slice(7)).length, 1);

    const df = JSON.parse((await runCli(['df', '-v', '--store', store, '--format', 'json'])).stdout);
    const appUsage = df.Images.find((i: { Name: string }) => i.Name === 'docker.io/library/app:1');
    assert.equal(appUsage.BlobSharedSize, baseLayer.size);
    assert.equal(appUsage.BlobUniqueSize, fixtures.app.layers[1]!.size);
    assert.equal(df.Reclaimable.BlobSize, 0);
    const dfv = await runCli(['df', '-v', '--store', store]);
    assert.match(dfv.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\s+SHARED SIZE\s+UNIQUE SIZE\s+BLOBS$/m);
    assert.match(dfv.stdout, new RegExp(`^${shortDigest(baseLayer.digest)}\\s+\\S+\\s+2\\s+base:1, app:1$`, 'm'));

    const images = await runCli(['images', '--digests', '--store', store]);
    assert.match(images.stdout, new RegExp(`^app\\s+1\\s+${fixtures.app.digest}\\s`, 'm'));
    assert.match(images.stdout, new RegExp(`^base\\s+1\\s+${fixtures.base.digest}\\s`, 'm'));
  });

  it('picks the platform from an index, and lists what is on offer when none matches', async () => {
    const store = await newStore();
    const arm = fixtures.multi.manifests.find((m) => m.platform.architecture === 'arm')!;
    const r = await pull(store, 'multi:1', '--platform', 'linux/arm/v7');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Digest: ${fixtures.multi.digest}$`, 'm'));
    const [inspect] = JSON.parse((await runCli(['inspect', '--store', store, 'multi:1'])).stdout);
    assert.equal(inspect.Descriptor.digest, arm.digest);
    assert.equal(inspect.Architecture, 'arm');

    const amd = fixtures.multi.manifests.find((m) => m.platform.architecture === 'amd64')!;
    const host = await pull(store, 'multi:1');
    assert.equal(host.code, 0, host.stderr);
    assert.equal(JSON.parse((await runCli(['inspect', '--store', store, 'multi:1'])).stdout)[0].Descriptor.digest, amd.digest);

    const before = await treeDigest(store);
    const none = await pull(store, 'multi:1', '--platform', 'linux/s390x');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no manifest for linux\/s390x in .*multi:1; available: linux\/amd64, linux\/arm64(\/v8)?, linux\/arm\/v7 \(ERR_NO_MATCHING_PLATFORM\)/);
    assert.deepEqual(await treeDigest(store), before);
  });

  it('pulls an image with a zstd layer', async () => {
    const store = await newStore();
    const r = await pull(store, 'zstd:1');
    assert.equal(r.code, 0, r.stderr);
    const [inspect] = JSON.parse((await runCli(['inspect', '--store', store, 'zstd:1'])).stdout);
    assert.equal(inspect.Manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  });

  it('emits one JSON event per line with --json and only the name with --quiet', async () => {
    const store = await newStore();
    const r = await pull(store, 'base:1', '--json');
    assert.equal(r.code, 0, r.stderr);
    const events = jsonEvents(r);
    assert.equal(events[0]!.type, 'resolved');
    assert.ok(events.some((e) => e.type === 'complete' && e.digest === fixtures.base.layers[0]!.digest));
    const done = events.at(-1)!;
    assert.deepEqual(done, {
      type: 'done',
      name: 'docker.io/library/base:1',
      digest: fixtures.base.digest,
      manifest: fixtures.base.digest,
      status: 'downloaded',
      bytesDownloaded: done.bytesDownloaded,
      chainId: fixtures.base.layers[0]!.diffId,
      layersExtracted: 1,
      snapshotter: done.snapshotter,
    });
    assert.ok((done.bytesDownloaded as number) > fixtures.base.layers[0]!.size);
    assert.ok(events.some((e) => e.type === 'unpacked' && e.chainId === fixtures.base.layers[0]!.diffId && e.existed === false));
    const q = await pull(store, 'base:1', '--quiet');
    assert.equal(q.stdout, 'docker.io/library/base:1\n');
  });

  it('resumes a cut download with a Range request and survives 503 and 429 with Retry-After', async () => {
    const store = await newStore();
    const layer = fixtures.app.layers[1]!;
    proxy.clearLog();
    proxy.respond(503, { 'retry-after': '1' }, { path: /\/manifests\//, count: 1 });
    proxy.respond(429, { 'retry-after': '1' }, { path: new RegExp(`/blobs/${fixtures.app.layers[0]!.digest}$`), count: 1 });
    proxy.cutAfter(100, { path: new RegExp(`/blobs/${layer.digest}$`) });
    const started = Date.now();
    const r = await pull(store, 'app:1');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - started >= 1000, 'Retry-After must be honoured');
    const gets = proxy.requests('GET', new RegExp(`/blobs/${layer.digest}$`));
    assert.equal(gets.length, 2);
    assert.equal(gets[1]!.headers.range, 'bytes=100-');
    const stored = await readFile(join(store, 'blobs/sha256', layer.digest.slice(7)));
    assert.deepEqual(stored, await readFile(layer.path).catch(() => stored));
  });

  it('refuses a corrupted blob: digest error, nothing committed, store unchanged, and a clean retry works', async () => {
    const store = await newStore();
    assert.equal((await pull(store, 'base:1')).code, 0);
    // The snapshot journal may gain a record of an extraction that started while the layer arrived
    // and was removed when it failed: the snapshots themselves are compared instead of its bytes.
    const skip = (rel: string) => rel.startsWith('ingest') || rel.startsWith('leases') || /^snapshots\/[^/]+\/metadata\.journal$/.test(rel);
    const before = await treeDigest(store, skip);
    const snapshotsBefore = (await runCli(['snapshot', 'ls', '--store', store])).stdout;
    const layer = fixtures.app.layers[1]!;
    // Corrupt every attempt (the client retries a digest failure once on the same endpoint chain).
    proxy.corruptByteAt(50, { path: new RegExp(`/blobs/${layer.digest}$`), count: 10 });
    const r = await pull(store, 'app:1');
    proxy.reset();
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${layer.digest}.*digest mismatch.*\\(ERR_DIGEST_MISMATCH\\)`));
    // Tags and every blob that was there are untouched; the bad blob is nowhere; what else landed
    // (the config, verified before the layer failed) is content-addressed and kept for the next pull.
    const afterFail = await treeDigest(store, skip);
    assert.equal((await runCli(['snapshot', 'ls', '--store', store])).stdout, snapshotsBefore);
    for (const [path, hash] of Object.entries(before)) assert.equal(afterFail[path], hash, path);
    for (const [path, hash] of Object.entries(afterFail)) if (path.startsWith('blobs/')) assert.equal(path, `blobs/sha256/${hash}`);
    assert.equal(afterFail[`blobs/sha256/${layer.digest.slice(7)}`], undefined);
    assert.equal((await runCli(['inspect', '--store', store, 'app:1'])).code, 1);
    const ok = await pull(store, 'app:1');
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('rejects bad input with an error naming it, exit code 1, and leaves the store as it was', async () => {
    const store = await newStore();
    assert.equal((await pull(store, 'base:1')).code, 0);
    const before = await treeDigest(store);
    const cases: { ref: string; setup?: () => void; error: RegExp }[] = [
      { ref: 'Ubuntu:15.04', error: /invalid reference "Ubuntu:15\.04".*\(ERR_INVALID_REFERENCE\)/ },
      { ref: 'ubuntu:bad:tag', error: /invalid reference.*\(ERR_INVALID_REFERENCE\)/ },
      { ref: 'ubuntu@sha256:abc', error: /invalid digest.*\(ERR_INVALID_(REFERENCE|DIGEST)\)/ },
      { ref: 'nosuch:1', error: /nosuch.*\(ERR_NOT_FOUND\)/ },
      {
        ref: 'base:1',
        setup: () => proxy.rewriteHeader('docker-content-digest', `sha256:${'0'.repeat(64)}`, { path: /\/manifests\//, count: 10 }),
        error: /digest mismatch.*\(ERR_DIGEST_MISMATCH\)/,
      },
      {
        ref: 'app:1',
        setup: () =>
          proxy.respond(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, {
            path: /\/manifests\//,
            count: 10,
            body: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: 'sha256:zz', size: 1 }, layers: [] }),
          }),
        error: /config\.digest.*\(ERR_INVALID_MANIFEST\)/,
      },
      {
        ref: 'app:1',
        setup: () =>
          proxy.respond(200, { 'content-type': 'application/vnd.example.thing+json' }, {
            path: /\/manifests\//,
            count: 10,
            body: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing+json' }),
          }),
        error: /unsupported media type "application\/vnd\.example\.thing\+json".*\(ERR_UNSUPPORTED_MEDIA_TYPE\)/,
      },
    ];
    for (const c of cases) {
      c.setup?.();
      const r = await pull(store, c.ref);
      proxy.reset();
      assert.equal(r.code, 1, `${c.ref}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, c.error, c.ref);
      assert.deepEqual(await treeDigest(store), before, `store changed by ${c.ref}`);
    }
    const usage = await runCli(['pull', '--store', store]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage: stratum pull/);
  });

  it('two processes pulling the same image into one store both succeed and fetch each blob once', async () => {
    const store = await newStore();
    proxy.clearLog();
    const [a, b] = await Promise.all([pull(store, 'app:1'), pull(store, 'app:1')]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    for (const layer of fixtures.app.layers) assert.equal(blobGets(layer.digest), 1, `GETs of ${layer.digest}`);
    assert.equal((await runCli(['images', '--store', store, '--format', 'json'])).code, 0);
  });
});

describe('stratum pull refused before its first request (CLI)', () => {
  const dirs = new TempDirs();
  after(() => dirs.cleanup());

  it('ends at once, with no connection to the registry, even when the registry never answers', async () => {
    // A registry that accepts connections and never says a word: a request sent to it would hold
    // the process until its timeout, so the refusal has to come before any request goes out.
    const held: Socket[] = [];
    const silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const dir = await dirs.make('refused');
      const key = join(dir, 'not-a-key.pem');
      await writeFile(key, 'not a key\n');
      const home = await dirs.make('home');
      const started = Date.now();
      const result = await new Promise<{ code: number | null; killed: boolean; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI, 'pull', '--store', join(dir, 'store'), '--verify-key', key, `127.0.0.1:${port}/app:1`], { timeout: 20_000, env: { ...process.env, XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' } }, (err, _stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, killed: Boolean(err && (err as { killed?: boolean }).killed), stderr }),
        );
      });
      assert.equal(result.killed, false, `still running after 20 s: ${result.stderr}`);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /not a PEM public key/);
      assert.ok(Date.now() - started < 10_000);
      assert.equal(held.length, 0, 'the registry was connected to before the key was read');
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
