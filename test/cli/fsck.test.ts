/**
 * `stratum fsck [--repair] [--json]` on real stores: a flipped byte or a truncation in a stored
 * blob, a missing blob, snapshot metadata against the disk, temporaries of dead processes, lost
 * mounts. And pull / push do not trust a blob whose size on disk is wrong. Real registry behind
 * the fault proxy (to see which blobs a pull fetches), real overlay mounts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { chainIds, digestHex, type Digest } from '../../src/oci/digest.js';
import { openSnapshotter } from '../../src/snapshotter/index.js';
import { OWNER_LABEL } from '../../src/snapshotter/temporaries.js';
import { MetadataStore } from '../../src/snapshotter/metadata.js';
import { buildLayer, random, type BuiltLayer } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { pushOciLayout } from '../fixtures/push.js';
import { BLOB_PATH, FaultProxy } from '../helpers/fault-proxy.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, needsRootAndRegistry, runCli, type CliResult, type JsonEvent } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const tmpDirs = new TempDirs();

const MISSING = needsRootAndRegistry();

let registry: TestRegistry | undefined;
let proxy: FaultProxy | undefined;
let env: NodeJS.ProcessEnv = {};
let reference = '';
let layers: BuiltLayer[] = [];
let diffIds: Digest[] = [];

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  proxy = await FaultProxy.start(registry.url);
  const home = await tmpDirs.make('fsck-home');
  env = isolatedCliEnv(home);
  const work = await tmpDirs.make('fsck-image');
  layers = await Promise.all(
    [0, 1].map((i) => buildLayer([{ type: 'file', path: `f${i}.bin`, content: random(200_000, `fsck-${i}`) }], { compression: 'gzip', dir: join(work, 'layers') })),
  );
  const layout = await writeOciLayout(join(work, 'layout'), [{ tag: '1', layers }]);
  await pushOciLayout(layout.dir, '1', registry, 'fsck/img:1', 'oci');
  reference = `${proxy.host}/fsck/img:1`;
  diffIds = layout.manifests[0]!.config.rootfs.diff_ids;
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await tmpDirs.cleanup();
});

const cli = (args: string[]): Promise<CliResult> => runCli(args, env);
const blobPath = (store: string, digest: Digest) => join(store, 'blobs', 'sha256', digestHex(digest));
const fetched = (digest: Digest) => proxy!.requests('GET', BLOB_PATH).filter((r) => r.path.endsWith(digest)).length;
const lines = (r: CliResult) => r.stdout.trimEnd().split('\n');
const json = (r: CliResult) => lines(r).map((l) => JSON.parse(l) as JsonEvent & { kind?: string; subject?: string; repaired?: string });

async function pulledStore(prefix: string): Promise<string> {
  const store = await tmpDirs.make(prefix);
  const r = await cli(['pull', '--store', store, '--snapshotter', 'overlay', reference]);
  assert.equal(r.code, 0, r.stderr);
  return store;
}

describe('stratum fsck: blobs', () => {
  test('a flipped byte in a layer: reported (exit 1), --repair removes it, the next pull fetches it again, then fsck is clean', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await pulledStore('fsck-flip');
    const clean = await cli(['fsck', '--store', store]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /^4 blobs \(.*\) checked: 0 problems, 0 repaired, 0 remaining$/m);

    const layer = layers[1]!.digest;
    const bytes = await readFile(blobPath(store, layer));
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await writeFile(blobPath(store, layer), bytes);

    const found = await cli(['fsck', '--store', store]);
    assert.equal(found.code, 1, found.stdout);
    assert.deepEqual(lines(found).slice(0, -1), [`blob-corrupt ${layer}: its content (${bytes.length} bytes) hashes to ${(await sha256(bytes))}`]);
    const asJson = await cli(['fsck', '--store', store, '--json']);
    assert.equal(asJson.code, 1);
    const objects = json(asJson);
    assert.deepEqual(objects.slice(0, -1).map((o) => [o.kind, o.subject]), [['blob-corrupt', layer]]);
    assert.deepEqual(objects.at(-1), { type: 'summary', blobs: 4, bytes: objects.at(-1)!['bytes'], problems: 1, repaired: 0, remaining: 1 });

    const repair = await cli(['fsck', '--store', store, '--repair']);
    assert.equal(repair.code, 1, 'the image still lacks the layer until it is pulled again');
    assert.match(repair.stdout, new RegExp(`^blob-corrupt ${layer}: .* \\(repaired: removed; the next pull fetches it again\\)$`, 'm'));
    assert.match(repair.stdout, new RegExp(`^blob-missing ${layer}: manifest sha256:[0-9a-f]{64} \\(tag ${proxy!.host}/fsck/img:1\\) points to it, but it is not in the store`, 'm'));
    assert.equal(existsSync(blobPath(store, layer)), false);

    proxy!.clearLog();
    const pull = await cli(['pull', '--store', store, '--snapshotter', 'overlay', reference]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(fetched(layer), 1, 'the removed layer was fetched again');
    assert.equal(fetched(layers[0]!.digest), 0);
    const after = await cli(['fsck', '--store', store]);
    assert.equal(after.code, 0, after.stdout);
    assert.deepEqual(await readFile(blobPath(store, layer)), await readFile(layers[1]!.path));
  });

  test('a truncated layer: pull fetches it again and replaces it; fsck is clean', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await pulledStore('fsck-truncate');
    const layer = layers[0]!.digest;
    await truncate(blobPath(store, layer), 1000);
    const found = await cli(['fsck', '--store', store]);
    assert.equal(found.code, 1);
    assert.match(found.stdout, new RegExp(`^blob-corrupt ${layer}: its content \\(1000 bytes\\)`, 'm'));
    assert.match(found.stdout, new RegExp(`^blob-size ${layer}: manifest .* gives ${layers[0]!.size} bytes, the stored blob has 1000$`, 'm'));

    proxy!.clearLog();
    const pull = await cli(['pull', '--store', store, '--snapshotter', 'overlay', reference]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(fetched(layer), 1, 'the truncated layer was fetched again');
    assert.equal((await stat(blobPath(store, layer))).size, layers[0]!.size);
    assert.equal((await cli(['fsck', '--store', store])).code, 0);
  });

  test('push refuses a truncated blob, naming it, before uploading anything', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await pulledStore('fsck-push');
    const layer = layers[1]!.digest;
    await truncate(blobPath(store, layer), 10);
    proxy!.clearLog();
    const r = await cli(['push', '--store', store, `${proxy!.host}/fsck/img:1`, `${proxy!.host}/fsck/pushed:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`stored layer ${layer} .*size mismatch: expected ${layers[1]!.size} bytes, got 10 \\(ERR_SIZE_MISMATCH\\)`));
    assert.deepEqual(proxy!.log.filter((e) => e.method !== 'GET' && e.method !== 'HEAD'), [], 'nothing uploaded');
  });
});

describe('stratum fsck: snapshots', () => {
  test('orphan data, a dead process’s temporary snapshot and mount, a lost mount: reported, then repaired; missing data is reported', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await pulledStore('fsck-snap');
    const root = join(store, 'snapshots', 'overlay');
    const top = chainIds(diffIds).at(-1)!;
    // A view whose mount was taken down behind stratum's back.
    const dir = await tmpDirs.make('fsck-mnt');
    assert.equal((await cli(['mount', '--store', store, '--snapshotter', 'overlay', reference, dir])).code, 0);
    await exec('umount', [dir]);
    // A temporary snapshot and a mount record of a process that is gone (a pid that cannot exist).
    const dead = JSON.stringify({ pid: 999999999, hostname: (await import('node:os')).hostname(), acquiredAt: new Date().toISOString(), nonce: 'dead' });
    const s = await openSnapshotter('overlay', root, { reclaim: false });
    await s.prepare('extract-999999999-0123456789ab-x', undefined, { labels: { [OWNER_LABEL]: dead } });
    await s.close();
    await mkdir(join(root, 'mounts', '999999999-dead'), { recursive: true });
    await writeFile(join(root, 'mounts', '999999999-dead.json'), dead);
    // Data no record points to.
    await mkdir(join(root, 'snapshots', '4242', 'fs'), { recursive: true });

    const found = await cli(['fsck', '--store', store, '--json']);
    assert.equal(found.code, 1, found.stderr);
    const kinds = json(found).slice(0, -1).map((o) => `${o.kind} ${o.subject}`).sort();
    const view = kinds.find((k) => k.startsWith('mount-lost '))?.split(' ')[1];
    assert.ok(view?.startsWith('view-'), kinds.join('\n'));
    assert.deepEqual(kinds, [
      `mount-lost ${view}`,
      `snapshot-orphan ${join(root, 'snapshots', '4242')}`,
      `temporary ${join(root, 'mounts', '999999999-dead')}`,
      'temporary extract-999999999-0123456789ab-x',
    ]);

    const repair = await cli(['fsck', '--store', store, '--repair', '--json']);
    assert.equal(repair.code, 0, repair.stdout);
    assert.ok(json(repair).slice(0, -1).every((o) => typeof o.repaired === 'string'));
    const keys = Object.keys((await new MetadataStore(root).read()).snapshots).sort();
    assert.deepEqual(keys, chainIds(diffIds).sort(), 'only the image’s committed chain is left');
    assert.equal(existsSync(join(root, 'snapshots', '4242')), false);
    assert.equal(existsSync(join(root, 'mounts', '999999999-dead.json')), false);
    const clean = await cli(['fsck', '--store', store]);
    assert.equal(clean.code, 0, clean.stdout);

    // A record whose data is gone is reported and left for the user (fsck cannot make it up).
    const id = (await new MetadataStore(root).read()).snapshots[top]!.id;
    await rm(join(root, 'snapshots', String(id)), { recursive: true });
    const broken = await cli(['fsck', '--store', store, '--repair']);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, new RegExp(`^snapshot-data ${top}: overlay: its data snapshots/${id} is missing$`, 'm'));
  });
});

async function sha256(bytes: Buffer): Promise<string> {
  const { createHash } = await import('node:crypto');
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
