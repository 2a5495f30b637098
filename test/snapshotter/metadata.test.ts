import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { JOURNAL_FILE, LEGACY_METADATA_FILE, MetadataStore, type MetadataState } from '../../src/snapshotter/metadata.js';
import { openSnapshotter, type Snapshotter, type SnapshotterName } from '../../src/snapshotter/index.js';
import type { Info } from '../../src/snapshotter/snapshotter.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());

const CHILD = fileURLToPath(new URL('./helpers/child.js', import.meta.url));

async function open(name: SnapshotterName): Promise<Snapshotter> {
  return openSnapshotter(name, await tmp.make(`snap-meta-${name}`));
}

async function readState(root: string): Promise<MetadataState> {
  return new MetadataStore(root).read();
}

async function names(s: Snapshotter, ...filters: string[]): Promise<string[]> {
  const out: string[] = [];
  await s.walk((info) => {
    out.push(info.name);
  }, ...filters);
  return out.sort();
}

const code = (c: string) => ({ code: c });

for (const backend of ['native', 'overlay'] as const) {
  describe(`${backend}: metadata rules`, () => {
    test('prepare / view on a used key: AlreadyExists, whatever the kind', async () => {
      const s = await open(backend);
      await s.prepare('active');
      await s.view('view');
      await s.prepare('tmp');
      await s.commit('committed', 'tmp');
      for (const key of ['active', 'view', 'committed']) {
        await assert.rejects(s.prepare(key), code('ERR_ALREADY_EXISTS'));
        await assert.rejects(s.view(key), code('ERR_ALREADY_EXISTS'));
      }
    });

    test('prepare / view on a missing parent: NotFound; on an uncommitted parent: InvalidArgument', async () => {
      const s = await open(backend);
      await assert.rejects(s.prepare('a', 'nope'), code('ERR_NOT_FOUND'));
      await assert.rejects(s.view('b', 'nope'), code('ERR_NOT_FOUND'));
      await s.prepare('active');
      await s.view('view');
      for (const parent of ['active', 'view']) {
        await assert.rejects(s.prepare('c', parent), code('ERR_INVALID_ARGUMENT'));
        await assert.rejects(s.view('d', parent), code('ERR_INVALID_ARGUMENT'));
      }
      // Nothing was left behind by the failures.
      assert.deepEqual(await names(s), ['active', 'view']);
    });

    test('commit: a view or a committed key is FailedPrecondition, a used name AlreadyExists, a missing key NotFound', async () => {
      const s = await open(backend);
      await s.view('v');
      await assert.rejects(s.commit('x', 'v'), code('ERR_FAILED_PRECONDITION'));
      await s.prepare('a');
      await s.commit('base', 'a');
      await assert.rejects(s.commit('y', 'base'), code('ERR_FAILED_PRECONDITION'));
      await s.prepare('b', 'base');
      await assert.rejects(s.commit('base', 'b'), code('ERR_ALREADY_EXISTS'));
      await assert.rejects(s.commit('v', 'b'), code('ERR_ALREADY_EXISTS'));
      await assert.rejects(s.commit('z', 'missing'), code('ERR_NOT_FOUND'));
      assert.equal((await s.stat('b')).kind, 'active');
    });

    test('mounts of a committed snapshot: FailedPrecondition', async () => {
      const s = await open(backend);
      await s.prepare('a');
      assert.ok((await s.mounts('a')).length > 0);
      await s.commit('c', 'a');
      await assert.rejects(s.mounts('c'), code('ERR_FAILED_PRECONDITION'));
      await assert.rejects(s.mounts('a'), code('ERR_NOT_FOUND'));
    });

    test('remove of a parent: FailedPrecondition "cannot remove snapshot with child", repeatable, nothing changed', async () => {
      const s = await open(backend);
      await s.prepare('a');
      await s.commit('base', 'a');
      await s.view('child', 'base');
      const before = await readState(s.root);
      for (let i = 0; i < 3; i++) {
        await assert.rejects(s.remove('base'), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_FAILED_PRECONDITION');
          assert.match(err.message, /cannot remove snapshot with child/);
          return true;
        });
      }
      assert.deepEqual(await readState(s.root), before);
      await s.remove('child');
      await s.remove('base');
      assert.deepEqual(await names(s), []);
      await assert.rejects(s.remove('base'), code('ERR_NOT_FOUND'));
    });

    test('update of any field but labels: InvalidArgument; stat of a missing key: NotFound', async () => {
      const s = await open(backend);
      await s.prepare('a', undefined, { labels: { x: '1' } });
      for (const field of ['kind', 'parent', 'name', 'created', 'updated', 'labels.', 'labelsx']) {
        await assert.rejects(s.update({ name: 'a', labels: {} }, field), code('ERR_INVALID_ARGUMENT'), field);
      }
      assert.deepEqual((await s.stat('a')).labels, { x: '1' });
      await assert.rejects(s.stat('missing'), code('ERR_NOT_FOUND'));
      await assert.rejects(s.update({ name: 'missing', labels: {} }), code('ERR_NOT_FOUND'));
      await assert.rejects(s.usage('missing'), code('ERR_NOT_FOUND'));
    });

    test('commit keeps the internal id; the key is gone; labels given at commit replace', async () => {
      const s = await open(backend);
      await s.prepare('a', undefined, { labels: { old: '1' } });
      const id = (await readState(s.root)).snapshots['a']!.id;
      await s.commit('c', 'a', { labels: { new: '2' } });
      const state = await readState(s.root);
      assert.equal(state.snapshots['c']!.id, id);
      assert.equal(state.snapshots['a'], undefined);
      await assert.rejects(s.stat('a'), code('ERR_NOT_FOUND'));
      const info = await s.stat('c');
      assert.equal(info.kind, 'committed');
      assert.equal(info.name, 'c');
      assert.deepEqual(info.labels, { new: '2' });
      // Committing without labels leaves none.
      await s.prepare('b', 'c', { labels: { old: '1' } });
      await s.commit('d', 'b');
      assert.deepEqual((await s.stat('d')).labels, {});
      assert.equal((await s.stat('d')).parent, 'c');
      assert.equal((await s.stat('c')).parent, undefined);
    });

    test('ids are monotonic and never reused; a removed key can be used again', async () => {
      const s = await open(backend);
      await s.prepare('a');
      const first = (await readState(s.root)).snapshots['a']!.id;
      await s.remove('a');
      await s.prepare('a');
      const second = (await readState(s.root)).snapshots['a']!.id;
      assert.ok(second > first, `${second} > ${first}`);
      await s.commit('c', 'a');
      await s.remove('c');
      await s.prepare('c');
      assert.ok((await readState(s.root)).snapshots['c']!.id > second);
    });

    test('update: no fieldpaths replace all labels, labels.k sets or deletes one, created stays, updated moves forward', async () => {
      const s = await open(backend);
      await s.prepare('a', undefined, { labels: { a: '1', b: '2', c: '3' } });
      const before = await s.stat('a');
      let info = await s.update({ name: 'a', labels: { b: '20', d: '4' } }, 'labels.b', 'labels.c', 'labels.d');
      assert.deepEqual(info.labels, { a: '1', b: '20', d: '4' });
      assert.equal(info.created.getTime(), before.created.getTime());
      assert.ok(info.updated.getTime() > before.updated.getTime());
      const mid = info.updated.getTime();
      info = await s.update({ name: 'a', labels: { only: 'x' } });
      assert.deepEqual(info.labels, { only: 'x' });
      assert.ok(info.updated.getTime() > mid);
      info = await s.update({ name: 'a', labels: { z: 'y' } }, 'labels');
      assert.deepEqual(info.labels, { z: 'y' });
      info = await s.update({ name: 'a' }, 'labels.z');
      assert.deepEqual(info.labels, {});
      assert.deepEqual((await s.stat('a')).labels, {});
      assert.equal((await s.stat('a')).created.getTime(), before.created.getTime());
      // Comma-joined field paths are the same as separate ones.
      await s.update({ name: 'a', labels: { p: '1', q: '2' } }, 'labels.p,labels.q');
      assert.deepEqual((await s.stat('a')).labels, { p: '1', q: '2' });
    });

    test('labels: key plus value at most 4096 bytes; odd keys stay plain keys', async () => {
      const s = await open(backend);
      await s.prepare('ok', undefined, { labels: { k: 'v'.repeat(4095) } });
      await assert.rejects(s.prepare('big', undefined, { labels: { k: 'v'.repeat(4096) } }), code('ERR_INVALID_ARGUMENT'));
      await assert.rejects(s.prepare('multi', undefined, { labels: { kk: 'é'.repeat(2048) } }), code('ERR_INVALID_ARGUMENT'));
      await assert.rejects(s.update({ name: 'ok', labels: { k: 'v'.repeat(4096) } }), code('ERR_INVALID_ARGUMENT'));
      await assert.rejects(s.stat('big'), code('ERR_NOT_FOUND'));
      const labels = JSON.parse('{"__proto__":"p","constructor":"c"}') as Record<string, string>;
      await s.prepare('odd', undefined, { labels });
      const info = await s.stat('odd');
      assert.deepEqual(Object.keys(info.labels).sort(), ['__proto__', 'constructor']);
      assert.deepEqual(await names(s, 'labels.__proto__==p'), ['odd']);
    });

    test('walk filters: name, parent, kind, labels; comma is AND, separate strings OR; stat inside walk', async () => {
      const s = await open(backend);
      await s.prepare('a', undefined, { labels: { tier: 'base', 'dotted.key/x': 'yes' } });
      await s.commit('base', 'a', { labels: { tier: 'base', gc: 'keep' } });
      await s.prepare('b', 'base', { labels: { tier: 'app' } });
      await s.commit('app', 'b', { labels: { tier: 'app' } });
      await s.prepare('work', 'app', { labels: { role: 'rw' } });
      await s.view('look', 'app', { labels: { tier: 'app', role: 'ro' } });
      await s.prepare('loose');

      assert.deepEqual(await names(s), ['app', 'base', 'look', 'loose', 'work']);
      assert.deepEqual(await names(s, 'name==app'), ['app']);
      assert.deepEqual(await names(s, 'parent==app'), ['look', 'work']);
      assert.deepEqual(await names(s, 'parent!=""'), ['app', 'look', 'work']);
      assert.deepEqual(await names(s, 'kind==committed'), ['app', 'base']);
      assert.deepEqual(await names(s, 'kind==active'), ['loose', 'work']);
      assert.deepEqual(await names(s, 'kind==view'), ['look']);
      assert.deepEqual(await names(s, 'labels.tier'), ['app', 'base', 'look']);
      assert.deepEqual(await names(s, 'labels.tier==app'), ['app', 'look']);
      assert.deepEqual(await names(s, 'labels.tier==app,kind==committed'), ['app']);
      assert.deepEqual(await names(s, 'labels.gc==keep', 'labels.role==rw'), ['base', 'work']);
      assert.deepEqual(await names(s, 'kind==view', 'name==base,parent!=""'), ['look']);
      assert.deepEqual(await names(s, 'labels.tier!=app'), ['base', 'loose', 'work']);
      assert.deepEqual(await names(s, 'name~=^a'), ['app']);
      assert.deepEqual(await names(s, 'labels."tier"=="base"'), ['base']);
      assert.deepEqual(await names(s, 'labels.nope'), []);
      for (const bad of ['bogus==1', 'name=1', 'labels.==x', 'name=="open', 'name~=(']) {
        await assert.rejects(names(s, bad), code('ERR_INVALID_ARGUMENT'), bad);
      }

      const seen: Info[] = [];
      await s.walk(async (info) => {
        seen.push(await s.stat(info.name));
        await s.update({ name: info.name, labels: { walked: 'yes' } }, 'labels.walked');
      }, 'kind==committed');
      assert.deepEqual(seen.map((i) => i.name).sort(), ['app', 'base']);
      assert.equal((await s.stat('app')).labels['walked'], 'yes');
      assert.equal((await s.stat('app')).parent, 'base');
    });

    test('close twice is fine; calls after close fail', async () => {
      const s = await open(backend);
      await s.prepare('a');
      await s.close();
      await s.close();
      await assert.rejects(s.stat('a'), code('ERR_FAILED_PRECONDITION'));
      const again = await openSnapshotter(backend, s.root);
      assert.equal((await again.stat('a')).kind, 'active');
      await again.close();
    });

    test('remove frees the data; cleanup removes directories no metadata points to', async () => {
      const s = await open(backend);
      await s.prepare('a');
      await s.commit('c', 'a');
      await s.prepare('gone');
      const goneId = (await readState(s.root)).snapshots['gone']!.id;
      await s.remove('gone');
      assert.ok(!(await readdir(join(s.root, 'snapshots'))).includes(String(goneId)));
      // Leftovers of a crash: an orphan data dir, a removal half done, a staging dir of a dead process.
      await mkdir(join(s.root, 'snapshots', '9999', 'fs'), { recursive: true });
      await writeFile(join(s.root, 'snapshots', '9999', 'fs', 'f'), 'x');
      await mkdir(join(s.root, 'removal', 'snapshot-5-999999999-0123456789ab'), { recursive: true });
      await mkdir(join(s.root, 'staging', 'new-999999999-0123456789ab'), { recursive: true });
      await s.cleanup();
      const cId = (await readState(s.root)).snapshots['c']!.id;
      assert.deepEqual(await readdir(join(s.root, 'snapshots')), [String(cId)]);
      assert.deepEqual(await readdir(join(s.root, 'removal')), []);
      assert.deepEqual(await readdir(join(s.root, 'staging')), []);
      assert.equal((await s.stat('c')).kind, 'committed');
    });
  });
}

describe('rebase (commit with a parent)', () => {
  test('overlay: only for a snapshot prepared without parent, onto a committed parent', async () => {
    const s = await open('overlay');
    assert.equal(s.capabilities.rebase, true);
    await s.prepare('l1');
    await s.commit('base', 'l1');
    await s.prepare('l2');
    await s.prepare('onbase', 'base');
    await assert.rejects(s.commit('x', 'l2', { parent: 'missing' }), code('ERR_NOT_FOUND'));
    await assert.rejects(s.commit('x', 'l2', { parent: 'onbase' }), code('ERR_INVALID_ARGUMENT'));
    await assert.rejects(s.commit('x', 'onbase', { parent: 'base' }), code('ERR_FAILED_PRECONDITION'));
    await s.commit('top', 'l2', { parent: 'base' });
    assert.equal((await s.stat('top')).parent, 'base');
    await assert.rejects(s.remove('base'), code('ERR_FAILED_PRECONDITION'));
  });

  test('native: not supported', async () => {
    const s = await open('native');
    assert.equal(s.capabilities.rebase, false);
    await s.prepare('l1');
    await s.commit('base', 'l1');
    await s.prepare('l2');
    await assert.rejects(s.commit('x', 'l2', { parent: 'base' }), code('ERR_INVALID_ARGUMENT'));
    assert.equal((await s.stat('l2')).kind, 'active');
  });
});

describe('openSnapshotter', () => {
  test('zfs on a root that is not a dataset’s mountpoint is refused, saying how to make one', async () => {
    const root = await tmp.make('snap-open');
    await assert.rejects(openSnapshotter('zfs', root), { code: 'ERR_FAILED_PRECONDITION', message: /is not the mountpoint of a ZFS dataset; create one \(zfs create -o mountpoint=|cannot list ZFS datasets/ });
  });
});

interface ChildResult {
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
}

function runChild(args: string[], killAfterReadyMs?: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let buf = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (line === 'ready' && killAfterReadyMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterReadyMs);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`child ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ lines, code, signal });
    });
  });
}

describe('crash safety and concurrency', () => {
  test('SIGKILL at any instant of a mutation: reopens with the old or the new state', async () => {
    const root = await tmp.make('snap-crash');
    let progressed = false;
    for (let round = 0; round < 12; round++) {
      const next = await nextStep(root);
      let reported = -1; // the last step this child reported durable
      let lastPhase = '';
      const res = await runChild(['mutate-loop', 'native', root, String(next)], 20 + Math.floor(Math.random() * 120));
      assert.equal(res.signal, 'SIGKILL');
      for (const line of res.lines) {
        const m = /^step (\d+) (\w+)$/.exec(line);
        if (m) {
          reported = Number(m[1]);
          lastPhase = m[2]!;
          progressed = true;
        }
      }
      // Every state must be one a sequence of whole mutations could produce.
      const s = await openSnapshotter('native', root);
      const state = await readState(root);
      const keys = Object.keys(state.snapshots);
      const ids = Object.values(state.snapshots).map((r) => r.id);
      assert.equal(new Set(ids).size, ids.length, 'ids are unique');
      assert.ok(ids.every((id) => id < state.nextId), 'nextId is above every id');
      const committed = keys.filter((k) => k.startsWith('c-')).map((k) => Number(k.slice(2))).sort((a, b) => a - b);
      committed.forEach((n, i) => assert.equal(n, i, `committed steps are a prefix: ${committed.join()}`));
      const active = keys.filter((k) => k.startsWith('a-'));
      assert.ok(active.length <= 1, `at most one active: ${active.join()}`);
      if (active.length === 1) assert.equal(active[0], `a-${committed.length}`);
      assert.equal(keys.length, committed.length + active.length);
      for (const n of committed) {
        const info = await s.stat(`c-${n}`);
        if (n > 0) assert.equal(info.parent, `c-${n - 1}`);
        const labelled = info.labels['n'] === String(n);
        // Labelling is the last step of n; every earlier step finished it.
        if (n < committed.length - 1) assert.ok(labelled, `c-${n} is labelled`);
        assert.ok(labelled ? info.labels['pad']?.length === 2000 : info.labels['phase'] === 'committed');
      }
      // Durability: what a child reported done is there.
      if (reported >= 0) {
        const have = lastPhase === 'prepared' ? keys.includes(`a-${reported}`) || keys.includes(`c-${reported}`) : keys.includes(`c-${reported}`);
        assert.ok(have, `step ${reported} ${lastPhase} survived`);
        if (lastPhase === 'labelled') assert.equal((await s.stat(`c-${reported}`)).labels['n'], String(reported));
      }
      // Every record's data exists; cleanup leaves exactly the recorded data.
      await s.cleanup();
      assert.deepEqual((await readdir(join(root, 'snapshots'))).sort(), ids.map(String).sort());
      // The journal reads back whole, and cleanup took the temp files of killed writers.
      await new MetadataStore(root).read();
      assert.deepEqual((await readdir(root)).filter((n) => n.endsWith('.tmp')), []);
      await s.close();
    }
    assert.ok(progressed, 'the children made progress');
  });

  test('concurrent prepares on one parent from two processes', async () => {
    const root = await tmp.make('snap-concurrent');
    const s = await openSnapshotter('overlay', root);
    await s.prepare('a');
    await s.commit('base', 'a');
    const [one, two] = await Promise.all([
      runChild(['prepare-many', 'overlay', root, 'base', 'p', '15']),
      runChild(['prepare-many', 'overlay', root, 'base', 'q', '15']),
    ]);
    assert.equal(JSON.parse(one.lines.at(-1)!).length, 15);
    assert.equal(JSON.parse(two.lines.at(-1)!).length, 15);
    const children = await names(s, 'parent==base');
    assert.equal(children.length, 30);
    const state = await readState(root);
    const ids = Object.values(state.snapshots).map((r) => r.id);
    assert.equal(new Set(ids).size, 31);
    assert.deepEqual((await readdir(join(root, 'snapshots'))).sort(), ids.map(String).sort());

    // The same key from two processes at once: exactly one wins.
    const results = await Promise.all([
      runChild(['prepare-one', 'overlay', root, 'same', 'base']),
      runChild(['prepare-one', 'overlay', root, 'same', 'base']),
    ]);
    assert.deepEqual(results.map((r) => r.lines.at(-1)).sort(), ['ERR_ALREADY_EXISTS', 'ok']);
    await s.cleanup();
    assert.equal((await readdir(join(root, 'snapshots'))).length, 32);
    await s.close();
  });

  test('concurrent prepares in one process', async () => {
    const s = await open('native');
    await s.prepare('a');
    await s.commit('base', 'a');
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.prepare(`k${i}`, 'base')));
    const settled = await Promise.allSettled(Array.from({ length: 4 }, () => s.prepare('dup', 'base')));
    assert.equal(settled.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal((await names(s, 'parent==base')).length, 21);
  });
});

async function nextStep(root: string): Promise<number> {
  // Resume after whatever the last child left: finish nothing, just start at the next free index.
  let state: MetadataState;
  try {
    state = await readState(root);
  } catch {
    return 0;
  }
  const keys = Object.keys(state.snapshots);
  const committed = keys.filter((k) => k.startsWith('c-')).length;
  const active = keys.find((k) => k.startsWith('a-'));
  const s = await openSnapshotter('native', root);
  // A step killed between prepare and commit: drop it so the next child redoes it.
  if (active !== undefined) await s.remove(active);
  // A step killed between commit and labelling: finish it, as the child would have.
  const last = committed - 1;
  if (last >= 0 && (await s.stat(`c-${last}`)).labels['n'] === undefined) {
    await s.update({ name: `c-${last}`, labels: { n: String(last), pad: 'x'.repeat(2000) } }, 'labels.n', 'labels.pad');
  }
  await s.close();
  return committed;
}

describe('journal', () => {
  test('a record cut anywhere (a crash mid-append) reads as the old state; the next write drops the torn tail', async () => {
    const s = await open('native');
    await s.prepare('a', undefined, { labels: { x: '1' } });
    await s.commit('base', 'a');
    const journal = join(s.root, JOURNAL_FILE);
    const oldSize = (await stat(journal)).size;
    const oldState = structuredClone(await readState(s.root));
    await s.prepare('b', 'base', { labels: { pad: 'y'.repeat(300) } });
    const newSize = (await stat(journal)).size;
    const newState = structuredClone(await readState(s.root));
    const full = await readFile(journal);
    assert.ok(newSize > oldSize + 300, 'one record appended');
    for (let cut = oldSize; cut <= newSize; cut += cut < oldSize + 20 || cut > newSize - 20 ? 1 : 37) {
      await writeFile(journal, full.subarray(0, cut));
      assert.deepEqual(await readState(s.root), cut === newSize ? newState : oldState, `cut at ${cut}`);
    }
    // A flipped byte in the last record is a torn write too.
    const flipped = Buffer.from(full);
    flipped[newSize - 10] ^= 0x20;
    await writeFile(journal, flipped);
    assert.deepEqual(await readState(s.root), oldState);
    // A writer after the crash truncates the torn bytes before appending, so its record is read.
    await writeFile(journal, full.subarray(0, newSize - 5));
    const s2 = await openSnapshotter('native', s.root);
    await assert.rejects(s2.stat('b'), code('ERR_NOT_FOUND'));
    await s2.prepare('c', 'base');
    assert.deepEqual(Object.keys((await readState(s.root)).snapshots).sort(), ['base', 'c']);
    assert.equal((await s2.stat('c')).parent, 'base');
  });

  test('a damaged record with whole records after it is an error, not a silent rollback', async () => {
    const s = await open('native');
    await s.prepare('a');
    await s.prepare('b');
    await s.prepare('c');
    const journal = join(s.root, JOURNAL_FILE);
    const bytes = await readFile(journal);
    const lines = bytes.toString('utf8').split('\n');
    assert.equal(lines.filter(Boolean).length, 3);
    const secondRecord = lines[0]!.length + 1 + 12;
    bytes[secondRecord] ^= 0x01;
    await writeFile(journal, bytes);
    await assert.rejects(readState(s.root), { code: 'ERR_STORE', message: /damaged record/ });
  });

  test('changes append; the journal is compacted into one base record once the records outweigh it', async () => {
    const s = await open('native');
    await s.prepare('a');
    const journal = join(s.root, JOURNAL_FILE);
    const lineCount = async () => (await readFile(journal, 'utf8')).split('\n').filter(Boolean).length;
    assert.equal(await lineCount(), 1);
    await s.update({ name: 'a', labels: { k: 'v' } });
    assert.equal(await lineCount(), 2);
    for (let i = 0; i < 200; i++) await s.update({ name: 'a', labels: { k: 'v'.repeat(3000), i: String(i) } });
    assert.ok((await lineCount()) < 150, 'compacted at least once');
    const fresh = new MetadataStore(s.root);
    assert.equal((await fresh.read()).snapshots['a']!.labels['i'], '199');
  });

  test('a reader that cached the journal follows appends and compactions made by another writer', async () => {
    const writer = await open('native');
    const reader = await openSnapshotter('native', writer.root);
    await writer.prepare('a');
    assert.equal((await reader.stat('a')).kind, 'active');
    const journal = join(writer.root, JOURNAL_FILE);
    let compactions = 0;
    for (let i = 0; compactions < 3; i++) {
      const before = (await stat(journal)).ino;
      await writer.update({ name: 'a', labels: { i: String(i), pad: 'p'.repeat(3000) } });
      if ((await stat(journal)).ino !== before) compactions++;
      if (i % 7 === 0) assert.equal((await reader.stat('a')).labels['i'], String(i), `after update ${i}`);
    }
    await writer.commit('c', 'a');
    assert.equal((await reader.stat('c')).kind, 'committed');
    await assert.rejects(reader.stat('a'), code('ERR_NOT_FOUND'));
  });

  test('a root written by format 1 (metadata.json) is read, and the first change moves it to the journal', async () => {
    const root = await tmp.make('snap-legacy');
    await mkdir(join(root, 'snapshots', '1'), { recursive: true });
    const now = new Date().toISOString();
    const legacy = { version: 1, nextId: 2, snapshots: { base: { id: 1, kind: 'committed', labels: { l: '1' }, created: now, updated: now } } };
    await writeFile(join(root, LEGACY_METADATA_FILE), JSON.stringify(legacy));
    const s = await openSnapshotter('native', root);
    assert.deepEqual((await s.stat('base')).labels, { l: '1' });
    await s.prepare('child', 'base');
    assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('metadata.')), [JOURNAL_FILE]);
    assert.equal((await s.stat('child')).parent, 'base');
    assert.equal((await readState(root)).nextId, 3);
  });
});
