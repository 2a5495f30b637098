import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

describe('stratum pull with credentials from Docker config.json (real registry with htpasswd)', () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  const user = 'builder';
  const password = 's3cret-Pa55word';

  before(async () => {
    registry = await startRegistry({ htpasswd: { user, password } });
    fixtures = await pushFixtures(registry);
  });
  after(async () => {
    await registry?.stop();
    await dirs.cleanup();
  });

  async function dockerConfig(auths: Record<string, unknown>): Promise<NodeJS.ProcessEnv> {
    const dir = await dirs.make('docker');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths }));
    return { DOCKER_CONFIG: dir, XDG_CONFIG_HOME: dir, STRATUM_CONFIG: '' };
  }

  it('uses the auths entry for the registry', async () => {
    const env = await dockerConfig({ [registry.host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } });
    const r = await runCli(['pull', '--store', await dirs.make('store'), `${registry.host}/library/base:1`], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Digest: ${fixtures.base.digest}$`, 'm'));
  });

  it('wrong or missing credentials: a clear error naming the registry, never the secret', async () => {
    const wrong = 'not-the-password';
    for (const env of [await dockerConfig({ [registry.host]: { username: user, password: wrong } }), await dockerConfig({})]) {
      const store = await dirs.make('store');
      const r = await runCli(['pull', '--store', store, `${registry.host}/library/base:1`], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`authentication to ${registry.host.replace(/\./g, '\\.')} failed.*\\(ERR_UNAUTHORIZED\\)`));
      assert.doesNotMatch(r.stderr + r.stdout, new RegExp(wrong));
      assert.equal((await runCli(['images', '--store', store, '--format', 'json'])).stdout, '');
    }
  });

  it('login --password-stdin checks and stores the credentials; pull then works; logout removes them; a wrong password stores nothing', async () => {
    const dir = await dirs.make('docker');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ experimental: 'enabled', auths: {} }));
    const env = { DOCKER_CONFIG: dir, XDG_CONFIG_HOME: dir, STRATUM_CONFIG: '' };
    const login = async (secret: string) => {
      const { spawn } = await import('node:child_process');
      const { CLI } = await import('../helpers/cli.js');
      const child = spawn(process.execPath, [CLI, 'login', '-u', user, '--password-stdin', registry.host], { env: { ...process.env, ...env } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.stderr.on('data', (d: Buffer) => (out += d));
      child.stdin.end(`${secret}\n`);
      const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
      return { code, out };
    };
    const { readFile } = await import('node:fs/promises');
    const bad = await login('wrong-password');
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.out, /ERR_UNAUTHORIZED/);
    assert.doesNotMatch(bad.out, /wrong-password/);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).auths, {});

    const good = await login(password);
    assert.equal(good.code, 0, good.out);
    assert.match(good.out, /^Login Succeeded$/m);
    assert.doesNotMatch(good.out, new RegExp(password));
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    assert.equal(config.experimental, 'enabled', 'other keys of config.json are kept');
    assert.equal(Buffer.from(config.auths[registry.host].auth, 'base64').toString(), `${user}:${password}`);
    const pulled = await runCli(['pull', '--store', await dirs.make('store'), `${registry.host}/library/base:1`], env);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await runCli(['list-tags', `${registry.host}/library/base`], env)).stdout, '1\n');

    const out = await runCli(['logout', registry.host], env);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `Removing login credentials for ${registry.host}\n`);
    assert.equal(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).auths[registry.host], undefined);
    assert.equal((await runCli(['logout', registry.host], env)).stdout, `Not logged in to ${registry.host}\n`);
    const noTty = await runCli(['login', registry.host], env);
    assert.equal(noTty.code, 2);
    assert.match(noTty.stderr, /standard input is not a terminal/);
  });
});
