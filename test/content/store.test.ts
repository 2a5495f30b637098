import assert from 'node:assert/strict';
import { hasTool } from '../helpers/tools.js';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { isStratumError, StoreError } from '../../src/errors.js';
import { digestOf, parseDigest, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { defaultStoreRoot, OciStore } from '../../src/content/store.js';
import type { Descriptor } from '../../src/oci/types.js';
import {
  makeTempDir,
  patternBytes,
  putTinyImage,
  removeDir,
  startChild,
  TINY_IMAGE_FILES,
  treeSnapshot,
  type Child,
} from './store-fixtures.js';

const run = promisify(execFile);


function chunksOf(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += size) out.push(data.subarray(off, off + size));
  return out;
}

async function hashOfStream(stream: Readable): Promise<Digest> {
  const h = createHash('sha256');
  for await (const chunk of stream as AsyncIterable<Buffer>) h.update(chunk);
  return parseDigest(`sha256:${h.digest('hex')}`);
}

describe('OciStore', () => {
  let base: string;
  const children: Child[] = [];
  let counter = 0;
  const freshRoot = (): string => join(base, `store-${++counter}`);

  before(async () => {
    base = await makeTempDir('store');
  });
  after(async () => {
    for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exit));
    await removeDir(base);
  });

  describe('layout', () => {
    it('creates a valid OCI image layout when the directory is missing', async () => {
      const root = join(freshRoot(), 'nested', 'deeper');
      const store = await OciStore.open(root);
      assert.equal(store.root, root);
      assert.deepEqual(JSON.parse(await readFile(join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
      const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
      assert.deepEqual(index, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
      assert.ok((await stat(join(root, 'blobs', 'sha256'))).isDirectory());
      assert.deepEqual(await store.listTags(), []);
    });

    it('reopens an existing layout without touching its contents', async () => {
      const root = freshRoot();
      const store = await OciStore.open(root);
      const img = await putTinyImage(store);
      await store.setTag('docker.io/library/tiny:1', img.manifest);
      const before = await treeSnapshot(root);
      const again = await OciStore.open(root);
      assert.deepEqual(await treeSnapshot(root), before);
      assert.equal((await again.getTag('docker.io/library/tiny:1'))?.descriptor.digest, img.manifest.digest);
    });

    it('refuses foreign directories and layouts with a StoreError naming the problem', async () => {
      const foreign = freshRoot();
      await mkdir(foreign);
      await writeFile(join(foreign, 'notes.txt'), 'mine');
      await assert.rejects(OciStore.open(foreign), (err: unknown) => {
        assert.ok(isStratumError(err, 'ERR_STORE'));
        assert.match((err as Error).message, /not an OCI image layout.*notes\.txt/);
        return true;
      });
      assert.deepEqual(await readdir(foreign), ['notes.txt'], 'nothing was written into the foreign directory');

      const future = freshRoot();
      await mkdir(future);
      await writeFile(join(future, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '2.0.0' }));
      await assert.rejects(OciStore.open(future), (err: unknown) => {
        assert.ok(isStratumError(err, 'ERR_STORE'));
        assert.match((err as Error).message, /unsupported imageLayoutVersion "2\.0\.0"/);
        return true;
      });

      const garbage = freshRoot();
      await mkdir(garbage);
      await writeFile(join(garbage, 'oci-layout'), '{nope');
      await assert.rejects(OciStore.open(garbage), /oci-layout is not valid JSON/);

      const badIndex = freshRoot();
      await OciStore.open(badIndex);
      await writeFile(join(badIndex, 'index.json'), JSON.stringify({ schemaVersion: 1, manifests: [] }));
      await assert.rejects(OciStore.open(badIndex), /index\.json: schemaVersion must be 2/);

      const file = join(base, 'a-file');
      await writeFile(file, '');
      await assert.rejects(OciStore.open(file), /is not a directory/);
      // A store that cannot be reached or created: a StoreError naming it, not a raw errno.
      const refused = (root: string, why: RegExp) =>
        assert.rejects(OciStore.open(root), (err: Error) => {
          assert.equal((err as Error & { code?: string }).code, 'ERR_STORE');
          assert.match(err.message, why);
          return true;
        });
      await refused(join(file, 'store'), /cannot use store .*a-file\/store: ENOTDIR/);
      // Where mkdir answers ENOENT under a parent that exists (procfs), Node's recursive mkdir would spin forever.
      await refused('/proc/stratum-no-such-dir/store', /cannot create store \/proc\/stratum-no-such-dir\/store: ENOENT/);
      if (process.getuid?.() === 0) {
        // Missing, and not creatable: on a read-only filesystem.
        const ro = join(base, 'read-only');
        await mkdir(ro);
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
        try {
          await refused(join(ro, 'store'), /cannot create store .*read-only\/store: E[A-Z]+/);
        } finally {
          execFileSync('umount', [ro]);
        }
      }
    });

    it('defaultStoreRoot follows STRATUM_STORE, then XDG_DATA_HOME, then ~/.local/share', () => {
      assert.equal(defaultStoreRoot({ STRATUM_STORE: '/srv/s', XDG_DATA_HOME: '/x', HOME: '/h' }), '/srv/s');
      assert.equal(defaultStoreRoot({ XDG_DATA_HOME: '/x/data', HOME: '/h' }), '/x/data/stratum');
      assert.equal(defaultStoreRoot({ XDG_DATA_HOME: 'relative', HOME: '/h' }), '/h/.local/share/stratum');
      assert.equal(defaultStoreRoot({ STRATUM_STORE: '', HOME: '/home/u' }), '/home/u/.local/share/stratum');
    });
  });

  describe('blobs and ingest', () => {
    let store: OciStore;
    before(async () => {
      store = await OciStore.open(freshRoot());
    });

    it('ingests a streamed blob, verifies it, and never fetches it again', async () => {
      const data = patternBytes('ingest', 3 * 1024 * 1024 + 17);
      const digest = digestOf(data);
      assert.equal(await store.has(digest), false);
      const writer = await store.ingest(digest, { expectedSize: data.length });
      assert.ok(writer);
      assert.equal(writer.offset, 0);
      await pipeline(Readable.from(chunksOf(data, 64 * 1024)), writer.stream());
      assert.equal(writer.written, data.length);
      const info = await writer.commit();
      assert.deepEqual(info, { digest, size: data.length });
      assert.deepEqual(await store.info(digest), { digest, size: data.length });
      assert.equal(await hashOfStream(store.open(digest)), digest);
      assert.equal(store.blobPath(digest), join(store.root, 'blobs', 'sha256', digest.slice(7)));
      assert.deepEqual(await readdir(join(store.root, 'ingest')), [], 'the ingest directory is cleaned up');
      assert.equal(await store.ingest(digest), null);
    });

    it('a full disk: a StoreError (ERR_NO_SPACE) naming the blob and the cause, nothing committed, and the commit refused', async (t) => {
      if (process.getuid?.() !== 0) return t.skip('LOUD SKIP: needs root to mount a small tmpfs');
      const mnt = join(base, 'full-disk');
      await mkdir(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
      try {
        const small = await OciStore.open(join(mnt, 'store'));
        const data = patternBytes('too-big', 1024 * 1024);
        const digest = digestOf(data);
        const writer = (await small.ingest(digest, { expectedSize: data.length }))!;
        await assert.rejects(pipeline(Readable.from(chunksOf(data, 64 * 1024)), writer.stream()), (err: Error) => {
          assert.ok(err instanceof StoreError);
          assert.equal((err as Error & { code?: string }).code, 'ERR_NO_SPACE');
          assert.match(err.message, new RegExp(`cannot write blob ${digest}: no space left on the filesystem of .*/ingest/sha256-[0-9a-f]+ \\(".*/data": .*: No space left on device\\)`));
          return true;
        });
        await assert.rejects(writer.commit(), /cannot write blob/);
        await writer.close();
        assert.equal(await small.has(digest), false);
        assert.deepEqual(await readdir(join(small.root, 'blobs', 'sha256')), []);
      } finally {
        execFileSync('umount', [mnt]);
      }
    });

    it('refuses a wrong digest: DigestMismatchError naming the blob, partial deleted, store unchanged', async () => {
      const data = patternBytes('wrong-digest', 200_000);
      const claimed = digestOf('something else entirely');
      const before = await treeSnapshot(store.root);
      const writer = await store.ingest(claimed);
      assert.ok(writer);
      await pipeline(Readable.from(chunksOf(data, 10_000)), writer.stream());
      await assert.rejects(writer.commit(), (err: unknown) => {
        assert.ok(isStratumError(err, 'ERR_DIGEST_MISMATCH'));
        assert.match((err as Error).message, new RegExp(`blob ${claimed}: digest mismatch: expected ${claimed}, got ${digestOf(data)}`));
        return true;
      });
      assert.equal(await store.has(claimed), false);
      assert.equal(await store.has(digestOf(data)), false);
      assert.deepEqual(await treeSnapshot(store.root), before);
      const retry = await store.ingest(claimed);
      assert.equal(retry?.offset, 0, 'the bad partial is gone');
      await retry?.abort();
    });

    it('refuses a wrong size (descriptor size or commit argument) with SizeMismatchError', async () => {
      const data = patternBytes('wrong-size', 5000);
      const digest = digestOf(data);
      const before = await treeSnapshot(store.root);

      const w1 = await store.ingest(digest, { expectedSize: 4999 });
      assert.ok(w1);
      await pipeline(Readable.from([data]), w1.stream());
      await assert.rejects(w1.commit(), (err: unknown) => {
        assert.ok(isStratumError(err, 'ERR_SIZE_MISMATCH'));
        assert.match((err as Error).message, new RegExp(`blob ${digest}: size mismatch: expected 4999 bytes, got 5000`));
        return true;
      });
      assert.deepEqual(await treeSnapshot(store.root), before);

      const w2 = await store.ingest(digest);
      assert.ok(w2);
      await pipeline(Readable.from([data]), w2.stream());
      await assert.rejects(w2.commit(6000), /size mismatch: expected 6000 bytes, got 5000/);
      assert.equal(await store.has(digest), false);
      assert.deepEqual(await treeSnapshot(store.root), before);
    });

    it('resumes after close(): offset is what was written, the final digest is right', async () => {
      const data = patternBytes('resume', 1_000_000);
      const digest = digestOf(data);
      const first = await store.ingest(digest, { expectedSize: data.length });
      assert.ok(first);
      await pipeline(Readable.from(chunksOf(data.subarray(0, 400_000), 30_000)), first.stream());
      await first.close();
      await first.close(); // idempotent
      assert.equal(await store.has(digest), false);

      const second = await store.ingest(digest, { expectedSize: data.length });
      assert.ok(second);
      assert.equal(second.offset, 400_000);
      await pipeline(Readable.from(chunksOf(data.subarray(second.offset), 30_000)), second.stream());
      assert.deepEqual(await second.commit(), { digest, size: data.length });
      assert.equal(await hashOfStream(store.open(digest)), digest);
    });

    it('reset() drops bytes from a server that ignored Range; a partial longer than expectedSize is dropped on open', async () => {
      const data = patternBytes('reset', 50_000);
      const digest = digestOf(data);
      const w = await store.ingest(digest);
      assert.ok(w);
      await pipeline(Readable.from([patternBytes('junk', 70_000)]), w.stream());
      await w.close();
      const tooLong = await store.ingest(digest, { expectedSize: data.length });
      assert.equal(tooLong?.offset, 0);
      await pipeline(Readable.from([data.subarray(0, 10)]), tooLong!.stream());
      await tooLong!.reset();
      assert.equal(tooLong!.offset, 0);
      await pipeline(Readable.from(chunksOf(data, 7000)), tooLong!.stream());
      assert.deepEqual(await tooLong!.commit(), { digest, size: data.length });
    });

    it('a stream honours backpressure (write() returns false past its buffer) and a second stream continues at written', async () => {
      const data = patternBytes('backpressure', 3 << 20);
      const digest = digestOf(data);
      const w = await store.ingest(digest);
      assert.ok(w);
      const s = w.stream();
      assert.equal(s.write(data.subarray(0, 2 << 20)), false, 'a 2 MiB write fills the 1 MiB buffer');
      await new Promise((r) => s.once('drain', r));
      s.destroy(); // a dropped connection
      await new Promise((r) => s.once('close', r));
      assert.equal(w.written, 2 << 20);
      await pipeline(Readable.from([data.subarray(w.written!)]), w.stream());
      assert.deepEqual(await w.commit(), { digest, size: data.length });
    });

    it('read() returns small blobs whole, refuses big ones and missing ones; digests are validated', async () => {
      const small = Buffer.from('{"small":true}');
      const info = await store.put(small);
      assert.deepEqual(await store.read(info.digest), small);
      await assert.rejects(store.read(info.digest, 5), (err: unknown) => isStratumError(err, 'ERR_STORE') && /over the 5-byte limit/.test((err as Error).message));
      const missing = digestOf('not stored');
      await assert.rejects(store.read(missing), (err: unknown) => isStratumError(err, 'ERR_NOT_FOUND'));
      assert.throws(() => store.open(missing), (err: unknown) => isStratumError(err, 'ERR_NOT_FOUND'));
      assert.throws(() => store.blobPath('sha256:../../../etc/passwd'), (err: unknown) => isStratumError(err, 'ERR_INVALID_DIGEST'));
      await assert.rejects(store.ingest('sha256:ABC' as Digest), (err: unknown) => isStratumError(err, 'ERR_INVALID_DIGEST'));
    });

    it('put() verifies an expected digest and is idempotent', async () => {
      const data = Buffer.from('config bytes');
      await assert.rejects(store.put(data, digestOf('other')), (err: unknown) => isStratumError(err, 'ERR_DIGEST_MISMATCH'));
      assert.equal(await store.has(digestOf('other')), false);
      const a = await store.put(data, digestOf(data));
      const b = await store.put(data);
      assert.deepEqual(a, b);
      assert.deepEqual(a, { digest: digestOf(data), size: data.length });
    });

    it('diskUsage() counts blobs and partial ingests by stat', async () => {
      const root = freshRoot();
      const s = await OciStore.open(root);
      await s.put(Buffer.alloc(1000, 1));
      await s.put(Buffer.alloc(2000, 2));
      const partial = patternBytes('df-partial', 3000);
      const w = await s.ingest(digestOf(partial));
      await pipeline(Readable.from([partial.subarray(0, 1234)]), w!.stream());
      await w!.close();
      assert.deepEqual(await s.diskUsage(), { blobs: 2, bytes: 3000, ingests: 1, ingestBytes: 1234 });
    });
  });

  describe('across processes', () => {
    it('resumes an ingest whose process was SIGKILLed mid-write', async () => {
      const root = freshRoot();
      await OciStore.open(root);
      const size = 2_000_000;
      const data = patternBytes('crash', size);
      const digest = digestOf(data);
      const child = startChild(['ingest-hang', root, 'crash', String(size), '750000']);
      children.push(child);
      assert.deepEqual(await child.firstReport, { written: 750_000 });
      child.process.kill('SIGKILL');
      const exit = await child.exit;
      assert.equal(exit.signal, 'SIGKILL');

      const store = await OciStore.open(root);
      const writer = await store.ingest(digest, { expectedSize: size, lockTimeoutMs: 5000 });
      assert.ok(writer, 'the dead process lock is broken');
      assert.equal(writer.offset, 750_000);
      await pipeline(Readable.from(chunksOf(data.subarray(writer.offset), 100_000)), writer.stream());
      assert.deepEqual(await writer.commit(), { digest, size });
      assert.equal(await hashOfStream(store.open(digest)), digest);
    });

    it('two processes ingesting the same blob into a new store: one writes it, both succeed', async () => {
      const root = freshRoot(); // both children create the layout at once, too
      const markers = join(base, `markers-${counter}`);
      await mkdir(markers);
      const size = 600_000;
      const digest = digestOf(patternBytes('shared', size));
      const a = startChild(['ingest', root, 'shared', String(size), markers]);
      const b = startChild(['ingest', root, 'shared', String(size), markers]);
      children.push(a, b);
      const [ea, eb] = await Promise.all([a.exit, b.exit]);
      assert.equal(ea.code, 0, ea.stderr);
      assert.equal(eb.code, 0, eb.stderr);
      const wrote = (await readdir(markers)).length;
      assert.equal(wrote, 1, 'exactly one process wrote the blob');
      const reports = [ea.reports[0], eb.reports[0]] as { wrote: boolean; info: unknown }[];
      assert.deepEqual(reports.map((r) => r.wrote).sort(), [false, true]);
      for (const r of reports) assert.deepEqual(r.info, { digest, size });
      const store = await OciStore.open(root);
      assert.equal(await hashOfStream(store.open(digest)), digest);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    });

    it('concurrent setTag from two processes never loses an entry', async () => {
      const root = freshRoot();
      const store = await OciStore.open(root);
      const img = await putTinyImage(store);
      const json = JSON.stringify(img.manifest);
      const a = startChild(['settag', root, 'example.com/a', '30', json]);
      const b = startChild(['settag', root, 'example.com/b', '30', json]);
      children.push(a, b);
      const [ea, eb] = await Promise.all([a.exit, b.exit]);
      assert.equal(ea.code, 0, ea.stderr);
      assert.equal(eb.code, 0, eb.stderr);
      const names = (await store.listTags()).map((t) => t.name).sort();
      const want = [...Array(30).keys()].flatMap((i) => [`example.com/a:${i}`, `example.com/b:${i}`]).sort();
      assert.deepEqual(names, want);
      assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('index.json')), ['index.json'], 'no temp or lock files left');
    });
  });

  describe('tags', () => {
    it('set, get, replace, remove; other entries and unknown annotations are kept', async () => {
      const root = freshRoot();
      const store = await OciStore.open(root);
      const one = await putTinyImage(store, TINY_IMAGE_FILES, 'one');
      const two = await putTinyImage(store, TINY_IMAGE_FILES, 'two');
      // An entry another tool wrote: no ref.name, an unknown field and annotation.
      const foreignEntry = { ...one.config, mediaType: 'application/vnd.example+json', annotations: { 'com.example.keep': 'yes' } };
      await writeFile(
        join(root, 'index.json'),
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [foreignEntry], annotations: { 'com.example.top': 'kept' } }),
      );

      const name = 'docker.io/library/ubuntu:15.04';
      const withSource: Descriptor = { ...one.manifest, annotations: { 'dev.stratum.source.digest': one.layer.digest } };
      await store.setTag(name, withSource);
      await store.setTag('localhost:5000/app@' + two.manifest.digest, two.manifest);
      assert.deepEqual(await store.getTag(name), { name, descriptor: withSource });

      const raw = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
      assert.deepEqual(raw.annotations, { 'com.example.top': 'kept' });
      assert.deepEqual(raw.manifests[0], foreignEntry);
      assert.deepEqual(raw.manifests[1].annotations, {
        'dev.stratum.source.digest': one.layer.digest,
        'org.opencontainers.image.ref.name': name,
        'io.containerd.image.name': name,
      });

      await store.setTag(name, two.manifest); // replace in place
      const tags = await store.listTags();
      assert.deepEqual(
        tags.map((t) => [t.name, t.descriptor.digest]),
        [
          [name, two.manifest.digest],
          ['localhost:5000/app@' + two.manifest.digest, two.manifest.digest],
        ],
      );
      assert.equal((await store.getTag(name))?.descriptor.annotations, undefined);

      assert.equal(await store.removeTag(name), true);
      assert.equal(await store.removeTag(name), false);
      assert.equal(await store.getTag(name), undefined);
      const after = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
      assert.deepEqual(after.manifests[0], foreignEntry);
      assert.equal(after.manifests.length, 2);
    });

    it('refuses to tag a manifest that is not in the store, or a malformed descriptor', async () => {
      const store = await OciStore.open(freshRoot());
      const missing: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf('nope'), size: 4 };
      await assert.rejects(store.setTag('x:1', missing), (err: unknown) => isStratumError(err, 'ERR_NOT_FOUND') && /x:1/.test((err as Error).message));
      const info = await store.put(Buffer.from('{}'));
      await assert.rejects(store.setTag('', { mediaType: MediaType.OciManifest, ...info }), /non-empty/);
      await assert.rejects(store.setTag('x:1', { mediaType: MediaType.OciManifest, digest: info.digest, size: -1 }), /size -1/);
      await assert.rejects(store.setTag('x:1', { mediaType: MediaType.OciManifest, digest: 'sha256:zz' as Digest, size: 2 }), (err: unknown) =>
        isStratumError(err, 'ERR_INVALID_DIGEST'),
      );
      assert.deepEqual(await store.listTags(), []);
    });
  });

  describe('read by skopeo and umoci', () => {
    it('skopeo inspect and umoci unpack read an image tagged with its fully qualified reference', async (t) => {
      if (!(await hasTool('skopeo'))) return t.skip('skopeo is not installed');
      if (!(await hasTool('umoci'))) return t.skip('umoci is not installed');
      const root = freshRoot();
      const store = await OciStore.open(root);
      const img = await putTinyImage(store);
      const name = 'docker.io/library/tiny:1.0';
      await store.setTag(name, img.manifest);
      await store.setTag('localhost:5000/other/tiny:2', img.manifest);
      // A partial download lying around must not bother either tool.
      const partial = await store.ingest(digestOf('partial'));
      await pipeline(Readable.from([Buffer.from('part')]), partial!.stream());
      await partial!.close();

      const { stdout } = await run('skopeo', ['inspect', `oci:${root}:${name}`]);
      const inspected = JSON.parse(stdout) as { Digest: string; Layers: string[]; Architecture: string; Labels: Record<string, string> };
      assert.equal(inspected.Digest, img.manifest.digest);
      assert.deepEqual(inspected.Layers, [img.layer.digest]);
      assert.equal(inspected.Architecture, 'amd64');
      assert.deepEqual(inspected.Labels, { 'dev.stratum.test': 'tiny' });
      const raw = await run('skopeo', ['inspect', '--raw', `oci:${root}:localhost:5000/other/tiny:2`]);
      assert.equal(digestOf(raw.stdout), img.manifest.digest);

      const bundle = join(base, `bundle-${counter}`);
      await run('umoci', ['unpack', '--rootless', '--image', `${root}:${name}`, bundle]);
      const rootfs = join(bundle, 'rootfs');
      for (const f of TINY_IMAGE_FILES) {
        const p = join(rootfs, f.path);
        if (f.type === 'file') assert.equal(await readFile(p, 'utf8'), f.content, f.path);
        else if (f.type === 'directory') assert.ok((await stat(p)).isDirectory(), f.path);
        else assert.equal(await readlink(p), f.linkname, f.path);
      }
      const entries = (await treeSnapshot(rootfs)).map((e) => e.split(' ')[0]);
      assert.deepEqual(entries, ['etc/', 'etc/greeting', 'etc/hello.txt', 'usr/', 'usr/share/', 'usr/share/data.bin']);
      await access(join(root, 'ingest'));
    });
  });

  describe('commit hooks', () => {
    it('onVerified sees the verified data before it is in blobs/, and a reader opened then reads it all after the rename', async () => {
      const store = await OciStore.open(freshRoot());
      const data = Buffer.from('verified before it is committed\n'.repeat(1000));
      const digest = digestOf(data);
      const writer = (await store.ingest(digest, { expectedSize: data.length }))!;
      await pipeline(Readable.from([data]), writer.stream());
      let seen: { inBlobs: boolean; fd: number } | undefined;
      const { openSync, readFileSync, closeSync, existsSync } = await import('node:fs');
      const info = await writer.commit(data.length, {
        onVerified: (path) => {
          seen = { inBlobs: existsSync(store.blobPath(digest)), fd: openSync(path, 'r') };
        },
      });
      assert.equal(info.digest, digest);
      assert.ok(seen, 'onVerified was called');
      assert.equal(seen.inBlobs, false, 'called before the rename into blobs/');
      assert.deepEqual(readFileSync(seen.fd), data);
      closeSync(seen.fd);
      assert.equal(await store.has(digest), true);
    });

    it('onVerified is not called for content that fails verification', async () => {
      const store = await OciStore.open(freshRoot());
      const digest = digestOf('the right content');
      const writer = (await store.ingest(digest))!;
      await pipeline(Readable.from([Buffer.from('the wrong content')]), writer.stream());
      let called = false;
      await assert.rejects(writer.commit(undefined, { onVerified: () => (called = true) }), (e: unknown) => isStratumError(e, 'ERR_DIGEST_MISMATCH'));
      assert.equal(called, false);
    });
  });
});
