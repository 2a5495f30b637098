/**
 * Image mutation (issue 11): engine.image(ref) as an immutable value, config changes visible in
 * inspect, layers appended from a directory, a tar and a snapshot, the result unpacked on
 * overlay (and by umoci, and read by skopeo from the store itself); reproducible layers under
 * an epoch on overlay and native; `commit --change` and SOURCE_DATE_EPOCH through the CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Engine } from '../../src/engine/engine.js';
import { applyChanges } from '../../src/image/changes.js';
import { isStratumError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { pushFixtures } from '../fixtures/images.js';
import { isolatedCliEnv, runCli, runCliOk } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { umociUnpack } from '../helpers/tools.js';
import { assertSameTree, snapshotTree } from '../helpers/tree.js';

const exec = promisify(execFile);
const tmp = new TempDirs();

describe('applyChanges: docker commit --change', () => {
  test('ENV, LABEL, CMD, ENTRYPOINT, USER, WORKDIR, EXPOSE, VOLUME, STOPSIGNAL as docker applies them', () => {
    const base = { Env: ['PATH=/bin', 'A=old'], Cmd: ['/bin/sh'], WorkingDir: '/srv', Labels: { keep: '1' } };
    const out = applyChanges(base, [
      'ENV A=b C="d e" F=g\\ h',
      'ENV LEGACY some value',
      'LABEL org.x="y z" keep=2',
      'WORKDIR app',
      'USER 1000:1000',
      'EXPOSE 80 53/udp 8000-8002',
      'VOLUME ["/data", "/logs"]',
      'VOLUME /cache',
      'STOPSIGNAL SIGTERM',
      'ENTRYPOINT ["/entry"]',
    ]);
    assert.deepEqual(out.Env, ['PATH=/bin', 'A=b', 'C=d e', 'F=g h', 'LEGACY=some value']);
    assert.deepEqual(out.Labels, { keep: '2', 'org.x': 'y z' });
    assert.equal(out.WorkingDir, '/srv/app');
    assert.equal(out.User, '1000:1000');
    assert.deepEqual(Object.keys(out.ExposedPorts as object), ['80/tcp', '53/udp', '8000/tcp', '8001/tcp', '8002/tcp']);
    assert.deepEqual(Object.keys(out.Volumes as object), ['/data', '/logs', '/cache']);
    assert.equal(out.StopSignal, 'SIGTERM');
    assert.deepEqual(out.Entrypoint, ['/entry']);
    assert.equal(out.Cmd, undefined, 'an ENTRYPOINT clears the inherited Cmd');
    assert.deepEqual(base.Env, ['PATH=/bin', 'A=old'], 'the input is not changed');

    const shell = applyChanges(base, ['CMD ["sh"]', 'ENTRYPOINT echo hi', 'cmd echo "a b"']);
    assert.deepEqual(shell.Entrypoint, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(shell.Cmd, ['/bin/sh', '-c', 'echo "a b"'], 'shell form; CMD before ENTRYPOINT is kept too');
    assert.deepEqual(applyChanges({ Shell: ['/bin/bash', '-lc'] }, ['CMD run']).Cmd, ['/bin/bash', '-lc', 'run']);
    assert.deepEqual(applyChanges({}, ['CMD ["sh"]', 'ENTRYPOINT ["/e"]']).Cmd, ['sh']);
  });

  test('errors are InvalidChangeError (ERR_INVALID_CHANGE)', () => {
    for (const bad of ['RUN make', 'FROM x', 'ENV', 'ENV A', 'LABEL novalue', 'EXPOSE http', 'EXPOSE 70000', 'USER a b', 'ENV A="unterminated', '', 'VOLUME [""]']) {
      assert.throws(() => applyChanges({}, [bad]), (err: unknown) => isStratumError(err, 'ERR_INVALID_CHANGE'), bad);
    }
  });
});

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: mounts, owners';
  for (const bin of ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

describe('engine.image(): mutate, append, write', () => {
  let registry: TestRegistry;
  let env: NodeJS.ProcessEnv;
  let app: string;
  before(async () => {
    if (MISSING) return;
    registry = await startRegistry();
    await pushFixtures(registry);
    env = isolatedCliEnv(await tmp.make('mutate-home'));
    app = `${registry.host}/library/app:1`;
  });
  after(async () => {
    await registry?.stop();
    await tmp.cleanup();
  });

  const cli = (...args: string[]) => runCliOk(args, env);

  /** A store with app:1 pulled and unpacked on `driver`, and an Engine on it. */
  async function storeWith(driver: 'overlay' | 'native'): Promise<{ store: string; engine: Engine }> {
    const store = await tmp.make(`mutate-${driver}`);
    await cli('pull', '--store', store, '--snapshotter', driver, '--quiet', app);
    return { store, engine: await Engine.open({ root: store, storageDriver: driver, env }) };
  }

  /** A small tree with what a layer holds: dirs, files, modes, a symlink, an owner. */
  async function makeTree(dir: string, content = 'hello\n'): Promise<void> {
    await mkdir(join(dir, 'opt/tool/bin'), { recursive: true });
    await writeFile(join(dir, 'opt/tool/bin/run'), '#!/bin/sh\necho run\n');
    await chmod(join(dir, 'opt/tool/bin/run'), 0o755);
    await writeFile(join(dir, 'opt/tool/README'), content);
    await symlink('bin/run', join(dir, 'opt/tool/run'));
    await mkdir(join(dir, 'etc'), { recursive: true });
    await writeFile(join(dir, 'etc/tool.conf'), 'x=1\n');
    await exec('chown', ['-h', '1000:1000', join(dir, 'etc/tool.conf')]);
  }

  async function rootfsOf(engine: Engine, name: string): Promise<Awaited<ReturnType<typeof snapshotTree>>> {
    const dir = await tmp.make('mutate-ro');
    await engine.mount(name, dir);
    try {
      return await snapshotTree(dir);
    } finally {
      await engine.unmount(dir);
    }
  }

  test('config changes, annotations, a dir layer and a zstd tar layer: inspect, overlay unpack, skopeo and umoci agree', { timeout: 180_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const { store, engine } = await storeWith('overlay');
    try {
      const src = await tmp.make('mutate-src');
      await makeTree(src);
      const tarDir = await tmp.make('mutate-tarsrc');
      await mkdir(join(tarDir, 'srv'));
      await writeFile(join(tarDir, 'srv/index.html'), '<h1>hi</h1>\n');
      const tarFile = join(await tmp.make('mutate-tar'), 'layer.tar.gz');
      await exec('tar', ['-C', tarDir, '-czf', tarFile, 'srv']);

      const base = await engine.image(app);
      const img = base
        .withConfig({ Env: ['PATH=/usr/bin', 'A=b'], Cmd: ['/opt/tool/run'], User: '1000', WorkingDir: '/opt/tool', Labels: { 'org.example': 'yes' }, ExposedPorts: { '8080/tcp': {} }, Volumes: { '/data': {} }, StopSignal: 'SIGINT' })
        .withChanges(['ENV C=d'])
        .withAnnotations({ 'org.opencontainers.image.title': 'mutated' })
        .appendLayer({ dir: src }, { createdBy: 'COPY src /', comment: 'from a dir' })
        .appendLayer({ tar: tarFile }, { createdBy: 'ADD layer.tar.gz /', compression: 'zstd', level: 5 })
        .withHistory({ created_by: 'LABEL org.example=yes', empty_layer: true })
        .withCreated(new Date('2024-01-02T03:04:05Z'));
      assert.equal(base.layers.length, 2, 'the base value is unchanged');
      assert.equal(img.layers.length, 4);
      const written = await img.write('mutated/app:1');
      assert.equal(written.layers.length, 4);
      assert.equal(written.layers[2]!.mediaType, MediaType.OciLayerGzip);
      assert.equal(written.layers[3]!.mediaType, MediaType.OciLayerZstd);

      const inspected = await engine.inspect('mutated/app:1');
      assert.equal(inspected.id, written.id);
      const cfg = inspected.config.config as Record<string, unknown>;
      assert.deepEqual(cfg.Env, ['PATH=/usr/bin', 'A=b', 'C=d']);
      assert.deepEqual(cfg.Cmd, ['/opt/tool/run']);
      assert.equal(cfg.User, '1000');
      assert.equal(cfg.WorkingDir, '/opt/tool');
      assert.deepEqual(cfg.Labels, { 'org.example': 'yes' });
      assert.deepEqual(cfg.ExposedPorts, { '8080/tcp': {} });
      assert.deepEqual(cfg.Volumes, { '/data': {} });
      assert.equal(cfg.StopSignal, 'SIGINT');
      assert.equal(inspected.config.created, '2024-01-02T03:04:05.000Z');
      assert.equal(inspected.manifest.annotations?.['org.opencontainers.image.title'], 'mutated');
      const history = inspected.config.history!;
      assert.deepEqual(history.slice(-3).map((h) => h.created_by), ['COPY src /', 'ADD layer.tar.gz /', 'LABEL org.example=yes']);
      assert.equal(history.at(-3)!.comment, 'from a dir');
      assert.equal(inspected.config.rootfs.diff_ids.length, 4);

      // The expected tree: app:1's, with the dir and the tar laid over it.
      const expected = await tmp.make('mutate-expected');
      const appView = await tmp.make('mutate-appview');
      await engine.mount(app, appView);
      try {
        await exec('cp', ['-a', `${appView}/.`, expected]);
      } finally {
        await engine.unmount(appView);
      }
      await exec('cp', ['-a', `${src}/.`, expected]);
      await exec('tar', ['-C', expected, '-xzf', tarFile]);
      const want = await snapshotTree(expected);
      const ignore = (p: string) => p === '.';
      assertSameTree(want, await rootfsOf(engine, 'mutated/app:1'), { names: ['expected', 'overlay'], ignore });

      // skopeo reads the store as the OCI layout it is.
      const { stdout } = await exec('skopeo', ['inspect', `oci:${store}:docker.io/mutated/app:1`]);
      const sk = JSON.parse(stdout) as { Labels: Record<string, string>; Layers: string[]; Env: string[] };
      assert.deepEqual(sk.Labels, { 'org.example': 'yes' });
      assert.deepEqual(sk.Layers, written.layers.map((l) => l.digest));
      assert.deepEqual(sk.Env, ['PATH=/usr/bin', 'A=b', 'C=d']);

      // Pushed and unpacked by umoci (the zstd layer swapped for gzip: umoci 0.4 reads no zstd).
      const gz = await (await engine.image('mutated/app:1')).rebase(await engine.image('mutated/app:1'), await engine.image(app));
      assert.equal(gz.layers.length, 2);
      const viaDir = (await engine.image(app)).appendLayer({ dir: src }).appendLayer({ tar: tarFile });
      await viaDir.write('mutated/app:gz');
      const dest = `${registry.host}/mutated/app:gz`;
      await cli('push', '--store', store, 'mutated/app:gz', dest);
      assertSameTree(want, await snapshotTree(await umociUnpack(dest, await tmp.make('mutate-umoci'))), { names: ['expected', 'umoci'], ignore });
    } finally {
      await engine.close();
    }
  });

  test('appendLayer from a snapshot and from diffOf; rebase onto another base', { timeout: 120_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const { engine } = await storeWith('overlay');
    try {
      const rw = await tmp.make('mutate-rw');
      await engine.mount(app, rw, { rw: 'work' });
      let expected;
      try {
        await makeTree(rw);
        await exec('rm', ['-rf', join(rw, 'usr/bin/hi'), join(rw, 'home/user')]);
        expected = await snapshotTree(rw);
        // The snapshot still mounted, as commit allows.
        await (await engine.image(app)).appendLayer({ snapshot: 'work' }).write('mutated/snap:1');
      } finally {
        await engine.unmount(rw);
      }
      // Unmounted: through a temporary mount; diffOf the image's top chainID and the snapshot gives the same layer.
      const top = (await engine.inspect(app)).chainIds.at(-1)!;
      const a = await (await engine.image(app)).appendLayer({ snapshot: 'work' }).write('mutated/snap:2');
      const b = await (await engine.image(app)).appendLayer({ diffOf: [top, 'work'] }).write('mutated/snap:3');
      assert.equal(a.layers.at(-1)!.diffId, b.layers.at(-1)!.diffId);
      const ignore = (p: string) => p === '.';
      assertSameTree(expected, await rootfsOf(engine, 'mutated/snap:1'), { names: ['snapshot', 'image'], ignore });
      assertSameTree(expected, await rootfsOf(engine, 'mutated/snap:3'), { names: ['snapshot', 'diffOf image'], ignore });

      // Rebase: app:1 = base layer + app layer; onto an image of the base layer only.
      const baseOnly = `${registry.host}/library/base:1`;
      await engine.pull(baseOnly);
      const rebased = (await engine.image('mutated/snap:1')).rebase(await engine.image(app), await engine.image(baseOnly));
      const r = await rebased.write('mutated/rebased:1');
      const snap = await engine.inspect('mutated/snap:1');
      const baseImg = await engine.inspect(baseOnly);
      assert.deepEqual(
        r.layers.map((l) => l.diffId),
        [...baseImg.config.rootfs.diff_ids, snap.config.rootfs.diff_ids.at(-1)],
      );
      await assert.rejects(async () => (await engine.image(baseOnly)).rebase(await engine.image(app), await engine.image(baseOnly)), (err: unknown) => isStratumError(err, 'ERR_FAILED_PRECONDITION'));
      await assert.rejects(async () => (await engine.image(app)).appendLayer({ dir: '/nonexistent-dir' }).write('x:1'), (err: unknown) => isStratumError(err, 'ERR_LAYER_SOURCE'));
      const img = await engine.image(app);
      for (const bad of [{ compression: 'gzip', level: 10 }, { compression: 'zstd', level: 0 }, { compression: 'lz4' }] as const) {
        assert.throws(() => img.appendLayer({ dir: '/' }, bad as never), (err: unknown) => isStratumError(err, 'ERR_INVALID_ARGUMENT'), JSON.stringify(bad));
      }
      assert.throws(() => img.appendLayer({ dir: '/', snapshot: 'x' } as never), (err: unknown) => isStratumError(err, 'ERR_INVALID_ARGUMENT'));
      await assert.rejects(img.write(`x@sha256:${'a'.repeat(64)}`), (err: unknown) => isStratumError(err, 'ERR_INVALID_ARGUMENT'));
      const empty = await (await engine.image('scratch')).appendLayer({ dir: (await tmp.make('mutate-empty')) }).write('mutated/scratch:1');
      assert.equal(empty.layers.length, 1);
      assert.equal((await engine.inspect('mutated/scratch:1')).config.os, 'linux');
    } finally {
      await engine.close();
    }
  });

  test('reproducible: the same tree gives the same layer and manifest digests, every run, overlay and native; another epoch another digest', { timeout: 240_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const epoch = 1_700_000_000;
    const results: Array<{ how: string; layer: string; manifest: string }> = [];
    for (const driver of ['overlay', 'native'] as const) {
      for (const run of [1, 2]) {
        const { engine } = await storeWith(driver);
        try {
          // A fresh tree each run: new inodes, new mtimes (now, clamped to the epoch).
          const src = await tmp.make(`mutate-repro-${driver}-${run}`);
          await makeTree(src);
          const fromDir = await (await engine.image(app, { epoch })).appendLayer({ dir: src }, { createdBy: 'COPY . /' }).withConfig({ Cmd: ['run'] }).write('repro/dir:1');
          results.push({ how: `dir ${driver} ${run}`, layer: fromDir.layers.at(-1)!.digest, manifest: fromDir.manifest.digest });
          // The gzip header: no mtime, no name, OS byte 255 (as Go writes it), whatever machine wrote it.
          const head = (await engine.store.read(fromDir.layers.at(-1)!.digest, 1 << 30)).subarray(0, 10);
          assert.deepEqual([...head], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

          // A tar of that tree (GNU tar: unames, atimes in PAX) is re-encoded with the mtimes clamped.
          const tarFile = join(await tmp.make(`mutate-repro-tar-${driver}-${run}`), 'l.tar.gz');
          await exec('tar', ['-C', src, '--sort=name', '--format=posix', '-czf', tarFile, '.']);
          const fromTar = await (await engine.image(app, { epoch })).appendLayer({ tar: tarFile }, { createdBy: 'ADD l.tar.gz /' }).write('repro/tar:1');
          results.push({ how: `tar ${driver} ${run}`, layer: fromTar.layers.at(-1)!.digest, manifest: fromTar.manifest.digest });
          assertSameTree(await snapshotTree(src), await rootfsOf(engine, 'repro/tar:1'), { names: ['src', 'tar layer'], ignore: (p) => p === '.' || !(p.startsWith('opt') || p.startsWith('etc/tool')) });

          const rw = await tmp.make(`mutate-repro-rw-${driver}-${run}`);
          await engine.mount(app, rw, { rw: 'build' });
          try {
            await makeTree(rw);
            const fromSnap = await (await engine.image(app, { epoch })).appendLayer({ snapshot: 'build' }, { createdBy: 'RUN make' }).write('repro/snap:1');
            results.push({ how: `snapshot ${driver} ${run}`, layer: fromSnap.layers.at(-1)!.digest, manifest: fromSnap.manifest.digest });
          } finally {
            await engine.unmount(rw);
          }
          if (driver === 'overlay' && run === 1) {
            const other = await (await engine.image(app, { epoch: epoch + 1 })).appendLayer({ dir: src }, { createdBy: 'COPY . /' }).withConfig({ Cmd: ['run'] }).write('repro/dir:other');
            assert.notEqual(other.layers.at(-1)!.digest, fromDir.layers.at(-1)!.digest, 'another epoch, another layer digest');
            assert.notEqual(other.manifest.digest, fromDir.manifest.digest);
            // Old mtimes (before the epoch) are kept: the clamp only lowers.
            await utimes(join(src, 'etc/tool.conf'), 1_600_000_000, 1_600_000_000);
            const old = await (await engine.image(app, { epoch })).appendLayer({ dir: src }, { createdBy: 'COPY . /' }).withConfig({ Cmd: ['run'] }).write('repro/dir:old');
            assert.notEqual(old.layers.at(-1)!.digest, fromDir.layers.at(-1)!.digest, 'an mtime before the epoch is kept');
            const cfg = (await engine.inspect('repro/dir:1')).config;
            assert.equal(cfg.created, new Date(epoch * 1000).toISOString());
            assert.equal(cfg.history!.at(-1)!.created, new Date(epoch * 1000).toISOString());
          }
        } finally {
          await engine.close();
        }
      }
    }
    for (const kind of ['dir', 'tar', 'snapshot']) {
      const group = results.filter((r) => r.how.startsWith(kind));
      assert.equal(new Set(group.map((r) => r.layer)).size, 1, `${kind}: one layer digest: ${JSON.stringify(group)}`);
      assert.equal(new Set(group.map((r) => r.manifest)).size, 1, `${kind}: one manifest digest: ${JSON.stringify(group)}`);
    }
  });

  test('CLI: commit --change as docker has it; SOURCE_DATE_EPOCH makes the commit reproducible', { timeout: 120_000 }, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const store = await tmp.make('mutate-cli');
    const flags = ['--store', store, '--snapshotter', 'overlay'];
    await cli('pull', ...flags, '--quiet', app);
    const rw = await tmp.make('mutate-cli-rw');
    await cli('mount', ...flags, '--rw', 'work', app, rw);
    try {
      await makeTree(rw);
      const changes = ['--change', 'ENV A=b', '--change', 'CMD ["sh"]', '-c', 'EXPOSE 80', '--change', 'LABEL a="b c"', '--change', 'WORKDIR /opt', '--change', 'USER nobody'];
      const commit = async (name: string, epoch?: string) => {
        const r = await runCli(['commit', ...flags, '--json', ...changes, 'work', name], { ...env, ...(epoch !== undefined ? { SOURCE_DATE_EPOCH: epoch } : {}) });
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as { id: string; manifest: { digest: string }; layer: { digest: string } };
      };
      const one = await commit('cli/app:1', '1700000000');
      const two = await commit('cli/app:2', '1700000000');
      const three = await commit('cli/app:3', '1700000001');
      assert.equal(one.layer.digest, two.layer.digest);
      assert.equal(one.id, two.id);
      assert.equal(one.manifest.digest, two.manifest.digest);
      assert.notEqual(one.layer.digest, three.layer.digest);
      assert.notEqual(one.id, three.id);

      const inspected = JSON.parse(await cli('inspect', ...flags, 'cli/app:1')) as Array<{ Config?: Record<string, unknown>; config?: { config: Record<string, unknown> } }> | Record<string, unknown>;
      const text = JSON.stringify(inspected);
      for (const want of ['"A=b"', '"Cmd":["sh"]', '"80/tcp"', '"a":"b c"', '"WorkingDir":"/opt"', '"User":"nobody"']) assert.ok(text.includes(want), `${want} in inspect: ${text.slice(0, 2000)}`);
      assert.ok(text.includes('2023-11-14T22:13:20'), 'created is the epoch');

      const bad = await runCli(['commit', ...flags, '--change', 'RUN make', 'work', 'cli/bad:1'], env);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /RUN is not a change docker commit accepts .*\(ERR_INVALID_CHANGE\)/);
      const badEpoch = await runCli(['commit', ...flags, 'work', 'cli/bad:1'], { ...env, SOURCE_DATE_EPOCH: 'yesterday' });
      assert.equal(badEpoch.code, 1);
      assert.match(badEpoch.stderr, /SOURCE_DATE_EPOCH/);
    } finally {
      await cli('unmount', ...flags, rw);
    }
  });
});
