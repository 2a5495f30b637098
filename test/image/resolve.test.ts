/**
 * Images by every name a user sees, and a store holding an index (written by `skopeo copy --all`)
 * that every listing command survives. Real registry, real skopeo.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { shortDigest } from '../../src/oci/digest.js';
import { hostPlatform, formatPlatform } from '../../src/oci/platform.js';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { isolatedCliEnv, runCli, type CliResult } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

const run = promisify(execFile);
const dirs = new TempDirs();
const MISSING = !existsSync('/usr/bin/docker-registry') ? '/usr/bin/docker-registry is not installed' : !existsSync('/usr/bin/skopeo') ? 'skopeo is not installed' : undefined;

let registry: TestRegistry | undefined;
let fixtures: PushedFixtures;
let env: NodeJS.ProcessEnv = {};
let store = '';
const cli = (...args: string[]): Promise<CliResult> => runCli([...args, '--store', store], env);
async function ok(...args: string[]): Promise<string> {
  const r = await cli(...args);
  assert.equal(r.code, 0, `stratum ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const inspectId = async (name: string) => (JSON.parse(await ok('inspect', name)) as Array<{ Id: string }>)[0]!.Id;

before(async () => {
  if (MISSING) return;
  registry = await sharedRegistry({ schema1: true });
  fixtures = await pushFixtures(registry);
  const home = await dirs.make('resolve-home');
  env = isolatedCliEnv(home);
  store = join(await dirs.make('resolve'), 'store');
  await ok('pull', '--no-unpack', fixtures.base.reference);
  await ok('pull', '--no-unpack', fixtures.app.reference);
  // The multi-platform index as skopeo stores it: every platform, under a bare, unnormalised name.
  await run('skopeo', ['--insecure-policy', 'copy', '--all', '--quiet', '--src-tls-verify=false', `docker://${fixtures.multi.reference}`, `oci:${store}:multi`]);
});

after(async () => {
  await registry?.stop();
  await dirs.cleanup();
});

describe('images by every name', () => {
  test('tag, full name, IMAGE ID prefix, sha256:ID, repo@digest as pull printed it, short name', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const id = fixtures.base.configDigest;
    const forms = [
      fixtures.base.reference,
      shortDigest(id), // as `images` prints it
      id.slice(7, 19),
      id,
      `${registry!.host}/library/base@${fixtures.base.digest}`,
      'library/base:1', // short: the repository path of the one stored image with it
      'base:1',
    ];
    for (const form of forms) assert.equal(await inspectId(form), id, form);
    const history = await ok('history', shortDigest(id));
    assert.match(history, /CREATED BY/);
  });

  test('missing and ambiguous names are typed errors that name the input', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const missing = await cli('inspect', 'nothere:1');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /image nothere:1 not found in the store .*pull it first \(ERR_NOT_FOUND\)/);
    // base and app share no config, but both IDs start with some hex digit: a one-digit prefix is too short to be an ID.
    const short = await cli('inspect', 'a');
    assert.equal(short.code, 1);
    assert.match(short.stderr, /ERR_NOT_FOUND/);
    // Two tags of one repository path under different registries make the short name ambiguous.
    await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${fixtures.base.reference}`, `oci:${store}:other.example/library/base:1`]);
    try {
      const amb = await cli('inspect', 'base:1');
      assert.equal(amb.code, 1);
      assert.match(amb.stderr, /image name "base:1" is ambiguous: it matches .*library\/base:1, other\.example\/library\/base:1; name one of them \(ERR_INVALID_ARGUMENT\)/);
      // rmi by ID with two tags must be forced, as docker's.
      const rmi = await cli('rmi', shortDigest(fixtures.base.configDigest));
      assert.equal(rmi.code, 1);
      assert.match(rmi.stderr, /must be forced/);
    } finally {
      assert.match(await ok('rmi', 'other.example/library/base:1'), /Untagged: other\.example\/library\/base:1/);
    }
  });
});

describe('a store with an index entry (skopeo copy --all)', () => {
  test('images, df and inspect list it per platform; the host platform is picked; --platform of a missing one lists the others', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const images = await ok('images', '--format', 'json');
    const rows = images.trim().split('\n').map((l) => JSON.parse(l) as { Name: string; Platform: string; Digest: string });
    const multi = rows.filter((r) => r.Name === 'multi');
    assert.deepEqual(multi.map((r) => r.Platform).sort(), fixtures.multi.manifests.map((m) => formatPlatform(m.platform)).sort());
    assert.ok(multi.every((r) => r.Digest === fixtures.multi.digest));
    assert.ok(rows.some((r) => r.Name.endsWith('library/app:1')));
    assert.match(await ok('images'), /^multi\s+<none>|^multi\s+/m);

    const df = JSON.parse(await ok('df', '-v', '--format', 'json'));
    assert.equal(df.Images.filter((i: { Name: string }) => i.Name === 'multi').length, 3);

    const host = formatPlatform(hostPlatform());
    const want = fixtures.multi.manifests.find((m) => formatPlatform(m.platform) === host);
    if (want) assert.equal(await inspectId('multi'), want.configDigest);
    const arm = fixtures.multi.manifests.find((m) => m.platform.architecture === 'arm')!;
    assert.equal(await inspectId(arm.configDigest), arm.configDigest, 'a platform image by its ID');
    assert.equal(await inspectId(`docker.io/library/multi@${arm.digest}`), arm.configDigest, "a platform's manifest digest inside the index");
    // --platform picks from the index for the other commands too.
    assert.equal((await ok('inspect', '--platform', 'linux/arm/v7', '--format', '{{.Id}}', 'multi')).trim(), arm.configDigest);
    assert.equal((await ok('history', '--platform', 'linux/arm/v7', '--no-trunc', '-q', 'multi')).split('\n')[0], arm.configDigest);
  });

  test('a tag whose manifest blob is gone is a warning; the other images still list', async (t) => {
    if (MISSING) return t.skip(MISSING);
    const broken = join(await dirs.make('resolve-broken'), 'store');
    await runCli(['pull', '--no-unpack', '--store', broken, fixtures.base.reference], env);
    await runCli(['pull', '--no-unpack', '--store', broken, fixtures.app.reference], env);
    await unlink(join(broken, 'blobs', 'sha256', fixtures.app.digest.slice(7)));
    const r = await runCli(['images', '--store', broken], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /library\/base\s+1|base\s+1/);
    assert.match(r.stderr, /warning: cannot read image .*library\/app:1/);
    const df = await runCli(['df', '--store', broken], env);
    assert.equal(df.code, 0, df.stderr);
  });
});
