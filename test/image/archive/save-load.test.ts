/**
 * save → load round trips between two stores (docker and OCI formats, through a file and through
 * a pipe, gzipped as a whole), and bad archives: each refused with a typed error naming the entry,
 * the store left without a tag and `verify` clean.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { Engine, isStratumError, type ErrorCode, type LoadResult } from '../../../src/index.js';
import { pushFixtures, type PushedFixtures } from '../../fixtures/images.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { TempDirs } from '../../helpers/tmp.js';
import { readTar, writeTar, type TarFile } from './tar-files.js';

const tmp = new TempDirs();
const MISSING = existsSync('/usr/bin/docker-registry') ? undefined : '/usr/bin/docker-registry is not installed';
const env = { STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '', XDG_CONFIG_HOME: '/nonexistent' };

let registry: TestRegistry | undefined;
let fixtures: PushedFixtures;
let source: Engine;
/** Names saved: schema2, OCI (sharing base's layer), zstd, and the schema1 image pull converted, when the registry has it. */
let names: string[];

before(async () => {
  if (MISSING) return;
  registry = await startRegistry({ schema1: true });
  fixtures = await pushFixtures(registry);
  source = await Engine.open({ root: await tmp.make('archive-source'), env });
  names = [fixtures.base.reference, fixtures.app.reference, fixtures.zstd.reference, ...(fixtures.ubuntu ? [fixtures.ubuntu.reference] : [])];
  for (const name of [...names, fixtures.multi.reference]) await source.pull(name, { unpack: false });
});
after(async () => {
  await source?.close();
  await registry?.stop();
  await tmp.cleanup();
});

function collect(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return { out: new Writable({ write: (c: Buffer, _e, cb) => void (chunks.push(c), cb()) }), bytes: () => Buffer.concat(chunks) };
}

async function saved(list: string[], format: 'docker' | 'oci' = 'docker'): Promise<Buffer> {
  const { out, bytes } = collect();
  await source.save(list, out, { format });
  return bytes();
}

async function freshEngine(prefix: string): Promise<Engine> {
  return Engine.open({ root: await tmp.make(prefix), env });
}

/** Every loaded image has the source's manifest digest, ID and layers, and the target store verifies clean. */
async function assertSameImages(target: Engine, result: LoadResult, list: string[]): Promise<void> {
  for (const name of list) {
    const want = await source.resolveImage(name);
    const got = await target.resolveImage(name);
    assert.equal(got.name, want.name, `${name}: the same name`);
    assert.equal(got.configDescriptor.digest, want.configDescriptor.digest, `${name}: the same image ID`);
    assert.equal(got.descriptor.digest, want.descriptor.digest, `${name}: the same manifest digest`);
    assert.deepEqual(got.manifest.layers.map((l) => l.digest), want.manifest.layers.map((l) => l.digest));
    assert.ok(result.images.some((i) => i.name === want.name && i.id === want.configDescriptor.digest && i.manifest === want.descriptor.digest), `${name} in the load result`);
  }
  const verified = await target.verify();
  assert.deepEqual(verified.problems, []);
}

describe('save → load round trip', () => {
  for (const format of ['docker', 'oci'] as const) {
    test(`${format}: names, manifest and config digests, layers survive; a shared blob is written once`, async (t) => {
      if (MISSING) return t.skip(MISSING);
      const archive = await saved(names, format);
      const entries = readTar(archive);
      const paths = entries.map((e) => e.name);
      assert.ok(paths.includes('oci-layout') && paths.includes('index.json'));
      assert.equal(paths.includes('manifest.json'), format === 'docker');
      const shared = `blobs/sha256/${fixtures.base.layers[0]!.digest.slice(7)}`;
      assert.equal(paths.filter((p) => p === shared).length, 1, 'the layer base and app share is in the archive once');
      if (format === 'docker') {
        const manifest = JSON.parse(entries.find((e) => e.name === 'manifest.json')!.data!.toString());
        assert.equal(manifest.length, names.length);
        assert.deepEqual(manifest[0].RepoTags, [`${registry!.host}/library/base:1`]);
        assert.match(manifest[0].Config, /^blobs\/sha256\/[0-9a-f]{64}$/);
      } else {
        const index = JSON.parse(entries.find((e) => e.name === 'index.json')!.data!.toString());
        assert.equal(index.manifests[1].annotations['org.opencontainers.image.ref.name'], `${registry!.host}/library/app:1`);
      }
      const target = await freshEngine(`archive-${format}`);
      try {
        const result = await target.load(Readable.from([archive]));
        await assertSameImages(target, result, names);
      } finally {
        await target.close();
      }
    });
  }

  test('through a pipe (save and load at once), and a gzipped archive; a multi-platform tag saves the host platform', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const target = await freshEngine('archive-pipe');
    try {
      const pipe = new PassThrough({ highWaterMark: 64 * 1024 });
      const [savedResult, loaded] = await Promise.all([source.save([fixtures.app.reference, fixtures.multi.reference], pipe), target.load(pipe)]);
      assert.equal(savedResult.images.length, 2);
      await assertSameImages(target, loaded, [fixtures.app.reference, fixtures.multi.reference]);

      const gz = await freshEngine('archive-gzip');
      try {
        const file = join(await tmp.make('archive-file'), 'images.tar.gz');
        await writeFile(file, gzipSync(await saved([fixtures.base.reference])));
        const { createReadStream } = await import('node:fs');
        await assertSameImages(gz, await gz.load(createReadStream(file)), [fixtures.base.reference]);
      } finally {
        await gz.close();
      }
    } finally {
      await target.close();
    }
  });

  test('a Docker 25 archive: uncompressed layers named by diffID, an index.json manifest without layers', async (t) => {
    if (MISSING) return t.skip(MISSING);
    // Docker 25.0 writes blobs/sha256/<diffID> layer files and an OCI manifest listing only foreign layers.
    const image = await source.resolveImage(fixtures.app.reference);
    const good = readTar(await saved([fixtures.app.reference]));
    const blob = (d: string) => good.find((e) => e.name === `blobs/sha256/${d.slice(7)}`)!.data!;
    const layers = image.manifest.layers.map((l) => gunzipSync(blob(l.digest)));
    const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    const config = blob(image.configDescriptor.digest);
    const ociManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { ...image.configDescriptor }, layers: [] }));
    const files: TarFile[] = [
      { name: 'blobs/', type: 'dir' },
      { name: 'blobs/sha256/', type: 'dir' },
      ...layers.map((l) => ({ name: `blobs/sha256/${sha(l).slice(7)}`, type: 'file' as const, data: l })),
      { name: `blobs/sha256/${image.configDescriptor.digest.slice(7)}`, type: 'file', data: config },
      { name: `blobs/sha256/${sha(ociManifest).slice(7)}`, type: 'file', data: ociManifest },
      { name: 'index.json', type: 'file', data: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(ociManifest), size: ociManifest.length, annotations: { 'io.containerd.image.name': 'docker.io/library/app:25', 'org.opencontainers.image.ref.name': '25' } }] })) },
      { name: 'manifest.json', type: 'file', data: Buffer.from(JSON.stringify([{ Config: `blobs/sha256/${image.configDescriptor.digest.slice(7)}`, RepoTags: ['app:25'], Layers: layers.map((l) => `blobs/sha256/${sha(l).slice(7)}`) }])) },
      { name: 'oci-layout', type: 'file', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    ];
    const target = await freshEngine('archive-docker25');
    try {
      const result = await target.load(Readable.from([writeTar(files)]));
      assert.equal(result.images.length, 1);
      assert.equal(result.images[0]!.name, 'docker.io/library/app:25');
      assert.equal(result.images[0]!.id, image.configDescriptor.digest);
      const loaded = await target.resolveImage('app:25');
      assert.equal(loaded.descriptor.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', 'a schema2 manifest made for it');
      assert.deepEqual(loaded.manifest.layers.map((l) => [l.digest, l.mediaType]), layers.map((l) => [sha(l), 'application/vnd.docker.image.rootfs.diff.tar']));
      assert.deepEqual((await target.verify()).problems, []);
    } finally {
      await target.close();
    }
  });

  test('docker format: a zstd layer is in manifest.json decompressed (Docker 20.10 reads no zstd), the stored blob beside it', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const image = await source.resolveImage(fixtures.zstd.reference);
    const entries = readTar(await saved([fixtures.zstd.reference]));
    const manifest = JSON.parse(entries.find((e) => e.name === 'manifest.json')!.data!.toString());
    const diffId = image.config.rootfs.diff_ids[0]!;
    assert.deepEqual(manifest[0].Layers, [`blobs/sha256/${diffId.slice(7)}`]);
    const paths = entries.map((e) => e.name);
    assert.ok(paths.includes(`blobs/sha256/${image.manifest.layers[0]!.digest.slice(7)}`), 'the zstd blob the OCI manifest names');
  });

  test('two names of one image: one manifest.json entry with both tags; by ID: no tag', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const id = (await source.resolveImage(fixtures.base.reference)).configDescriptor.digest;
    const archive = await saved([fixtures.base.reference, 'library/base:1', 'base:1', id]);
    const manifest = JSON.parse(readTar(archive).find((e) => e.name === 'manifest.json')!.data!.toString());
    assert.equal(manifest.length, 1);
    assert.deepEqual(manifest[0].RepoTags, [`${registry!.host}/library/base:1`]);
    const byId = JSON.parse(readTar(await saved([id.slice(7, 19)])).find((e) => e.name === 'manifest.json')!.data!.toString());
    assert.deepEqual(byId[0].RepoTags, []);
  });

  test('a stored blob that rotted fails the save (ERR_DIGEST_MISMATCH) and the reader of the pipe sees a failure, not an end', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const copy = await freshEngine('archive-rotten');
    const target = await freshEngine('archive-rotten-target');
    try {
      await copy.load(Readable.from([await saved([fixtures.base.reference])]));
      const layer = (await copy.resolveImage(fixtures.base.reference)).manifest.layers[0]!;
      const path = copy.store.blobPath(layer.digest);
      const { chmod, readFile: read } = await import('node:fs/promises');
      const bytes = await read(path);
      bytes[bytes.length >> 1] ^= 0xff;
      await chmod(path, 0o600);
      await writeFile(path, bytes);
      const pipe = new PassThrough();
      const [save, load] = await Promise.allSettled([copy.save([fixtures.base.reference], pipe), target.load(pipe)]);
      assert.equal(save.status, 'rejected');
      assert.ok(isStratumError((save as PromiseRejectedResult).reason, 'ERR_DIGEST_MISMATCH'), String((save as PromiseRejectedResult).reason));
      assert.equal(load.status, 'rejected', 'the load fails too');
      assert.deepEqual(await target.store.listTags(), []);
    } finally {
      await copy.close();
      await target.close();
    }
  });

  test('an unknown name fails with ERR_NOT_FOUND naming it, before anything is written', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const { out, bytes } = collect();
    await assert.rejects(source.save([fixtures.base.reference, 'no/such:image'], out), (err: unknown) => isStratumError(err, 'ERR_NOT_FOUND') && /no\/such:image/.test((err as Error).message));
    assert.equal(bytes().length, 0);
  });
});

describe('bad archives are refused, the store left as it was', () => {
  let good: TarFile[];
  before(async () => {
    if (MISSING) return;
    good = readTar(await saved([fixtures.app.reference]));
  });

  async function refused(archive: Buffer, code: ErrorCode, pattern: RegExp): Promise<void> {
    const target = await freshEngine('archive-bad');
    try {
      await assert.rejects(target.load(Readable.from([archive])), (err: unknown) => {
        assert.ok(isStratumError(err, code), `${code} expected, got ${(err as { code?: string }).code}: ${(err as Error).message}`);
        assert.match((err as Error).message, pattern);
        return true;
      });
      assert.deepEqual(await target.store.listTags(), [], 'no tag');
      assert.deepEqual((await target.verify()).problems, [], 'verify is clean');
      assert.deepEqual(await import('node:fs/promises').then((fs) => fs.readdir(join(target.root, 'leases'))), [], 'the lease is released');
    } finally {
      await target.close();
    }
  }

  const layerName = () => `blobs/sha256/${fixtures.app.layers[1]!.digest.slice(7)}`;

  test('truncated: the entry it ends in is named', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const whole = writeTar(good);
    const at = whole.indexOf(Buffer.from(`${layerName()}\0`)) + 512 + 100; // inside that layer's data (found by its header, not by manifest.json's mention)
    await refused(whole.subarray(0, at), 'ERR_INVALID_ARCHIVE', new RegExp(`${layerName()}.*truncated`));
    // a truncated gzipped archive too
    await refused(gzipSync(whole).subarray(0, 2000), 'ERR_INVALID_ARCHIVE', /image archive entry/);
  });

  test('a layer whose bytes changed: digest mismatch naming the entry', async (t) => {
    if (MISSING) return t.skip(MISSING);
    // docker format: the file is found through manifest.json and its content checked against the diffID
    const flipped = good.map((e) => (e.name === layerName() ? { ...e, data: Buffer.from(e.data!.map((b, i) => (i === 100 ? b ^ 1 : b))) } : e));
    await refused(writeTar(flipped), 'ERR_INVALID_ARCHIVE', new RegExp(layerName())); // a broken gzip stream cannot be decompressed
    // a valid layer in another's place: the diffID check names it
    const other = good.find((e) => e.name === `blobs/sha256/${fixtures.app.layers[0]!.digest.slice(7)}`)!;
    const swapped = good.map((e) => (e.name === layerName() ? { ...e, data: other.data! } : e));
    await refused(writeTar(swapped), 'ERR_DIGEST_MISMATCH', new RegExp(`${layerName()}.*diff_ids`));
    // OCI format (no manifest.json): the blob's own name is checked
    await refused(writeTar(swapped.filter((e) => e.name !== 'manifest.json')), 'ERR_DIGEST_MISMATCH', new RegExp(layerName()));
    // a config that does not hash to its name
    const config = `blobs/sha256/${fixtures.app.configDigest.slice(7)}`;
    const badConfig = good.map((e) => (e.name === config ? { ...e, data: Buffer.from(`${e.data!.toString()} `) } : e));
    await refused(writeTar(badConfig), 'ERR_DIGEST_MISMATCH', new RegExp(config));
  });

  test('entries that climb out: "..", absolute names, symlinks pointing outside', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const evil = (extra: TarFile) => writeTar([extra, ...good]);
    await refused(evil({ name: '../evil', type: 'file', data: Buffer.from('x') }), 'ERR_UNSAFE_ENTRY', /"\.\.\/evil".*"\.\."/);
    await refused(evil({ name: '/etc/evil', type: 'file', data: Buffer.from('x') }), 'ERR_UNSAFE_ENTRY', /absolute/);
    await refused(evil({ name: 'blobs/up', type: 'symlink', linkname: '../../etc/passwd' }), 'ERR_UNSAFE_ENTRY', /blobs\/up.*outside/);
    await refused(evil({ name: 'abs', type: 'symlink', linkname: '/etc/passwd' }), 'ERR_UNSAFE_ENTRY', /absolute path/);
    // manifest.json naming a path outside the archive
    const manifest = good.find((e) => e.name === 'manifest.json')!;
    const outside = JSON.parse(manifest.data!.toString());
    outside[0].Layers[0] = '../../etc/passwd';
    await refused(writeTar(good.map((e) => (e === manifest ? { ...e, data: Buffer.from(JSON.stringify(outside)) } : e))), 'ERR_UNSAFE_ENTRY', /etc\/passwd/);
  });

  test('no manifest.json nor index.json; a layer missing; not a tar at all', async (t) => {
    if (MISSING) return t.skip(MISSING);
    await refused(writeTar(good.filter((e) => e.name !== 'manifest.json' && e.name !== 'index.json')), 'ERR_INVALID_ARCHIVE', /neither manifest\.json nor index\.json/);
    await refused(writeTar(good.filter((e) => e.name !== layerName())), 'ERR_INVALID_ARCHIVE', new RegExp(`${layerName()}.*no such file`));
    await refused(Buffer.from('not a tar at all, just some text that is long enough to be a header '.repeat(20)), 'ERR_INVALID_ARCHIVE', /image archive/);
  });
});
