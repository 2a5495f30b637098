/**
 * Image archives against the real tools: a private Docker 20.10 daemon (FACTS.md's recipe) saves
 * an image stratum loads (same ID, names, and the tree `docker export` shows), and loads what
 * stratum saves (same ID and RepoTags, and its own `docker save` of it loads back into stratum);
 * skopeo reads stratum's OCI archives and writes ones stratum loads.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Engine } from '../../../src/index.js';
import { buildContext, dockerMissing, exportRootfs, tryStartDockerd, type PrivateDockerd } from '../../differential/docker.js';
import { pushFixtures, type PushedFixtures } from '../../fixtures/images.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { TempDirs } from '../../helpers/tmp.js';
import { assertSameTree, snapshotTree } from '../../helpers/tree.js';
import { readTar } from './tar-files.js';

const run = promisify(execFile);
const tmp = new TempDirs();
const env = { STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '', XDG_CONFIG_HOME: '/nonexistent' };

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: dockerd, mounts';
  for (const bin of ['/usr/bin/docker-registry', '/usr/bin/skopeo']) if (!existsSync(bin)) return `${bin} is not installed`;
  return dockerMissing();
}
const MISSING = missing();

let registry: TestRegistry | undefined;
let fixtures: PushedFixtures;
let source: Engine;
let docker: PrivateDockerd | undefined;
let dockerFailed: string | undefined;

before(async () => {
  if (MISSING) return;
  registry = await startRegistry({ schema1: true });
  fixtures = await pushFixtures(registry);
  source = await Engine.open({ root: await tmp.make('archive-docker-source'), env });
  for (const f of [fixtures.base, fixtures.app, fixtures.zstd, ...(fixtures.ubuntu ? [fixtures.ubuntu] : [])]) await source.pull(f.reference, { unpack: false });
  ({ docker, failed: dockerFailed } = await tryStartDockerd(registry.host));
});
after(async () => {
  await docker?.stop();
  await source?.close();
  await registry?.stop();
  await tmp.cleanup();
});

const skipReason = () => MISSING ?? (dockerFailed ? `LOUD SKIP: dockerd cannot start here: ${dockerFailed}` : undefined);
const fresh = async (prefix: string) => Engine.open({ root: await tmp.make(prefix), env });
const inspectDocker = async (name: string) => JSON.parse(await docker!.docker(['image', 'inspect', name]))[0] as { Id: string; RepoTags: string[] };

/** What `docker export` adds to every container's tree (FACTS.md). */
const EXPORT_ONLY = (p: string) => p === '.' || p === '.dockerenv' || /^(etc|dev|proc|sys)(\/|$)/.test(p);

describe('Docker 20.10 docker save → stratum load', () => {
  test('the same image ID and names; repeated layers (symlinks) read; the tree is docker export’s', { timeout: 300_000 }, async (t) => {
    const skip = skipReason();
    if (skip) return t.skip(skip);
    const work = await tmp.make('archive-docker-build');
    // Steps 3 and 5 make byte-identical layers (same content, same times): one diffID on two
    // chains, which docker save writes once and then as a symlink (20.10 makes no layer for `RUN true`).
    const same = (content: string) => `RUN echo ${content} > /c/f && touch -d '2024-01-01 00:00:00' /c/f /c`;
    await buildContext(work, ['FROM scratch', 'ADD base.tar /', 'RUN echo one > /c/one && mkdir /c/d && echo two > /c/d/two && rm /bin/seq', same('a'), same('b'), same('a'), 'RUN rm -r /c/d', 'CMD ["/bin/sh"]'].join('\n') + '\n');
    await docker!.docker(['build', '--network', 'none', '--quiet', '-t', 'stratum-test/busy:1', work]);
    await docker!.docker(['tag', 'stratum-test/busy:1', 'stratum-test/busy:latest']);
    const id = (await inspectDocker('stratum-test/busy:1')).Id;
    const file = join(work, 'saved.tar');
    await docker!.docker(['save', '-o', file, 'stratum-test/busy:1', 'stratum-test/busy:latest']);
    const entries = readTar(await (await import('node:fs/promises')).readFile(file));
    assert.ok(entries.some((e) => e.type === 'symlink' && e.name.endsWith('/layer.tar')), `docker save wrote a repeated layer as a symlink: ${entries.map((e) => `${e.name}${e.linkname ? ` -> ${e.linkname}` : ''}`).join(', ')}`);

    const engine = await fresh('archive-docker-load');
    try {
      const loaded = await engine.load(createReadStream(file));
      assert.deepEqual(loaded.images.map((i) => i.name).sort(), ['docker.io/stratum-test/busy:1', 'docker.io/stratum-test/busy:latest']);
      for (const image of loaded.images) assert.equal(image.id, id);
      const image = await engine.resolveImage('stratum-test/busy:1');
      assert.equal(image.configDescriptor.digest, id);
      assert.equal(image.descriptor.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
      assert.equal(new Set(image.manifest.layers.map((l) => l.digest)).size, image.manifest.layers.length - 1, 'the two empty layers are one blob');
      assert.deepEqual(image.manifest.layers.map((l) => l.digest), image.config.rootfs.diff_ids, 'uncompressed layers: blob digest = diffID');
      assert.deepEqual((await engine.verify()).problems, []);

      const exported = join(work, 'export');
      await exportRootfs(docker!, 'stratum-test/busy:1', exported);
      const mnt = await tmp.make('archive-docker-mnt');
      await engine.mount('stratum-test/busy:1', mnt);
      try {
        assertSameTree(await snapshotTree(exported), await snapshotTree(mnt), { names: ['docker export', 'stratum'], ignore: EXPORT_ONLY });
      } finally {
        await engine.unmount(mnt);
      }
    } finally {
      await engine.close();
    }
  });
});

describe('stratum save → Docker 20.10 docker load', () => {
  const cases = () => [
    { what: 'schema2 (gzip layers)', ref: fixtures.base.reference },
    { what: 'OCI manifest (gzip layers, one shared with base)', ref: fixtures.app.reference },
    ...(fixtures.ubuntu ? [{ what: 'schema1, stored converted', ref: fixtures.ubuntu.reference }] : []),
  ];
  for (const i of [0, 1, 2]) {
    test(`case ${i + 1}: docker image inspect shows the same ID and RepoTags; docker save of it loads back`, { timeout: 180_000 }, async (t) => {
      const skip = skipReason();
      if (skip) return t.skip(skip);
      const c = cases()[i];
      if (!c) return t.skip('LOUD SKIP: the registry has no schema1 support, so no schema1 image');
      t.diagnostic(c.what);
      const work = await tmp.make('archive-to-docker');
      const file = join(work, 'stratum.tar');
      await source.save([c.ref], createWriteStream(file));
      const out = await docker!.docker(['load', '-i', file]);
      const image = await source.resolveImage(c.ref);
      const familiar = c.ref; // a registry host with a port: its familiar form is the full name
      assert.match(out, new RegExp(`Loaded image: ${familiar.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      const inspected = await inspectDocker(familiar);
      assert.equal(inspected.Id, image.configDescriptor.digest);
      assert.deepEqual(inspected.RepoTags, [familiar]);

      const back = join(work, 'docker.tar');
      await docker!.docker(['save', '-o', back, familiar]);
      const engine = await fresh('archive-docker-back');
      try {
        const loaded = await engine.load(createReadStream(back));
        assert.deepEqual(loaded.images.map((l) => [l.name, l.id]), [[image.name, image.configDescriptor.digest]]);
        assert.deepEqual((await engine.verify()).problems, []);
      } finally {
        await engine.close();
      }
      await docker!.docker(['rmi', familiar]);
    });
  }

  // Docker 20.10 refuses a zstd layer file ("archive/tar: invalid tar header": its DecompressStream
  // knows gzip, bzip2 and xz only), so the docker format names such a layer decompressed.
  test('a zstd layer: manifest.json names it decompressed, and Docker 20.10 loads it', { timeout: 120_000 }, async (t) => {
    const skip = skipReason();
    if (skip) return t.skip(skip);
    const file = join(await tmp.make('archive-zstd'), 'zstd.tar');
    await source.save([fixtures.zstd.reference], createWriteStream(file));
    const result = await docker!.docker(['load', '-i', file]).then(
      (out) => ({ ok: true, out }),
      (err: { stderr?: string; message: string }) => ({ ok: false, out: err.stderr || err.message }),
    );
    assert.ok(result.ok, `docker load: ${result.out}`);
    assert.equal((await inspectDocker(fixtures.zstd.reference)).Id, fixtures.zstd.configDigest);
  });
});

describe('skopeo and OCI archives', () => {
  test('skopeo inspects and copies stratum’s OCI archive; stratum loads skopeo’s', { timeout: 120_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const work = await tmp.make('archive-skopeo');
    const file = join(work, 'app.oci.tar');
    await source.save([fixtures.app.reference], createWriteStream(file), { format: 'oci' });
    const image = await source.resolveImage(fixtures.app.reference);
    const skopeo = async (...args: string[]) => (await run('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 << 20 })).stdout;
    const inspected = JSON.parse(await skopeo('inspect', `oci-archive:${file}`));
    assert.equal(inspected.Digest, image.descriptor.digest);
    assert.deepEqual(inspected.Layers, image.manifest.layers.map((l) => l.digest));
    const byName = JSON.parse(await skopeo('inspect', `oci-archive:${file}:${image.name}`));
    assert.equal(byName.Digest, image.descriptor.digest);
    await skopeo('copy', '--quiet', `oci-archive:${file}`, `oci:${join(work, 'layout')}:copied`);
    assert.equal(JSON.parse(await skopeo('inspect', `oci:${join(work, 'layout')}:copied`)).Digest, image.descriptor.digest);

    // skopeo writes archives from the store (an OCI layout): a bare tag as ref.name, and a full name.
    const bare = join(work, 'bare.tar');
    const full = join(work, 'full.tar');
    await skopeo('copy', '--quiet', `oci:${source.root}:${image.name}`, `oci-archive:${bare}:latest`);
    await skopeo('copy', '--quiet', `oci:${source.root}:${image.name}`, `oci-archive:${full}:skopeo/app:2`);
    const engine = await fresh('archive-skopeo-load');
    try {
      const withBase = await engine.load(createReadStream(bare), { baseName: 'skopeo/app' });
      assert.deepEqual(withBase.images, [{ name: 'docker.io/skopeo/app:latest', id: image.configDescriptor.digest, manifest: image.descriptor.digest }]);
      const named = await engine.load(createReadStream(full));
      assert.deepEqual(named.images, [{ name: 'docker.io/skopeo/app:2', id: image.configDescriptor.digest, manifest: image.descriptor.digest }]);
      const unnamed = await engine.load(createReadStream(bare));
      assert.deepEqual(unnamed.images, [{ id: image.configDescriptor.digest, manifest: image.descriptor.digest }], 'a bare tag without a base name: loaded, not tagged');
      assert.deepEqual((await engine.verify()).problems, []);
    } finally {
      await engine.close();
    }
  });
});
