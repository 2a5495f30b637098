/**
 * `stratum snapshot` end to end on the snapshots a real pull made: ls with filters, tree, info,
 * prepare / mounts (the printed mount command really mounts) / usage / label / commit / view /
 * rm / cleanup, and the typed errors with exit code 1. Real registry, real overlay mounts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { chainIds, type Digest } from '../../src/oci/digest.js';
import { buildLayer, type BuiltLayer, type EntrySpec } from '../fixtures/layers.js';
import { writeOciLayout } from '../fixtures/layout.js';
import { pushOciLayout } from '../fixtures/push.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { parseSnapshotLs, runCli, type CliResult, type SnapshotLsRow } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const tmpDirs = new TempDirs();
const tmp = (prefix: string) => tmpDirs.make(prefix);

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay mounts';
  if (!existsSync('/usr/bin/docker-registry')) return '/usr/bin/docker-registry is not installed';
  return undefined;
}
const MISSING = missing();

const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'ID=snapshot-base\n' },
];
const APP: EntrySpec[] = [
  { type: 'dir', path: 'app' },
  { type: 'file', path: 'app/main.txt', content: 'app layer\n' },
];

let registry: TestRegistry | undefined;
let env: NodeJS.ProcessEnv = {};
let store = '';
let layers: BuiltLayer[] = [];
let diffIds: Digest[] = [];
let c1 = '';
let c2 = '';

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  const home = await tmp('snapshot-home');
  env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '' };
  const work = await tmp('snapshot-images');
  layers = await Promise.all([BASE, APP].map((e) => buildLayer(e, { compression: 'gzip', dir: join(work, 'layers') })));
  const layout = await writeOciLayout(join(work, 'two'), [{ tag: '1', layers }]);
  await pushOciLayout(layout.dir, '1', registry, 'snapshot/two:1', 'oci');
  diffIds = layout.manifests[0]!.config.rootfs.diff_ids;
  const chain = chainIds(diffIds);
  c1 = chain[0]!;
  c2 = chain[1]!;
  store = await tmp('snapshot-store');
  const r = await runCli(['pull', '--store', store, `${registry.host}/snapshot/two:1`], env);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

const snap = (...args: string[]): Promise<CliResult> => runCli(['snapshot', '--store', store, ...args], env);

async function ok(...args: string[]): Promise<string> {
  const r = await snap(...args);
  assert.equal(r.code, 0, `snapshot ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `snapshot ls` without --snapshotter: every backend's, each row naming its own (here all the store's driver's). */
async function ls(...filters: string[]): Promise<SnapshotLsRow[]> {
  const rows = parseSnapshotLs(await ok('ls', ...filters));
  const driver = JSON.parse(await runCli(['info', '--store', store, '--format', 'json'], env).then((r) => r.stdout)).Driver;
  return rows.map(({ snapshotter, ...row }) => {
    assert.equal(snapshotter, driver, `${row.name} listed under ${snapshotter}`);
    return row;
  });
}

async function usage(key: string): Promise<{ bytes: number; inodes: number }> {
  const lines = (await ok('usage', key)).trimEnd().split('\n');
  assert.match(lines[0]!, /^KEY\s+SIZE\s+INODES$/);
  assert.equal(lines.length, 2);
  const [name, size, inodes] = lines[1]!.split(/\s+/);
  assert.equal(name, key);
  const m = /^([\d.]+)(B|kB|MB|GB)$/.exec(size!);
  assert.ok(m, size);
  return { bytes: Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2] as 'B'], inodes: Number(inodes) };
}

function expectError(r: CliResult, code: string, message?: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1 with ${code}, got ${r.code}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`\\(${code}\\)\\n$`));
  if (message) assert.match(r.stderr, message);
}

describe('stratum snapshot', () => {
  test('ls (with filters), tree and info show the committed chain the pull made', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const all = await ls();
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    assert.deepEqual(all, [
      { name: c1, parent: '', kind: 'committed' },
      { name: c2, parent: c1, kind: 'committed' },
    ].sort(byName));
    assert.deepEqual(await ls('kind==committed'), all);
    assert.deepEqual(await ls('kind==active'), []);
    assert.deepEqual(await ls(`parent==${c1}`), [{ name: c2, parent: c1, kind: 'committed' }]);
    assert.deepEqual(await ls(`labels.dev.stratum.layer==${layers[0]!.digest}`), [{ name: c1, parent: '', kind: 'committed' }]);
    // separate filters are OR, a comma is AND
    assert.deepEqual((await ls(`name==${c1}`, `name==${c2}`)).length, 2);
    assert.deepEqual(await ls(`name==${c1},kind==active`), []);

    assert.equal(await ok('tree'), `\\_ ${c1}\n  \\_ ${c2}\n`);

    const info = JSON.parse(await ok('info', c2));
    assert.equal(info.kind, 'committed');
    assert.equal(info.name, c2);
    assert.equal(info.parent, c1);
    assert.equal(info.labels['dev.stratum.layer'], layers[1]!.digest);
    assert.equal(info.labels['dev.stratum.diffid'], diffIds[1]);
    assert.ok(!Number.isNaN(Date.parse(info.created)));
    expectError(await snap('info', 'no-such-key'), 'ERR_NOT_FOUND', /no-such-key/);
  });

  test('prepare prints a mount command that really mounts; usage grows with writes; label; commit; rm; cleanup', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const printed = (await ok('prepare', 'work', c2)).trim();
    const match = /^mount -t overlay overlay <target> -o (\S+)$/.exec(printed);
    assert.ok(match, printed);
    const options = match[1]!.split(',');
    const lower = options.find((o) => o.startsWith('lowerdir='))!;
    assert.equal(lower.slice('lowerdir='.length).split(':').length, 2, 'two lower layers, newest first');
    assert.ok(options.some((o) => o.startsWith('upperdir=')) && options.some((o) => o.startsWith('workdir=')));
    assert.equal((await ok('mounts', 'work')).trim(), printed);
    const dir = await tmp('snapshot-work');
    assert.equal((await ok('mounts', 'work', dir)).trim(), printed.replace('<target>', dir));
    assert.deepEqual(await ls('kind==active'), [{ name: 'work', parent: c2, kind: 'active' }]);

    const empty = await usage('work');
    await exec('mount', ['-t', 'overlay', 'overlay', dir, '-o', match[1]!]);
    try {
      assert.equal(await readFile(join(dir, 'etc/os-release'), 'utf8'), 'ID=snapshot-base\n');
      assert.equal(await readFile(join(dir, 'app/main.txt'), 'utf8'), 'app layer\n');
      await writeFile(join(dir, 'big.bin'), Buffer.alloc(2 << 20, 7));
      await writeFile(join(dir, 'small.txt'), 'small\n');
    } finally {
      await exec('umount', [dir]);
    }
    const grown = await usage('work');
    assert.equal(grown.inodes, empty.inodes + 2, `${JSON.stringify(empty)} -> ${JSON.stringify(grown)}`);
    assert.ok(grown.bytes >= empty.bytes + 2e6, `${JSON.stringify(empty)} -> ${JSON.stringify(grown)}`);
    // usage without a key lists every snapshot
    const allUsage = (await ok('usage')).trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(allUsage, [c1, c2, 'work'].sort());

    assert.deepEqual(JSON.parse(await ok('label', 'work', 'team=core', 'tier=gold')), { team: 'core', tier: 'gold' });
    assert.deepEqual(await ls('labels.team==core'), [{ name: 'work', parent: c2, kind: 'active' }]);
    assert.deepEqual(JSON.parse(await ok('label', 'work', 'team=')), { tier: 'gold' });
    assert.deepEqual(await ls('labels.team'), []);
    assert.deepEqual(await ls('labels.tier==gold'), [{ name: 'work', parent: c2, kind: 'active' }]);

    await ok('commit', 'done', 'work');
    expectError(await snap('info', 'work'), 'ERR_NOT_FOUND');
    const done = JSON.parse(await ok('info', 'done'));
    assert.equal(done.kind, 'committed');
    assert.equal(done.parent, c2);
    expectError(await snap('mounts', 'done'), 'ERR_FAILED_PRECONDITION');
    // the committed data is the same data: a view of it shows the written files
    const viewDir = await tmp('snapshot-view');
    await ok('view', 'look', 'done', '--target', viewDir);
    try {
      assert.equal(await readFile(join(viewDir, 'small.txt'), 'utf8'), 'small\n');
      assert.equal((await readFile(join(viewDir, 'big.bin'))).length, 2 << 20);
    } finally {
      await exec('umount', [viewDir]);
    }

    const before = await ls();
    for (let i = 0; i < 2; i++) {
      expectError(await snap('rm', c2), 'ERR_FAILED_PRECONDITION', new RegExp(`cannot remove snapshot with child: "${c2}" is the parent of "done"`));
      assert.deepEqual(await ls(), before, 'a refused rm changes nothing');
    }
    expectError(await snap('rm', 'done'), 'ERR_FAILED_PRECONDITION', /cannot remove snapshot with child: "done" is the parent of "look"/);

    const dataDir = join(store, 'snapshots', 'overlay', 'snapshots');
    assert.equal((await readdir(dataDir)).length, 4);
    await ok('rm', 'look', 'done');
    assert.deepEqual(await ls(), before.filter((r) => r.name !== 'done' && r.name !== 'look'));
    await ok('cleanup');
    assert.equal((await readdir(dataDir)).length, 2, 'one data directory per remaining snapshot after cleanup');
    assert.deepEqual(await readdir(join(store, 'snapshots', 'overlay', 'removal')).catch(() => []), []);
    // The key can be used again after rm.
    await ok('prepare', 'done', c2);
    await ok('rm', 'done');
  });

  test('misuse gives typed errors with exit 1 and changes nothing', async (t) => {
    if (MISSING) return t.skip(MISSING);
    await ok('view', 'v', c2);
    const before = await ls();
    expectError(await snap('commit', 'from-view', 'v'), 'ERR_FAILED_PRECONDITION', /cannot commit snapshot "v": it is view/);
    expectError(await snap('commit', 'again', c2), 'ERR_FAILED_PRECONDITION');
    expectError(await snap('commit', 'x', 'missing-key'), 'ERR_NOT_FOUND');
    expectError(await snap('prepare', 'v', c2), 'ERR_ALREADY_EXISTS');
    expectError(await snap('prepare', 'p', 'missing-parent'), 'ERR_NOT_FOUND');
    expectError(await snap('prepare', 'p', 'v'), 'ERR_INVALID_ARGUMENT');
    expectError(await snap('rm', 'missing-key'), 'ERR_NOT_FOUND');
    assert.deepEqual(await ls(), before);
    await ok('rm', 'v');
    assert.deepEqual(await ls('kind==view'), []);

    const none = await snap();
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Usage: stratum snapshot/);
    const unknown = await snap('frobnicate');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown snapshot command "frobnicate"/);
    const short = await snap('commit', 'only-name');
    assert.equal(short.code, 2);
    assert.match(short.stderr, /"stratum snapshot commit" requires 2 arguments: missing KEY/);
  });

  test('rm top-down removes the whole chain, and cleanup leaves no data behind', async (t) => {
    if (MISSING) return t.skip(MISSING);
    // a writable snapshot with a mounted view on top of the chain, then everything removed
    const dir = await tmp('snapshot-last');
    await ok('prepare', 'top', c2, '--target', dir);
    await writeFile(join(dir, 'f'), 'f\n');
    await exec('umount', [dir]);
    await ok('rm', 'top', c2, c1);
    assert.deepEqual(await ls(), []);
    await ok('cleanup');
    assert.deepEqual(await readdir(join(store, 'snapshots', 'overlay', 'snapshots')), []);
  });
});
