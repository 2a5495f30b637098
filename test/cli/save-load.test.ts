/**
 * `stratum save | docker load` and `docker save | stratum load` through real pipes against a
 * private Docker 20.10 daemon: names and image IDs preserved both ways; a truncated archive on
 * stdin tags nothing and prints one line. Skips loudly where dockerd cannot start.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { dockerMissing, tryStartDockerd, type PrivateDockerd } from '../differential/docker.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';
import { CLI, isolatedCliEnv, runCli } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const dirs = new TempDirs();
const STRATUM = `'${process.execPath}' '${CLI}'`;

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: dockerd';
  if (!existsSync('/usr/bin/docker-registry')) return '/usr/bin/docker-registry is not installed';
  return dockerMissing();
}

describe('stratum save | docker load, docker save | stratum load (Docker 20.10, real pipes)', { skip: missing() ?? false }, () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  let docker: PrivateDockerd | undefined;
  let dockerFailed: string | undefined;
  let env: NodeJS.ProcessEnv;
  let store: string;

  before(async () => {
    registry = await startRegistry({ schema1: true });
    fixtures = await pushFixtures(registry);
    env = isolatedCliEnv(await dirs.make('home'));
    store = await dirs.make('store');
    for (const f of [fixtures.base, fixtures.app]) {
      const r = await runCli(['pull', '--no-unpack', '-q', '--store', store, f.reference], env);
      assert.equal(r.code, 0, r.stderr);
    }
    ({ docker, failed: dockerFailed } = await tryStartDockerd(registry.host));
  });
  after(async () => {
    await docker?.stop();
    await registry?.stop();
    await dirs.cleanup();
  });

  const shell = (script: string) => exec('bash', ['-o', 'pipefail', '-c', script], { env: { ...process.env, ...env, ...docker!.env }, maxBuffer: 64 << 20 });

  test('both directions keep names and IDs', { timeout: 300_000 }, async (t) => {
    if (dockerFailed) return t.skip(`LOUD SKIP: dockerd cannot start here: ${dockerFailed}`);
    const loaded = await shell(`${STRATUM} save --store '${store}' ${fixtures.app.reference} ${fixtures.base.reference} | /usr/bin/docker load`);
    assert.match(loaded.stdout, new RegExp(`Loaded image: ${fixtures.app.reference.replace(/\./g, '\\.')}`));
    for (const f of [fixtures.app, fixtures.base]) {
      const [inspected] = JSON.parse(await docker!.docker(['image', 'inspect', f.reference])) as Array<{ Id: string }>;
      assert.equal(inspected!.Id, f.configDigest, f.reference);
    }

    await docker!.docker(['tag', fixtures.app.reference, 'stratum-test/roundtrip:2']);
    const back = await dirs.make('store');
    const r = await shell(`/usr/bin/docker save stratum-test/roundtrip:2 ${fixtures.base.reference} | ${STRATUM} load --store '${back}'`);
    assert.match(r.stdout, /^Loaded image: docker\.io\/stratum-test\/roundtrip:2$/m);
    assert.equal((await runCli(['inspect', '--store', back, '--format', '{{.Id}}', 'stratum-test/roundtrip:2'], env)).stdout.trim(), fixtures.app.configDigest);
    assert.equal((await runCli(['inspect', '--store', back, '--format', '{{.Id}}', fixtures.base.reference], env)).stdout.trim(), fixtures.base.configDigest);
    const fsck = await runCli(['fsck', '--store', back], env);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);

    // The OCI flavour, read by skopeo.
    const archive = join(await dirs.make('oci'), 'app.tar');
    assert.equal((await runCli(['save', '--format', 'oci', '-o', archive, '--store', store, fixtures.app.reference], env)).code, 0);
    const skopeo = JSON.parse((await exec('skopeo', ['inspect', `oci-archive:${archive}:${fixtures.app.reference}`])).stdout) as { Digest: string };
    assert.equal(skopeo.Digest, fixtures.app.digest);
  });

  test('a truncated archive on stdin tags nothing; a missing -i file is named', async (t) => {
    if (dockerFailed) return t.skip(`LOUD SKIP: dockerd cannot start here: ${dockerFailed}`);
    const target = await dirs.make('store');
    const cut = await shell(`${STRATUM} save --store '${store}' ${fixtures.app.reference} | head -c 3000 | ${STRATUM} load --store '${target}'; echo "status=$?"`).catch((e: { stdout: string; stderr: string }) => e);
    assert.match(cut.stdout, /status=1/);
    assert.match(cut.stderr, /ERR_INVALID_ARCHIVE/);
    assert.doesNotMatch(cut.stderr, /\n\s+at /);
    assert.equal((await runCli(['images', '-q', '--store', target], env)).stdout, '');
    const none = await runCli(['load', '-i', '/nonexistent/a.tar', '--store', target], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /cannot read \/nonexistent\/a\.tar: no such file/);
  });
});
