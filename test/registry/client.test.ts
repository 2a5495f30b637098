import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { MANIFEST_ACCEPT, MediaType } from '../../src/oci/mediatypes.js';
import { parseReference, withDigest } from '../../src/oci/reference.js';
import { RegistryClient } from '../../src/registry/client.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import { startRegistry } from '../helpers/registry.js';
import { TokenIssuer, type TokenIssuerOptions } from '../helpers/token-issuer.js';
import { FAST_RETRIES, startRig, type RegistryRig } from './setup.js';

let rig: RegistryRig;
const clients: RegistryClient[] = [];
const issuers: TokenIssuer[] = [];

function client(opts: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ ...opts, config: { retries: FAST_RETRIES, ...opts.config } });
  clients.push(c);
  return c;
}

async function issuer(opts: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const i = await TokenIssuer.start(opts);
  issuers.push(i);
  return i;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

describe('RegistryClient against a real registry', () => {
before(async () => {
  rig = await startRig({ schema1: true });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(issuers.map((i) => i.stop()));
  await rig?.stop();
});

describe('resolve', () => {
  test('Docker schema2 manifest: digest as pushed, full Accept list sent', async () => {
    rig.proxy.reset().clearLog();
    const res = await client().resolve(rig.ref('library/base:1'));
    assert.equal(res.descriptor.mediaType, MediaType.DockerManifest);
    assert.equal(res.descriptor.digest, rig.fixtures.base.digest);
    assert.equal(res.descriptor.size, res.bytes.length);
    assert.equal(digestOf(res.bytes), rig.fixtures.base.digest);
    assert.equal(res.endpoint.isMirror, false);
    const [get] = rig.proxy.requests('GET', /\/manifests\/1$/);
    const accept = String(get?.headers.accept).split(',').map((s) => s.trim());
    assert.deepEqual(accept, [...MANIFEST_ACCEPT]);
  });

  test('OCI manifest', async () => {
    const res = await client().resolve(rig.ref('library/app:1'));
    assert.equal(res.descriptor.mediaType, MediaType.OciManifest);
    assert.equal(res.descriptor.digest, rig.fixtures.app.digest);
  });

  test('OCI index, then a child manifest by digest', async () => {
    const c = client();
    const ref = rig.ref('library/multi:1');
    const res = await c.resolve(ref);
    assert.equal(res.descriptor.mediaType, MediaType.OciIndex);
    assert.equal(res.descriptor.digest, rig.fixtures.multi.digest);
    const child = rig.fixtures.multi.manifests[1]!;
    const m = await c.fetchManifest(ref, child.digest);
    assert.equal(m.descriptor.digest, child.digest);
    assert.equal(m.descriptor.mediaType, MediaType.OciManifest);
  });

  test('signed schema1: digest is the payload digest and agrees with Docker-Content-Digest', async (t) => {
    const ubuntu = rig.fixtures.ubuntu;
    if (!ubuntu) return t.skip('the test registry did not accept a schema1 push (no schema1 compatibility)');
    const res = await client().resolve(rig.ref('library/ubuntu:15.04'));
    assert.equal(res.descriptor.mediaType, MediaType.DockerSchema1SignedManifest);
    assert.equal(res.descriptor.digest, ubuntu.digest);
    assert.notEqual(digestOf(res.bytes), ubuntu.digest, 'the raw body (with signatures) hashes differently');
    const direct = await fetch(`${rig.registry.url}/v2/library/ubuntu/manifests/15.04`, { headers: { accept: MediaType.DockerSchema1SignedManifest } });
    await direct.arrayBuffer();
    assert.equal(direct.headers.get('docker-content-digest'), ubuntu.digest);
  });

  test('by-digest reference is fetched by digest and verified', async () => {
    rig.proxy.reset().clearLog();
    const ref = withDigest(parseReference(`${rig.proxy.host}/library/app`), rig.fixtures.app.digest);
    const res = await client().resolve(ref);
    assert.equal(res.descriptor.digest, rig.fixtures.app.digest);
    assert.equal(rig.proxy.requests('GET', new RegExp(`/manifests/${rig.fixtures.app.digest}$`)).length, 1);
  });

  test('by-digest body that does not hash to the digest → DigestMismatchError', async () => {
    rig.proxy.reset();
    const ref = withDigest(parseReference(`${rig.proxy.host}/library/app`), rig.fixtures.app.digest);
    // Without a Docker-Content-Digest header, only the by-digest check can catch the flipped byte.
    rig.proxy.rewriteHeader('docker-content-digest', '', { path: /\/manifests\// }).corruptByteAt(20, { path: /\/manifests\// });
    await assert.rejects(client().resolve(ref), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_DIGEST_MISMATCH'), err.message);
      assert.match(err.message, /library\/app/);
      assert.match(err.message, new RegExp(rig.fixtures.app.digest));
      return true;
    });
  });

  test('Docker-Content-Digest that disagrees with the body → DigestMismatchError naming the reference', async () => {
    rig.proxy.reset();
    rig.proxy.rewriteHeader('docker-content-digest', rig.fixtures.base.digest, { path: /\/manifests\// });
    await assert.rejects(client().resolve(rig.ref('library/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_DIGEST_MISMATCH'), err.message);
      assert.match(err.message, new RegExp(`${rig.proxy.host}/library/app:1`));
      assert.match(err.message, /Docker-Content-Digest/);
      return true;
    });
  });

  test('a child manifest whose body runs past its descriptor size → ERR_SIZE_MISMATCH after size + 1 bytes', async () => {
    const c = client();
    const ref = rig.ref('library/multi:1');
    const child = rig.fixtures.multi.manifests[1]!;
    const size = (await c.fetchManifest(ref, child.digest)).bytes.length;
    rig.proxy.clearLog();
    rig.proxy.reset().oversizeBody(64 << 20, { path: /\/manifests\// });
    await assert.rejects(c.fetchManifest(ref, child.digest, size), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_SIZE_MISMATCH'), `${err.name}: ${err.message}`);
      assert.ok(err.message.includes(child.digest), err.message);
      return true;
    });
    rig.proxy.reset();
  });

  test('a manifest by tag with an endless chunked body → refused at the 4 MiB manifest limit', async () => {
    rig.proxy.clearLog();
    rig.proxy.reset().oversizeBody(256 << 20, { path: /\/manifests\// });
    await assert.rejects(client().resolve(rig.ref('library/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_INVALID_MANIFEST'), `${err.name}: ${err.message}`);
      assert.match(err.message, /4194304-byte manifest size limit/);
      return true;
    });
    await new Promise((r) => setTimeout(r, 100));
    const [get] = rig.proxy.requests('GET', /\/manifests\//);
    assert.ok((get!.bodyBytes ?? 0) < 24 << 20, `proxy sent ${get!.bodyBytes} bytes`);
    rig.proxy.reset();
  });

  test('unknown tag → NotFoundError naming the reference, the endpoint and the registry message', async () => {
    rig.proxy.reset();
    await assert.rejects(client().resolve(rig.ref('library/app:nope')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_NOT_FOUND'), err.message);
      assert.match(err.message, /library\/app:nope/);
      assert.match(err.message, new RegExp(rig.proxy.url));
      assert.match(err.message, /MANIFEST_UNKNOWN/);
      return true;
    });
  });
});

describe('status mapping and retries', () => {
  test('429 with ratelimit headers and no retries left → RateLimitError quoting them', async () => {
    rig.proxy.reset();
    rig.proxy.respond(429, { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600', 'retry-after': '7' }, { path: /\/manifests\// });
    const c = client({ config: { retries: { maxAttempts: 1 } } });
    await assert.rejects(c.resolve(rig.ref('library/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_RATE_LIMITED'), err.message);
      assert.match(err.message, /ratelimit-limit: 100;w=21600/);
      assert.match(err.message, /ratelimit-remaining: 0;w=21600/);
      assert.match(err.message, /retry-after: 7/);
      return true;
    });
  });

  test('429 with Retry-After: 1 → retried after at least a second', async () => {
    rig.proxy.reset().clearLog();
    rig.proxy.respond(429, { 'retry-after': '1' }, { path: /\/manifests\// });
    const started = Date.now();
    const res = await client().resolve(rig.ref('library/app:1'));
    assert.ok(Date.now() - started >= 1000, `retried after ${Date.now() - started} ms`);
    assert.equal(res.descriptor.digest, rig.fixtures.app.digest);
    assert.deepEqual(rig.proxy.requests('GET', /\/manifests\//).map((e) => e.status), [429, 200]);
  });

  test('503 twice → retried until it works', async () => {
    rig.proxy.reset().clearLog();
    rig.proxy.respond(503, {}, { path: /\/manifests\//, count: 2 });
    const res = await client().resolve(rig.ref('library/app:1'));
    assert.equal(res.descriptor.digest, rig.fixtures.app.digest);
    assert.deepEqual(rig.proxy.requests('GET', /\/manifests\//).map((e) => e.status), [503, 503, 200]);
  });

  test('500 with a registry error body, retries used up → RegistryError quoting it', async () => {
    rig.proxy.reset();
    rig.proxy.respond(500, {}, { path: /\/manifests\//, count: 10, body: JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'storage is on fire' }] }) });
    await assert.rejects(client({ config: { retries: { maxAttempts: 2, baseDelayMs: 1 } } }).resolve(rig.ref('library/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_REGISTRY'), err.message);
      assert.match(err.message, /HTTP 500/);
      assert.match(err.message, /UNKNOWN: storage is on fire/);
      return true;
    });
    rig.proxy.reset();
  });

  test('403 → DeniedError, not retried', async () => {
    rig.proxy.reset().clearLog();
    rig.proxy.respond(403, {}, { path: /\/manifests\//, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }) });
    await assert.rejects(client().resolve(rig.ref('library/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_DENIED'), err.message);
      assert.match(err.message, new RegExp(rig.proxy.host));
      assert.match(err.message, /requested access to the resource is denied/);
      return true;
    });
    assert.equal(rig.proxy.requests('GET', /\/manifests\//).length, 1);
  });
});

describe('mirrors and endpoints', () => {
  test('a mirror on a closed port → falls back to the upstream', async () => {
    rig.proxy.reset();
    const port = await closedPort();
    const c = client({ config: { mirrors: { [rig.proxy.host]: [`http://127.0.0.1:${port}`] } } });
    const res = await c.resolve(rig.ref('library/app:1'));
    assert.equal(res.endpoint.isMirror, false);
    assert.equal(res.endpoint.url, rig.proxy.url);
    const blob = await c.fetchBlob(rig.ref('library/app:1'), rig.blob.digest);
    assert.equal(digestOf(await readAll(blob.body)), rig.blob.digest);
  });

  test("a dead mirror, then the upstream's own 404 → NotFoundError from the upstream, the mirror named as context", async () => {
    rig.proxy.reset();
    const port = await closedPort();
    const c = client({ config: { mirrors: { [rig.proxy.host]: [`http://127.0.0.1:${port}`] } } });
    await assert.rejects(c.resolve(rig.ref('library/app:nope')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_NOT_FOUND'), `${err.name}: ${err.message}`);
      assert.match(err.message, /MANIFEST_UNKNOWN/);
      assert.ok(err.message.includes(rig.proxy.url), err.message);
      assert.ok(err.message.includes(`mirror http://127.0.0.1:${port}`), err.message);
      return true;
    });
  });

  test("a dead mirror, then the upstream demands credentials it does not get → UnauthorizedError, not the mirror's ECONNREFUSED", async () => {
    const tokens = await issuer({ users: { alice: 'secret' } });
    rig.proxy.reset().requireBearer({ issuer: tokens });
    try {
      const port = await closedPort();
      const c = client({ config: { mirrors: { [rig.proxy.host]: [`http://127.0.0.1:${port}`] } } });
      await assert.rejects(c.resolve(rig.ref('library/app:1')), (err: Error) => {
        assert.ok(isStratumError(err, 'ERR_UNAUTHORIZED'), `${err.name}: ${err.message}`);
        assert.ok(err.message.includes(rig.proxy.host), err.message);
        assert.ok(err.message.includes(`mirror http://127.0.0.1:${port}`), err.message);
        return true;
      });
    } finally {
      rig.proxy.reset();
    }
  });

  test('a mirror answering 404 → falls back to the upstream', async () => {
    rig.proxy.reset().clearLog();
    rig.proxy.respond(404, {}, { path: /\/manifests\// });
    const c = client({ config: { mirrors: { [rig.registry.host]: [rig.proxy.url] } } });
    const res = await c.resolve(parseReference(`${rig.registry.host}/library/app:1`));
    assert.equal(res.endpoint.isMirror, false);
    assert.equal(res.endpoint.url, rig.registry.url);
    assert.deepEqual(rig.proxy.requests('GET', /\/manifests\//).map((e) => e.status), [404]);
  });

  test('a working mirror with a path prefix is used first', async () => {
    rig.proxy.reset().clearLog();
    // The proxy serves /_redirected/v2/... like /v2/..., standing in for a mirror under a path.
    const c = client({ config: { mirrors: { 'docker.io': [`${rig.proxy.url}/_redirected`] } } });
    const res = await c.resolve(parseReference('library/app:1'));
    assert.equal(res.endpoint.isMirror, true);
    assert.equal(res.endpoint.url, `${rig.proxy.url}/_redirected`);
    assert.equal(res.descriptor.digest, rig.fixtures.app.digest);
    assert.equal(rig.proxy.requests('GET', /^\/_redirected\/v2\/library\/app\/manifests\/1$/).length, 1);
  });

  test('plain HTTP to a host that is not loopback is refused unless listed as insecure', async () => {
    const c = client({ config: { mirrors: { 'example.com': ['http://10.1.2.3:5000'] } } });
    await assert.rejects(c.resolve(parseReference('example.com/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_INSECURE_REGISTRY'), err.message);
      assert.match(err.message, /10\.1\.2\.3:5000/);
      return true;
    });
    const allowed = client({ config: { mirrors: { 'example.com': ['http://10.1.2.3:5000'] }, insecure: ['10.1.2.3:5000'] } });
    assert.deepEqual(allowed.endpoints(parseReference('example.com/app:1')), [
      { url: 'http://10.1.2.3:5000', isMirror: true },
      { url: 'https://example.com', isMirror: false },
    ]);
  });
});

describe('auth', () => {
  test('Bearer challenge → one anonymous token, reused for manifests and blobs', async () => {
    const tokens = await issuer({ expiresIn: 300 });
    rig.proxy.reset().clearLog();
    rig.proxy.requireBearer({ issuer: tokens });
    const c = client();
    const ref = rig.ref('library/app:1');
    await c.resolve(ref);
    await c.resolve(ref);
    await c.fetchManifest(ref, rig.fixtures.app.digest);
    const blob = await c.fetchBlob(ref, rig.blob.digest);
    assert.equal(digestOf(await readAll(blob.body)), rig.blob.digest);
    assert.equal(tokens.issued, 1);
    assert.equal(tokens.requests[0]!.scope, 'repository:library/app:pull');
    assert.equal(tokens.requests[0]!.service, 'fault-proxy');
    assert.equal(tokens.requests[0]!.user, undefined);
    const statuses = rig.proxy.log.filter((e) => e.path.startsWith('/v2/')).map((e) => e.status);
    assert.deepEqual(statuses, [401, 200, 200, 200, 200]);
    rig.proxy.reset();
  });

  test('Bearer with credentials (access_token field); a revoked token is replaced once', async () => {
    const tokens = await issuer({ users: { alice: 's3cret' }, field: 'access_token' });
    rig.proxy.reset().requireBearer({ issuer: tokens });
    const c = client({ credentials: new StaticCredentials({ [rig.proxy.host]: { username: 'alice', password: 's3cret' } }) });
    const ref = rig.ref('library/base:1');
    assert.equal((await c.resolve(ref)).descriptor.digest, rig.fixtures.base.digest);
    assert.equal(tokens.requests[0]!.user, 'alice');
    tokens.revokeAll();
    assert.equal((await c.resolve(ref)).descriptor.digest, rig.fixtures.base.digest);
    assert.equal(tokens.issued, 2);
    rig.proxy.reset();
  });

  test('an expired token is fetched again', async () => {
    const tokens = await issuer({ expiresIn: 1 });
    rig.proxy.reset().requireBearer({ issuer: tokens });
    const c = client();
    const ref = rig.ref('library/app:1');
    await c.resolve(ref);
    await c.resolve(ref);
    assert.equal(tokens.issued, 1);
    await new Promise((r) => setTimeout(r, 1100));
    await c.resolve(ref);
    assert.equal(tokens.issued, 2);
    rig.proxy.reset();
  });

  test('a token server with an endless body → refused after its 1 MiB limit, not read to the end', async () => {
    let sent = 0;
    const endless = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = (): void => {
        while (!res.destroyed && sent < 512 << 20) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', () => r()));
    const realm = `http://127.0.0.1:${(endless.address() as { port: number }).port}/token`;
    rig.proxy.reset().requireBearer({ issuer: { realm, isValid: () => false } as unknown as TokenIssuer });
    try {
      await assert.rejects(client().resolve(rig.ref('library/app:1')), (err: Error) => {
        assert.ok(isStratumError(err, 'ERR_REGISTRY'), `${err.name}: ${err.message}`);
        assert.ok(err.message.includes('token server'), err.message);
        return true;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(sent < 24 << 20, `the token server got ${sent} bytes out`);
    } finally {
      rig.proxy.reset();
      endless.closeAllConnections();
      await new Promise<void>((r) => endless.close(() => r()));
    }
  });

  test('wrong credentials → UnauthorizedError naming the registry, never the password', async () => {
    const tokens = await issuer({ users: { alice: 's3cret' } });
    rig.proxy.reset().requireBearer({ issuer: tokens });
    const c = client({ credentials: new StaticCredentials({ [rig.proxy.host]: { username: 'alice', password: 'wrong-password' } }) });
    await assert.rejects(c.resolve(rig.ref('library/app:1')), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_UNAUTHORIZED'), err.message);
      assert.match(err.message, new RegExp(`^authentication to ${rig.proxy.host} failed`));
      assert.doesNotMatch(err.message, /wrong-password/);
      return true;
    });
    rig.proxy.reset();
  });

  test('Basic auth against a registry with htpasswd', async () => {
    const secured = await startRegistry({ htpasswd: { user: 'bob', password: 'hunter22' } });
    try {
      const ref = parseReference(`${secured.host}/library/none:1`);
      const good = client({ credentials: new StaticCredentials({ [secured.host]: { username: 'bob', password: 'hunter22' } }) });
      // An empty registry: authenticating works, then the tag is simply unknown.
      await assert.rejects(good.resolve(ref), (err: Error) => isStratumError(err, 'ERR_NOT_FOUND'));
      const bad = client({ credentials: new StaticCredentials({ [secured.host]: { username: 'bob', password: 'nope' } }) });
      await assert.rejects(bad.resolve(ref), (err: Error) => {
        assert.ok(isStratumError(err, 'ERR_UNAUTHORIZED'), err.message);
        assert.match(err.message, new RegExp(`authentication to ${secured.host} failed`));
        assert.doesNotMatch(err.message, /nope/);
        return true;
      });
      const anonymous = client();
      await assert.rejects(anonymous.resolve(ref), (err: Error) => isStratumError(err, 'ERR_UNAUTHORIZED'));
    } finally {
      await secured.stop();
    }
  });
});

describe('blobs', () => {
  test('Range request → 206 with start and total size', async () => {
    rig.proxy.reset().clearLog();
    const res = await client().fetchBlob(rig.blob.ref, rig.blob.digest, { offset: 1000 });
    assert.equal(res.start, 1000);
    assert.equal(res.totalSize, rig.blob.bytes.length);
    assert.ok((await readAll(res.body)).equals(rig.blob.bytes.subarray(1000)));
    assert.equal(rig.proxy.log.at(-1)!.headers.range, 'bytes=1000-');
  });

  test('Range ignored → start 0 and the whole blob', async () => {
    rig.proxy.reset().ignoreRange();
    const res = await client().fetchBlob(rig.blob.ref, rig.blob.digest, { offset: 1000 });
    assert.equal(res.start, 0);
    assert.equal(res.totalSize, rig.blob.bytes.length);
    assert.equal(digestOf(await readAll(res.body)), rig.blob.digest);
    rig.proxy.reset();
  });

  test('redirect to another host: followed, Authorization dropped', async () => {
    const tokens = await issuer();
    rig.proxy.reset().clearLog();
    rig.proxy.requireBearer({ issuer: tokens }).redirectBlobsTo('localhost');
    const res = await client().fetchBlob(rig.blob.ref, rig.blob.digest);
    assert.equal(digestOf(await readAll(res.body)), rig.blob.digest);
    const blobGets = rig.proxy.requests('GET', /\/blobs\//);
    assert.deepEqual(blobGets.map((e) => e.status), [401, 307, 200], JSON.stringify(blobGets.map((e) => [e.status, e.host, e.headers])));
    assert.match(String(blobGets[1]!.headers.authorization), /^Bearer /);
    assert.equal(blobGets[2]!.host, `localhost:${rig.proxy.port}`);
    assert.equal(blobGets[2]!.headers.authorization, undefined);
    rig.proxy.reset();
  });

  test('unknown blob → NotFoundError naming the digest and repository', async () => {
    rig.proxy.reset();
    const missing = digestOf('not in the registry') as Digest;
    await assert.rejects(client().fetchBlob(rig.blob.ref, missing), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_NOT_FOUND'), err.message);
      assert.match(err.message, new RegExp(missing));
      assert.match(err.message, /library\/app/);
      return true;
    });
  });
});
});
