import assert from 'node:assert/strict';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { collectGarbage } from '../../src/content/gc.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciStore } from '../../src/content/store.js';
import { makeTempDir, patternBytes, putTinyImage, removeDir, TINY_IMAGE_FILES } from './store-fixtures.js';

async function blobDigests(store: OciStore): Promise<Digest[]> {
  const out: Digest[] = [];
  for await (const b of store.blobs()) out.push(b.digest);
  return out.sort();
}

describe('collectGarbage', () => {
  let base: string;
  let counter = 0;
  before(async () => {
    base = await makeTempDir('gc');
  });
  after(async () => {
    await removeDir(base);
  });

  it('keeps everything reachable from index.json (incl. *.digest annotation roots) and removes the rest', async () => {
    const store = await OciStore.open(join(base, `s${++counter}`));
    const tagged = await putTinyImage(store, TINY_IMAGE_FILES, 'tagged');
    // An image reachable only through a manifest list that an annotation names (how pull keeps the list it resolved).
    const viaList = await putTinyImage(store, [{ path: 'a.txt', type: 'file', content: 'via list' }], 'via-list');
    const list = await store.put(
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ ...viaList.manifest, platform: { os: 'linux', architecture: 'arm64' } }] })),
    );
    // A schema1 original: a JSON blob with fsLayers, kept alive by its annotation; its blobSum must be kept too.
    const schema1Layer = await store.put(Buffer.from('pretend gzip layer of schema1'));
    const schema1 = await store.put(Buffer.from(JSON.stringify({ schemaVersion: 1, fsLayers: [{ blobSum: schema1Layer.digest }], history: [] })));
    await store.setTag('docker.io/library/tagged:1', {
      ...tagged.manifest,
      annotations: { 'dev.stratum.source.digest': schema1.digest, 'dev.stratum.index.digest': list.digest, 'not.a.digest': 'sha256:short' },
    });
    const untagged = await putTinyImage(store, [{ path: 'b.txt', type: 'file', content: 'nobody wants me' }], 'untagged');
    const loose = await store.put(Buffer.from('loose blob'));
    const keep = [tagged.manifest, tagged.config, tagged.layer, viaList.manifest, viaList.config, viaList.layer, list, schema1, schema1Layer].map((d) => d.digest);
    const garbage = [untagged.manifest, untagged.config, untagged.layer, loose].map((d) => ({ digest: d.digest, size: d.size }));
    await sleep(20); // GC spares blobs committed at or after its start

    const dry = await collectGarbage(store, { dryRun: true });
    assert.deepEqual(dry.removed.map((b) => b.digest).sort(), garbage.map((b) => b.digest).sort());
    assert.equal(dry.bytesFreed, garbage.reduce((n, b) => n + b.size, 0));
    assert.equal((await blobDigests(store)).length, keep.length + garbage.length, 'dry run deletes nothing');

    const result = await collectGarbage(store);
    assert.deepEqual(
      result.removed.sort((a, b) => a.digest.localeCompare(b.digest)),
      garbage.sort((a, b) => a.digest.localeCompare(b.digest)),
    );
    assert.equal(result.bytesFreed, garbage.reduce((n, b) => n + b.size, 0));
    assert.deepEqual(result.missing, []);
    assert.deepEqual(await blobDigests(store), [...keep].sort());
    assert.deepEqual((await collectGarbage(store)).removed, [], 'a second run finds nothing');
  });

  it('spares blobs committed after it started and within the grace period; reports missing blobs', async () => {
    const store = await OciStore.open(join(base, `s${++counter}`));
    const old = await store.put(Buffer.from('old unreferenced'));
    await sleep(20);
    // Hold the index lock so GC starts (and takes its start time) but cannot sweep yet; commit a blob meanwhile.
    let fresh: Digest | undefined;
    let gc: ReturnType<typeof collectGarbage> | undefined;
    await store.withIndexLock(async () => {
      gc = collectGarbage(store);
      await sleep(30);
      fresh = (await store.put(Buffer.from('committed while GC waited'))).digest;
      return { result: undefined };
    });
    const result = await gc!;
    assert.deepEqual(result.removed.map((b) => b.digest), [old.digest]);
    assert.ok(await store.has(fresh!));

    await sleep(20);
    const graced = await collectGarbage(store, { gracePeriodMs: 60_000 });
    assert.deepEqual(graced.removed, []);

    const img = await putTinyImage(store);
    await store.setTag('x/y:z', img.manifest);
    await store.deleteBlob(img.layer.digest);
    const broken = await collectGarbage(store, { dryRun: true });
    assert.deepEqual(broken.missing, [img.layer.digest]);
  });

  it('removes stale partial ingests, keeps fresh and locked ones', async () => {
    const store = await OciStore.open(join(base, `s${++counter}`));
    const partial = async (seed: string): Promise<Digest> => {
      const data = patternBytes(seed, 10_000);
      const w = await store.ingest(digestOf(data));
      await pipeline(Readable.from([data.subarray(0, 4000)]), w!.stream());
      await w!.close();
      return digestOf(data);
    };
    const stale = await partial('stale');
    const fresh = await partial('fresh');
    const lockedData = patternBytes('locked', 10_000);
    const lockedWriter = await store.ingest(digestOf(lockedData));
    await pipeline(Readable.from([lockedData.subarray(0, 4000)]), lockedWriter!.stream());
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    for (const d of [stale, digestOf(lockedData)]) {
      const dir = join(store.root, 'ingest', `sha256-${d.slice(7)}`);
      await utimes(join(dir, 'data'), twoHoursAgo, twoHoursAgo);
      await utimes(join(dir, 'state'), twoHoursAgo, twoHoursAgo);
    }

    const dry = await collectGarbage(store, { dryRun: true });
    assert.deepEqual(dry.removedIngests, [{ name: `sha256-${stale.slice(7)}`, digest: stale, bytes: 4000 }]);
    assert.equal((await readdir(join(store.root, 'ingest'))).length, 3);

    const result = await collectGarbage(store);
    assert.deepEqual(result.removedIngests, [{ name: `sha256-${stale.slice(7)}`, digest: stale, bytes: 4000 }]);
    assert.equal(result.bytesFreed, 4000);
    const left = (await readdir(join(store.root, 'ingest'))).sort();
    assert.deepEqual(left, [`sha256-${digestOf(lockedData).slice(7)}`, `sha256-${fresh.slice(7)}`].sort());
    const resumed = await store.ingest(fresh);
    assert.equal(resumed?.offset, 4000);
    await resumed!.abort();

    // The locked ingest is still usable after GC passed it by.
    await pipeline(Readable.from([lockedData.subarray(4000)]), lockedWriter!.stream());
    assert.deepEqual(await lockedWriter!.commit(), { digest: digestOf(lockedData), size: lockedData.length });

    const short = await collectGarbage(store, { ingestMaxAgeMs: 0 });
    assert.deepEqual(short.removedIngests, [], 'nothing left to reclaim');
  });
});
