/**
 * login / logout: credentials checked against the real registry (htpasswd Basic auth, and a
 * Bearer token server in front through the fault proxy), then stored as docker stores them: in
 * config.json (atomic, 0600, other keys kept) or through a credential helper, a real external
 * program (a shell script on PATH that records what it was given). What is written reads back
 * with DockerConfigCredentials.
 */
import assert from 'node:assert/strict';
import { chmod, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient } from '../../src/registry/client.js';
import { DockerConfigCredentials } from '../../src/registry/credentials.js';
import { login, logout } from '../../src/registry/login.js';
import { Engine } from '../../src/engine/engine.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { TokenIssuer } from '../helpers/token-issuer.js';
import { FAST_RETRIES } from './setup.js';

const tmp = new TempDirs();
const user = 'deployer';
const password = 'l0gin-Secret-Pa55';
let registry: TestRegistry;
let open: TestRegistry;

before(async () => {
  registry = await startRegistry({ htpasswd: { user, password } });
  open = await startRegistry();
});
after(async () => {
  await registry?.stop();
  await open?.stop();
  await tmp.cleanup();
});

const OTHER_KEYS = {
  auths: { 'ghcr.io': { auth: Buffer.from('someone:tok').toString('base64') } },
  psFormat: 'table {{.ID}}',
  proxies: { default: { httpProxy: 'http://proxy:3128' } },
  HttpHeaders: { 'X-Meta': 'kept' },
  currentContext: 'default',
};

async function configDir(content?: object): Promise<{ dir: string; path: string }> {
  const dir = await tmp.make('docker-config');
  const path = join(dir, 'config.json');
  if (content) await writeFile(path, JSON.stringify(content, null, 2));
  return { dir, path };
}

async function readJson(path: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(path, 'utf8'));
}

function unauthorized(host: string) {
  return (err: unknown) => isStratumError(err, 'ERR_UNAUTHORIZED') && err.message.includes(host) && !err.message.includes(password) && !err.message.includes('wrong-pass');
}

describe('login to config.json', () => {
  test('good credentials: stored as auths[host].auth, mode 0600, other keys kept, read back, usable', async () => {
    const { path, dir } = await configDir(OTHER_KEYS);
    const r = await login(registry.host, { username: user, password }, { configPath: path });
    assert.deepEqual(r, { registry: registry.host, serverUrl: registry.host, storedIn: path, authenticated: true });
    const written = await readJson(path);
    assert.deepEqual(written.auths[registry.host], { auth: Buffer.from(`${user}:${password}`).toString('base64') });
    const { auths, ...rest } = written;
    const { auths: otherAuths, ...otherRest } = OTHER_KEYS;
    assert.deepEqual(rest, otherRest);
    assert.deepEqual(auths['ghcr.io'], otherAuths['ghcr.io']);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).sort(), ['config.json'], 'no temp file left');
    assert.deepEqual(await new DockerConfigCredentials({ configPath: path }).get(registry.host), { username: user, password });
    const client = new RegistryClient({ config: { retries: FAST_RETRIES }, credentials: new DockerConfigCredentials({ configPath: path }) });
    try {
      await assert.rejects(client.listTags(parseReference(`${registry.host}/nothing/here`)), (err) => isStratumError(err, 'ERR_NOT_FOUND'));
    } finally {
      await client.close();
    }
  });

  test('bad credentials: ERR_UNAUTHORIZED naming the registry, nothing written', async () => {
    const { path } = await configDir(OTHER_KEYS);
    const before = await readFile(path);
    await assert.rejects(login(registry.host, { username: user, password: 'wrong-pass' }, { configPath: path }), unauthorized(registry.host));
    assert.deepEqual(await readFile(path), before);
    const fresh = await configDir();
    await assert.rejects(login(registry.host, { username: 'nobody', password: 'wrong-pass' }, { configPath: fresh.path }), unauthorized(registry.host));
    assert.deepEqual(await readdir(fresh.dir), [], 'no config.json created');
  });

  test('no config dir yet: created; a registry that needs no auth still stores them (as docker does)', async () => {
    const { dir } = await configDir();
    const path = join(dir, 'sub', 'config.json');
    const r = await login(open.host, { username: 'u', password: 'p' }, { configPath: path });
    assert.equal(r.authenticated, false);
    assert.equal((await readJson(path)).auths[open.host].auth, Buffer.from('u:p').toString('base64'));
    assert.equal((await stat(join(dir, 'sub'))).mode & 0o777, 0o700);
  });

  test('another spelling of the same registry is replaced; Docker Hub uses https://index.docker.io/v1/', async () => {
    const { path } = await configDir({ auths: { [`http://${registry.host}`]: { auth: Buffer.from('old:old').toString('base64') }, 'ghcr.io': {} } });
    await login(registry.host, { username: user, password }, { configPath: path });
    assert.deepEqual(Object.keys((await readJson(path)).auths).sort(), [registry.host, 'ghcr.io'].sort());
    const hub = await login('docker.io', { username: 'me', password: 'hub' }, { configPath: path, skipCheck: true });
    assert.equal(hub.serverUrl, 'https://index.docker.io/v1/');
    assert.ok((await readJson(path)).auths['https://index.docker.io/v1/'].auth);
    assert.deepEqual(await new DockerConfigCredentials({ configPath: path }).get('docker.io'), { username: 'me', password: 'hub' });
  });

  test('a symlinked config.json is written through', async () => {
    const { dir, path } = await configDir(OTHER_KEYS);
    const link = join(dir, 'link.json');
    await symlink(path, link);
    await login(registry.host, { username: user, password }, { configPath: link });
    assert.ok((await readJson(path)).auths[registry.host]);
  });

  test('logout removes it and says whether there was anything; other keys kept', async () => {
    const { path } = await configDir(OTHER_KEYS);
    await login(registry.host, { username: user, password }, { configPath: path });
    assert.deepEqual(await logout(registry.host, { configPath: path }), { registry: registry.host, serverUrl: registry.host, removed: true });
    const after = await readJson(path);
    assert.deepEqual(after, OTHER_KEYS);
    assert.equal((await logout(registry.host, { configPath: path })).removed, false);
    const none = await configDir();
    assert.equal((await logout(registry.host, { configPath: none.path })).removed, false);
    assert.deepEqual(await readdir(none.dir), []);
  });

  test('a config.json that is not JSON is refused, untouched, without quoting it', async () => {
    const { path } = await configDir();
    await writeFile(path, `{"auths": {"x": {"auth": "${password}"`);
    await assert.rejects(login(registry.host, { username: user, password }, { configPath: path }), (err) => isStratumError(err, 'ERR_CREDENTIALS') && !err.message.includes(password));
  });
});

describe('login through a Bearer token server', () => {
  let issuer: TokenIssuer;
  let proxy: FaultProxy;
  before(async () => {
    issuer = await TokenIssuer.start({ users: { [user]: password } });
    proxy = (await FaultProxy.start(open.url)).requireBearer({ issuer });
  });
  after(async () => {
    await proxy?.stop();
    await issuer?.stop();
  });

  test('good credentials get a token with Basic auth; bad ones fail, nothing written', async () => {
    const { path, dir } = await configDir();
    await assert.rejects(login(proxy.host, { username: user, password: 'wrong-pass' }, { configPath: path }), unauthorized(proxy.host));
    assert.deepEqual(await readdir(dir), []);
    const r = await login(proxy.host, { username: user, password }, { configPath: path });
    assert.equal(r.authenticated, true);
    assert.ok(issuer.requests.some((q) => q.user === user && q.status === 200));
    assert.ok((await readJson(path)).auths[proxy.host].auth);
  });
});

describe('login with a credential helper', () => {
  /** A docker-credential-fake on PATH that keeps one secret in its directory and records every call. */
  async function fakeHelper(): Promise<{ dir: string; env: NodeJS.ProcessEnv; calls(): Promise<string[]> }> {
    const dir = await tmp.make('helper');
    const script = `#!/bin/sh
d="$(dirname "$0")"
input="$(cat)"
printf '%s %s\\n' "$1" "$input" >> "$d/calls"
case "$1" in
  store) printf '%s' "$input" > "$d/stored.json" ;;
  get) if [ -f "$d/stored.json" ]; then cat "$d/stored.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) if [ -f "$d/stored.json" ]; then rm "$d/stored.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
`;
    await writeFile(join(dir, 'docker-credential-fake'), script);
    await chmod(join(dir, 'docker-credential-fake'), 0o755);
    return {
      dir,
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
      calls: async () => (await readFile(join(dir, 'calls'), 'utf8').catch(() => '')).split('\n').filter(Boolean),
    };
  }

  for (const kind of ['credsStore', 'credHelpers'] as const) {
    test(`${kind}: store with {ServerURL,Username,Secret} on stdin, an empty auths entry, read back, erase`, async () => {
      const helper = await fakeHelper();
      const config = kind === 'credsStore' ? { ...OTHER_KEYS, credsStore: 'fake' } : { ...OTHER_KEYS, credHelpers: { [registry.host]: 'fake' } };
      const { path } = await configDir({ ...config, auths: { ...OTHER_KEYS.auths, [registry.host]: { auth: Buffer.from('old:plaintext').toString('base64') } } });
      await assert.rejects(login(registry.host, { username: user, password: 'wrong-pass' }, { configPath: path, env: helper.env }), unauthorized(registry.host));
      assert.deepEqual(await helper.calls(), [], 'bad credentials never reach the helper');

      const r = await login(registry.host, { username: user, password }, { configPath: path, env: helper.env });
      assert.equal(r.storedIn, 'docker-credential-fake');
      const calls = await helper.calls();
      assert.equal(calls.length, 1);
      assert.match(calls[0]!, /^store /);
      assert.deepEqual(JSON.parse(calls[0]!.slice('store '.length)), { ServerURL: registry.host, Username: user, Secret: password });
      const written = await readJson(path);
      assert.deepEqual(written.auths[registry.host], {}, 'the plaintext secret is gone; docker leaves an empty entry');
      assert.deepEqual(written.auths['ghcr.io'], OTHER_KEYS.auths['ghcr.io']);
      assert.equal(JSON.stringify(written).includes(password), false);
      assert.deepEqual(await new DockerConfigCredentials({ configPath: path, env: helper.env }).get(registry.host), { username: user, password });

      const out = await logout(registry.host, { configPath: path, env: helper.env });
      assert.deepEqual(out, { registry: registry.host, serverUrl: registry.host, removed: true, helper: 'fake' });
      assert.equal((await helper.calls()).at(-1), `erase ${registry.host}`);
      assert.equal((await readJson(path)).auths[registry.host], undefined);
      assert.equal((await logout(registry.host, { configPath: path, env: helper.env })).removed, false);
    });
  }

  test('a helper that is missing or fails: ERR_CREDENTIALS naming it, never the secret', async () => {
    const { path } = await configDir({ credsStore: 'absent' });
    await assert.rejects(login(registry.host, { username: user, password }, { configPath: path, env: { PATH: '/nonexistent' } }), (err) => isStratumError(err, 'ERR_CREDENTIALS') && err.message.includes('docker-credential-absent') && !err.message.includes(password));
  });
});

describe('Engine.login / logout', () => {
  test('the Engine reads the new credentials at once', async () => {
    const { dir } = await configDir();
    const saved = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = dir;
    const engine = await Engine.open({ root: await tmp.make('login-store'), env: { STRATUM_CONFIG: '' } });
    try {
      await assert.rejects(engine.listTags(`${registry.host}/nothing/here`), unauthorized(registry.host));
      await engine.login(registry.host, { username: user, password });
      await assert.rejects(engine.listTags(`${registry.host}/nothing/here`), (err) => isStratumError(err, 'ERR_NOT_FOUND'));
      assert.equal((await engine.logout(registry.host)).removed, true);
      await assert.rejects(engine.listTags(`${registry.host}/nothing/here`), unauthorized(registry.host));
    } finally {
      await engine.close();
      if (saved === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = saved;
    }
  });
});
