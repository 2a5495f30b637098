import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isStratumError, RateLimitError, RegistryError } from '../../src/errors.js';
import { parseWwwAuthenticate } from '../../src/registry/auth.js';
import { DockerConfigCredentials, dockerConfigPath, normaliseAuthKey } from '../../src/registry/credentials.js';
import { isLoopbackHost, loadRegistryConfig, mergeMirrorFlags, parseMirrorFlag, resolveEndpoints } from '../../src/registry/hosts.js';
import { backoffDelay, DEFAULT_RETRY_POLICY, isRetryable, parseRetryAfter } from '../../src/registry/retry.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());

describe('hosts', () => {
  test('docker.io goes to registry-1.docker.io; mirrors first, in order, path prefix kept', () => {
    assert.deepEqual(resolveEndpoints('docker.io'), [{ url: 'https://registry-1.docker.io', isMirror: false }]);
    assert.deepEqual(resolveEndpoints('docker.io', { mirrors: { 'docker.io': ['http://127.0.0.1:5000', 'https://mirror.example/prefix/', 'https://m2.example/v2/'] } }), [
      { url: 'http://127.0.0.1:5000', isMirror: true },
      { url: 'https://mirror.example/prefix', isMirror: true },
      { url: 'https://m2.example', isMirror: true },
      { url: 'https://registry-1.docker.io', isMirror: false },
    ]);
    // HTTPS first everywhere; insecure hosts (loopback, listed) may fall back to plain HTTP.
    assert.deepEqual(resolveEndpoints('localhost:5000'), [{ url: 'https://localhost:5000', isMirror: false, plainHttpFallback: true }]);
    assert.deepEqual(resolveEndpoints('ghcr.io'), [{ url: 'https://ghcr.io', isMirror: false }]);
    assert.deepEqual(resolveEndpoints('reg.lan:5000', { insecure: ['reg.lan'] }), [{ url: 'https://reg.lan:5000', isMirror: false, plainHttpFallback: true }]);
    assert.deepEqual(resolveEndpoints('docker.io', { mirrors: { 'docker.io': ['https://m.example/api/'] }, hosts: { 'https://m.example/api/': { overridePath: true } } })[0], {
      url: 'https://m.example/api',
      isMirror: true,
      overridePath: true,
    });
  });

  test('parallel Range requests: on by default, not from loopback registries unless configured; false turns them off', async () => {
    const { RegistryClient } = await import('../../src/registry/client.js');
    const { parseReference } = await import('../../src/oci/reference.js');
    const { DEFAULT_PARALLEL_FETCH } = await import('../../src/registry/ranged-fetch.js');
    const local = parseReference('127.0.0.1:5000/app:1');
    const remote = parseReference('ghcr.io/org/app:1');
    const clients = [
      new RegistryClient(),
      new RegistryClient({ config: { parallelFetch: { connections: 2 } } }),
      new RegistryClient({ config: { parallelFetch: false } }),
      new RegistryClient({ config: { mirrors: { 'ghcr.io': ['http://127.0.0.1:5000'] } } }),
    ];
    try {
      assert.equal(clients[0]!.parallelFetchFor(local), false);
      assert.deepEqual(clients[0]!.parallelFetchFor(remote), DEFAULT_PARALLEL_FETCH);
      // A mirror on loopback for a remote registry: the upstream is not loopback, so they stay on.
      assert.deepEqual(clients[3]!.parallelFetchFor(remote), DEFAULT_PARALLEL_FETCH);
      assert.deepEqual(clients[1]!.parallelFetchFor(local), { ...DEFAULT_PARALLEL_FETCH, connections: 2 });
      assert.equal(clients[2]!.parallelFetchFor(remote), false);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  test('loopback detection', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.1.2.3:80', '[::1]:5000', '::1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['10.0.0.1', '128.0.0.1', 'example.com', 'localhost.example.com', '[::2]:5000']) assert.equal(isLoopbackHost(h), false, h);
  });

  test('http:// to a non-loopback mirror is refused with ERR_INSECURE_REGISTRY', () => {
    assert.throws(
      () => resolveEndpoints('docker.io', { mirrors: { 'docker.io': ['http://mirror.example:5000'] } }),
      (err: Error) => isStratumError(err, 'ERR_INSECURE_REGISTRY') && /mirror\.example:5000/.test(err.message),
    );
  });

  test('--mirror flags: parsed, merged before the file, bad ones named', () => {
    assert.deepEqual(parseMirrorFlag('docker.io=http://127.0.0.1:5000'), { registry: 'docker.io', url: 'http://127.0.0.1:5000' });
    assert.deepEqual(parseMirrorFlag('http://127.0.0.1:5000'), { registry: 'docker.io', url: 'http://127.0.0.1:5000' });
    assert.deepEqual(parseMirrorFlag('ghcr.io=https://m.example/ghcr?x=1'), { registry: 'ghcr.io', url: 'https://m.example/ghcr?x=1' });
    for (const bad of ['docker.io', '=http://x', 'docker.io=', 'docker.io=ftp://x', 'docker.io=http://']) {
      assert.throws(() => parseMirrorFlag(bad), (err: Error) => isStratumError(err, 'ERR_CONFIG') && err.message.includes('--mirror'), bad);
    }
    const merged = mergeMirrorFlags({ mirrors: { 'docker.io': ['https://a.example', 'http://127.0.0.1:1'] }, concurrency: 2 }, ['docker.io=http://127.0.0.1:1']);
    assert.deepEqual(merged, { mirrors: { 'docker.io': ['http://127.0.0.1:1', 'https://a.example'] }, concurrency: 2 });
  });

  test('config file: read and validated, errors name the file and the field', async () => {
    const dir = await tmp.make('regcfg');
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ mirrors: { 'docker.io': ['http://127.0.0.1:5000'] }, insecure: ['reg.lan'], concurrency: 4, retries: { maxAttempts: 3, baseDelayMs: 10 } }));
    assert.deepEqual(await loadRegistryConfig(good), {
      mirrors: { 'docker.io': ['http://127.0.0.1:5000'] },
      insecure: ['reg.lan'],
      concurrency: 4,
      retries: { maxAttempts: 3, baseDelayMs: 10 },
    });
    const cases: Array<[unknown, RegExp]> = [
      [{ mirrors: { 'docker.io': 'http://x' } }, /mirrors\.docker\.io/],
      [{ mirrors: { 'docker.io': ['not a url'] } }, /mirrors\.docker\.io/],
      [{ concurrency: 0 }, /concurrency/],
      [{ retries: { maxAttempts: 'many' } }, /retries\.maxAttempts/],
      [{ retries: { tries: 1 } }, /retries\.tries/],
      [{ insecure: 'reg.lan' }, /insecure/],
      [{ mirror: {} }, /mirror: unknown field/],
      [[], /top level/],
    ];
    for (const [i, [content, field]] of cases.entries()) {
      const path = join(dir, `bad${i}.json`);
      await writeFile(path, JSON.stringify(content));
      await assert.rejects(loadRegistryConfig(path), (err: Error) => isStratumError(err, 'ERR_CONFIG') && err.message.startsWith(path) && field.test(err.message), JSON.stringify(content));
    }
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{"mirrors": ');
    await assert.rejects(loadRegistryConfig(broken), (err: Error) => isStratumError(err, 'ERR_CONFIG') && err.message.includes(broken) && /not valid JSON/.test(err.message));
  });
});

describe('WWW-Authenticate', () => {
  test('parses Bearer, Basic, several challenges, quoted commas and escapes', () => {
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push"'), [
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull,push' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Basic realm="basic-realm"'), [{ scheme: 'basic', params: { realm: 'basic-realm' } }]);
    assert.deepEqual(parseWwwAuthenticate('Basic realm="a, b", Bearer realm="https://t/token", service=svc, error="insufficient_scope"'), [
      { scheme: 'basic', params: { realm: 'a, b' } },
      { scheme: 'bearer', params: { realm: 'https://t/token', service: 'svc', error: 'insufficient_scope' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate(['Negotiate', 'BEARER Realm="x\\"y"']), [
      { scheme: 'negotiate', params: {} },
      { scheme: 'bearer', params: { realm: 'x"y' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate(undefined), []);
    assert.deepEqual(parseWwwAuthenticate(''), []);
  });
});

describe('retry policy', () => {
  test('Retry-After as seconds or HTTP date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('garbage'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });

  test('what is retried, and how long to wait', () => {
    assert.equal(isRetryable(new RateLimitError('x')), true);
    assert.equal(isRetryable(new RegistryError('x', 503)), true);
    assert.equal(isRetryable(new RegistryError('x', 400)), false);
    assert.equal(isRetryable(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
    assert.equal(isRetryable(new Error('wrapped', { cause: Object.assign(new Error('sock'), { code: 'UND_ERR_SOCKET' }) })), true);
    assert.equal(isRetryable(new Error('plain')), false);
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 2000 };
    assert.equal(backoffDelay(1, policy, new RateLimitError('x', 1500)), 1500);
    assert.equal(backoffDelay(1, policy, new RateLimitError('x', 9000)), 2000);
    assert.equal(backoffDelay(1, policy, undefined, () => 1), 100);
    assert.equal(backoffDelay(1, policy, undefined, () => 0), 50);
    assert.equal(backoffDelay(10, policy, undefined, () => 1), 1000);
  });
});

describe('Docker credentials', () => {
  test('config path: $DOCKER_CONFIG, else ~/.docker', () => {
    assert.equal(dockerConfigPath({ DOCKER_CONFIG: '/x/y', HOME: '/home/u' }), '/x/y/config.json');
    assert.equal(dockerConfigPath({ HOME: '/home/u' }), '/home/u/.docker/config.json');
    assert.equal(normaliseAuthKey('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(normaliseAuthKey('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000');
  });

  test('auths: base64 auth, username/password, identitytoken; docker.io under its legacy key; missing file = anonymous', async () => {
    const dir = await tmp.make('dockercfg');
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
          '127.0.0.1:5000': { username: 'local', password: 'pw' },
          'https://ghcr.io': { identitytoken: 'refresh-me' },
        },
      }),
    );
    const creds = new DockerConfigCredentials({ env: { DOCKER_CONFIG: dir, PATH: process.env.PATH } });
    assert.deepEqual(await creds.get('docker.io'), { username: 'hubuser', password: 'hub:pass' });
    assert.deepEqual(await creds.get('127.0.0.1:5000'), { username: 'local', password: 'pw' });
    assert.deepEqual(await creds.get('ghcr.io'), { identityToken: 'refresh-me' });
    assert.equal(await creds.get('quay.io'), undefined);
    const none = new DockerConfigCredentials({ env: { DOCKER_CONFIG: join(dir, 'nowhere') } });
    assert.equal(await none.get('docker.io'), undefined);
  });

  test('credHelpers and credsStore run docker-credential-* with the server URL on stdin; secrets never in errors', async () => {
    const dir = await tmp.make('dockercfg-helpers');
    const bin = join(dir, 'bin');
    await mkdir(bin);
    // A real helper speaking the docker-credential-helpers protocol.
    await writeFile(
      join(bin, 'docker-credential-testhelper'),
      `#!/bin/sh
[ "$1" = get ] || exit 2
read server
case "$server" in
  https://index.docker.io/v1/) echo '{"ServerURL":"'"$server"'","Username":"hub-helper","Secret":"hub-secret"}' ;;
  127.0.0.1:5000) echo '{"ServerURL":"'"$server"'","Username":"<token>","Secret":"id-token"}' ;;
  broken.example) echo "leaked-secret-do-not-print" ; exit 3 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
    );
    await chmod(join(bin, 'docker-credential-testhelper'), 0o755);
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ credsStore: 'testhelper', credHelpers: { 'ghcr.io': 'absent' }, auths: { 'quay.io': { username: 'q', password: 'fallback' } } }),
    );
    const creds = new DockerConfigCredentials({ env: { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH}` } });
    assert.deepEqual(await creds.get('docker.io'), { username: 'hub-helper', password: 'hub-secret' });
    assert.deepEqual(await creds.get('127.0.0.1:5000'), { identityToken: 'id-token' });
    assert.deepEqual(await creds.get('quay.io'), { username: 'q', password: 'fallback' }, 'helper has nothing → auths');
    await assert.rejects(creds.get('broken.example'), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_CREDENTIALS'), err.message);
      assert.match(err.message, /docker-credential-testhelper/);
      assert.match(err.message, /broken\.example/);
      assert.doesNotMatch(err.message, /leaked-secret/);
      return true;
    });
    await assert.rejects(creds.get('ghcr.io'), (err: Error) => isStratumError(err, 'ERR_CREDENTIALS') && /docker-credential-absent is not on PATH/.test(err.message));
  });
});
