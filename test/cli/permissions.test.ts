/**
 * Who may read a store and its snapshots (CVE-2021-41103 class): as root, pull and unpack real
 * images with the CLI, then check the modes and try, as user nobody, to read a blob and to read
 * and execute a file of an unpacked layer. A store an older version left 0755/0644 is closed on
 * its next open.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';
import { runCli } from '../helpers/cli.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';

const NOBODY = 65534;

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'LOUD SKIP: needs root (pulls as root, then reads as nobody; overlay mounts)';
  if (!existsSync('/usr/bin/docker-registry')) return 'LOUD SKIP: /usr/bin/docker-registry is not installed';
  if (!existsSync('/usr/bin/setpriv')) return 'LOUD SKIP: setpriv (util-linux) is not installed';
  return undefined;
}
const MISSING = missing();

/** What user nobody gets for each path: 'ok' or the errno code; `exec` paths are run, the others read. */
function asNobody(reads: string[], execs: string[] = []): { read: string[]; exec: string[] } {
  const script = `
    const fs = require('node:fs'), cp = require('node:child_process');
    const [reads, execs] = JSON.parse(process.argv[1]);
    const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code ?? String(e); } };
    const read = reads.map((p) => code(() => fs.readFileSync(p)));
    const exec = execs.map((p) => { const r = cp.spawnSync(p, [], { stdio: 'ignore' }); return r.error ? r.error.code : r.status === 0 ? 'ok' : 'status ' + r.status; });
    process.stdout.write(JSON.stringify({ read, exec }));`;
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', script, JSON.stringify([reads, execs])], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { read: string[]; exec: string[] };
}

async function mode(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o7777).toString(8);
}

/** The one snapshot data directory under `snapshotRoot` that holds `rel` (the base layer's own file). */
async function snapshotFile(snapshotRoot: string, backend: 'native' | 'overlay', rel: string): Promise<string> {
  for (const id of await readdir(join(snapshotRoot, 'snapshots'))) {
    const path = join(snapshotRoot, 'snapshots', id, ...(backend === 'overlay' ? ['fs'] : []), rel);
    if (existsSync(path)) return path;
  }
  throw new Error(`no snapshot under ${snapshotRoot} holds ${rel}`);
}

describe('store and snapshot permissions (as root, then read as nobody)', { skip: MISSING }, () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    registry = await sharedRegistry();
    fixtures = await pushFixtures(registry);
    const home = await dirs.make('perm-home');
    env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' };
  });
  after(async () => {
    await registry?.stop();
    await dirs.cleanup();
  });

  /** A directory nobody may enter (0755), so a refusal below it comes from the store's own modes. */
  async function openParent(): Promise<string> {
    const parent = await dirs.make('perm');
    await chmod(parent, 0o755);
    return parent;
  }

  async function pull(store: string, backend: string, ...flags: string[]): Promise<void> {
    const r = await runCli(['pull', '--store', store, '--snapshotter', backend, ...flags, `${registry.host}/${fixtures.base.repository}:${fixtures.base.tag}`], env);
    assert.equal(r.code, 0, r.stderr);
  }

  for (const backend of ['native', 'overlay'] as const) {
    test(`${backend}: store 0700 with 0600 files, snapshot root 0700; nobody can read a blob or read/run a layer's file`, async () => {
      const parent = await openParent();
      const store = join(parent, 'store');
      await pull(store, backend);
      const snapshotRoot = join(store, 'snapshots', backend);

      for (const dir of [store, join(store, 'blobs'), join(store, 'blobs', 'sha256'), join(store, 'ingest'), snapshotRoot, ...['snapshots', 'staging', 'removal'].map((d) => join(snapshotRoot, d))]) {
        assert.equal(await mode(dir), '700', dir);
      }
      for (const file of ['index.json', 'oci-layout']) assert.equal(await mode(join(store, file)), '600', file);
      const blobs = await readdir(join(store, 'blobs', 'sha256'));
      assert.ok(blobs.length >= 3, `blobs: ${blobs.join(', ')}`);
      for (const b of blobs) assert.equal(await mode(join(store, 'blobs', 'sha256', b)), '600', b);

      const blob = join(store, 'blobs', 'sha256', fixtures.base.layers[0]!.digest.slice('sha256:'.length));
      const hello = await snapshotFile(snapshotRoot, backend, 'usr/bin/hello');
      assert.equal(await mode(hello), '755', 'the image file itself keeps its mode');
      const got = asNobody([blob, join(store, 'index.json'), hello], [hello]);
      assert.deepEqual(got, { read: ['EACCES', 'EACCES', 'EACCES'], exec: ['EACCES'] });
    });
  }

  test('native with --snapshot-root outside the store: that root is 0700 too', async () => {
    const parent = await openParent();
    const snapshotRoot = join(parent, 'snaps');
    await pull(join(parent, 'store'), 'native', '--snapshot-root', snapshotRoot);
    assert.equal(await mode(snapshotRoot), '700');
    const hello = await snapshotFile(snapshotRoot, 'native', 'usr/bin/hello');
    assert.deepEqual(asNobody([hello], [hello]), { read: ['EACCES'], exec: ['EACCES'] });
  });

  test('a store and snapshot root an older version left 0755/0644/0711 are closed on the next open', async () => {
    const parent = await openParent();
    const store = join(parent, 'store');
    await pull(store, 'native');
    const snapshotRoot = join(store, 'snapshots', 'native');
    // What an older stratum left behind.
    for (const dir of [store, join(store, 'blobs'), join(store, 'blobs', 'sha256'), join(store, 'ingest'), join(store, 'snapshots')]) await chmod(dir, 0o755);
    for (const b of await readdir(join(store, 'blobs', 'sha256'))) await chmod(join(store, 'blobs', 'sha256', b), 0o644);
    for (const dir of [snapshotRoot, join(snapshotRoot, 'snapshots')]) await chmod(dir, 0o711);
    const blob = join(store, 'blobs', 'sha256', fixtures.base.layers[0]!.digest.slice('sha256:'.length));
    const hello = await snapshotFile(snapshotRoot, 'native', 'usr/bin/hello');
    // The hole this closes: as left, nobody reads the blob and runs the image's binary.
    assert.deepEqual(asNobody([blob], [hello]), { read: ['ok'], exec: ['ok'] });

    await pull(store, 'native');
    for (const dir of [store, join(store, 'blobs'), snapshotRoot, join(snapshotRoot, 'snapshots')]) assert.equal(await mode(dir), '700', dir);
    assert.deepEqual(asNobody([blob, hello], [hello]), { read: ['EACCES', 'EACCES'], exec: ['EACCES'] });
  });
});
