/**
 * `stratum mount` / `stratum unmount` end to end: read-only views and writable snapshots of
 * pulled images through real mounts, commit of a container layer and a view of it, unpacking on
 * demand, and the errors. Real registry, real overlay and bind mounts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chainIds, type Digest } from '../../src/oci/digest.js';
import { random, type EntrySpec } from '../fixtures/layers.js';
import { pushStackedImages } from '../fixtures/push.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, runCli, type CliResult } from '../helpers/cli.js';
import { mountPoints, TempDirs } from '../helpers/tmp.js';

const tmpDirs = new TempDirs();
const tmp = (prefix: string) => tmpDirs.make(prefix);

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay and bind mounts';
  if (!existsSync('/usr/bin/docker-registry')) return '/usr/bin/docker-registry is not installed';
  return undefined;
}
const MISSING = missing();

const BASE: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'ID=mount-base\n' },
  { type: 'dir', path: 'bin' },
  { type: 'file', path: 'bin/tool', content: random(32 * 1024, 'mount-tool'), mode: 0o755 },
];
const APP: EntrySpec[] = [
  { type: 'dir', path: 'app' },
  { type: 'file', path: 'app/main.txt', content: 'app layer\n' },
];

let registry: TestRegistry | undefined;
let env: NodeJS.ProcessEnv = {};
let refs: Record<'one' | 'two', { reference: string; diffIds: Digest[] }>;

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry();
  env = isolatedCliEnv(await tmp('mount-home'));
  refs = await pushStackedImages(registry, await tmp('mount-images'), 'mount', [BASE, APP], { one: [0], two: [0, 1] });
});

after(async () => {
  await registry?.stop();
  await tmpDirs.cleanup();
});

const isMounted = async (dir: string) => (await mountPoints()).includes(dir);
const cli = (args: string[]): Promise<CliResult> => runCli(args, env);

async function info(store: string, snapshotter: string, key: string): Promise<{ code: number; info?: { kind: string; name: string; parent?: string; labels: Record<string, string> }; stderr: string }> {
  const r = await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'info', key]);
  return r.code === 0 ? { code: 0, info: JSON.parse(r.stdout), stderr: r.stderr } : { code: r.code, stderr: r.stderr };
}

async function keys(store: string, snapshotter: string, filter: string): Promise<string[]> {
  const r = await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'ls', filter]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]!);
}

async function writeFails(path: string): Promise<string | undefined> {
  try {
    await writeFile(path, 'x');
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

for (const snapshotter of ['overlay', 'native'] as const) {
  describe(`stratum mount / unmount (${snapshotter})`, () => {
    let store = '';
    before(async () => {
      if (MISSING) return;
      store = await tmp(`mount-store-${snapshotter}`);
      for (const name of ['one', 'two'] as const) {
        const r = await cli(['pull', '--store', store, '--snapshotter', snapshotter, refs[name].reference]);
        assert.equal(r.code, 0, r.stderr);
      }
    });

    for (const name of ['one', 'two'] as const) {
      test(`mount IMAGE DIR (${name === 'one' ? 'one layer' : 'two layers'}): a read-only view; unmount removes the mount and the view`, async (t) => {
        if (MISSING) return t.skip(MISSING);
        const dir = await tmp('mnt-ro');
        const m = await cli(['mount', '--store', store, '--snapshotter', snapshotter, refs[name].reference, dir]);
        assert.equal(m.code, 0, m.stderr);
        const key = new RegExp(`^${dir} \\(read-only view (view-[0-9a-f]+), ${snapshotter}\\)$`).exec(m.stdout.trim())?.[1];
        assert.ok(key, m.stdout);
        try {
          assert.ok(await isMounted(dir), 'mounted');
          assert.equal(await readFile(join(dir, 'etc/os-release'), 'utf8'), 'ID=mount-base\n');
          if (name === 'two') assert.equal(await readFile(join(dir, 'app/main.txt'), 'utf8'), 'app layer\n');
          assert.deepEqual((await readdir(dir)).sort(), name === 'two' ? ['app', 'bin', 'etc'] : ['bin', 'etc']);
          assert.equal(await writeFails(join(dir, 'new.txt')), 'EROFS');
          assert.equal(await writeFails(join(dir, 'etc/os-release')), 'EROFS');
          const view = await info(store, snapshotter, key);
          assert.equal(view.info?.kind, 'view');
          assert.equal(view.info?.parent, chainIds(refs[name].diffIds).at(-1));
          assert.equal(view.info?.labels['dev.stratum.mountpoint'], dir);
          assert.deepEqual(await keys(store, snapshotter, 'kind==view'), [key]);
        } finally {
          const u = await cli(['unmount', '--store', store, dir]);
          assert.equal(u.code, 0, u.stderr);
          assert.equal(u.stdout.trim(), `unmounted ${dir}, view ${key} removed`);
        }
        assert.equal(await isMounted(dir), false, 'still mounted after unmount');
        assert.deepEqual(await readdir(dir), []);
        const gone = await info(store, snapshotter, key);
        assert.equal(gone.code, 1);
        assert.match(gone.stderr, /\(ERR_NOT_FOUND\)/);
        assert.deepEqual(await keys(store, snapshotter, 'kind==view'), []);
      });
    }

    test('mount --rw KEY: writes land in snapshot KEY, kept after unmount; commit it and view the commit elsewhere', async (t) => {
      if (MISSING) return t.skip(MISSING);
      const top = chainIds(refs.two.diffIds).at(-1)!;
      const key = `container-${snapshotter}`;
      const dir = await tmp('mnt-rw');
      const m = await cli(['mount', '--store', store, '--snapshotter', snapshotter, '--rw', key, refs.two.reference, dir]);
      assert.equal(m.code, 0, m.stderr);
      assert.equal(m.stdout.trim(), `${dir} (writable ${key}, ${snapshotter})`);
      try {
        await writeFile(join(dir, 'hello.txt'), 'written in the container\n');
        await writeFile(join(dir, 'app/main.txt'), 'changed\n');
        await rm(join(dir, 'etc/os-release'));
        const active = await info(store, snapshotter, key);
        assert.equal(active.info?.kind, 'active');
        assert.equal(active.info?.parent, top);
        assert.equal(active.info?.labels['dev.stratum.mountpoint'], dir);
      } finally {
        const u = await cli(['unmount', '--store', store, '--snapshotter', snapshotter, dir]);
        assert.equal(u.code, 0, u.stderr);
        assert.equal(u.stdout.trim(), `unmounted ${dir}, snapshot ${key} kept`);
      }
      assert.equal(await isMounted(dir), false);
      const kept = await info(store, snapshotter, key);
      assert.equal(kept.info?.kind, 'active');
      assert.equal(kept.info?.labels['dev.stratum.mountpoint'], undefined, 'mountpoint label dropped on unmount');

      // A second mount under the same key is refused, and mounts nothing.
      const again = await tmp('mnt-rw-again');
      const dup = await cli(['mount', '--store', store, '--snapshotter', snapshotter, '--rw', key, refs.two.reference, again]);
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, new RegExp(`${key}.*\\(ERR_ALREADY_EXISTS\\)`));
      assert.equal(await isMounted(again), false);

      const name = `committed-${snapshotter}`;
      const c = await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'commit', name, key]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal((await info(store, snapshotter, key)).code, 1, 'the active key is gone after commit');
      const committed = await info(store, snapshotter, name);
      assert.equal(committed.info?.kind, 'committed');
      assert.equal(committed.info?.parent, top);

      const dir2 = await tmp('mnt-v2');
      const v = await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'view', `v2-${snapshotter}`, name, '--target', dir2]);
      assert.equal(v.code, 0, v.stderr);
      try {
        assert.equal(await readFile(join(dir2, 'hello.txt'), 'utf8'), 'written in the container\n');
        assert.equal(await readFile(join(dir2, 'app/main.txt'), 'utf8'), 'changed\n');
        assert.equal(existsSync(join(dir2, 'etc/os-release')), false, 'the deletion survives commit');
        assert.equal((await readFile(join(dir2, 'bin/tool'))).length, 32 * 1024);
        assert.equal(await writeFails(join(dir2, 'x')), 'EROFS');
      } finally {
        assert.equal((await cli(['unmount', '--store', store, '--snapshotter', snapshotter, dir2])).code, 0);
      }
      assert.equal(await isMounted(dir2), false);
      assert.equal((await cli(['snapshot', '--store', store, '--snapshotter', snapshotter, 'rm', `v2-${snapshotter}`, name])).code, 0);
    });
  });
}

describe('stratum mount: unpacking on demand and errors', () => {
  test('an image pulled with --no-unpack is unpacked by mount first', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('mount-store-nounpack');
    const p = await cli(['pull', '--store', store, '--no-unpack', refs.two.reference]);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(await keys(store, 'overlay', 'kind==committed'), []);
    const dir = await tmp('mnt-nounpack');
    const m = await cli(['mount', '--store', store, refs.two.reference, dir]);
    assert.equal(m.code, 0, m.stderr);
    try {
      assert.equal(await readFile(join(dir, 'app/main.txt'), 'utf8'), 'app layer\n');
      assert.equal(await readFile(join(dir, 'etc/os-release'), 'utf8'), 'ID=mount-base\n');
    } finally {
      assert.equal((await cli(['unmount', '--store', store, dir])).code, 0);
    }
    assert.deepEqual((await keys(store, 'overlay', 'kind==committed')).sort(), [...chainIds(refs.two.diffIds)].sort());
    assert.deepEqual(await keys(store, 'overlay', 'kind==active'), []);
    assert.deepEqual(await keys(store, 'overlay', 'kind==view'), []);
  });

  test('mount of an image not in the store: exit 1, ERR_NOT_FOUND naming it, nothing mounted or created', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp('mount-store-unknown');
    assert.equal((await cli(['pull', '--store', store, refs.one.reference])).code, 0);
    const dir = await tmp('mnt-unknown');
    const m = await cli(['mount', '--store', store, `${registry!.host}/mount/nosuch:1`, dir]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /image .*mount\/nosuch:1 not found.*\(ERR_NOT_FOUND\)/);
    assert.equal(await isMounted(dir), false);
    assert.deepEqual(await keys(store, 'overlay', 'kind==view'), []);
    assert.deepEqual(await keys(store, 'overlay', 'kind==active'), []);
    const usage = await cli(['mount', '--store', store, refs.one.reference]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage: stratum mount/);
  });
});
