import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../src/oci/digest.js';
import { uploadBlob } from '../fixtures/push.js';
import { makeCertificates, type TestCertificates } from './certs.js';
import { httpsGetText } from './https-get.js';
import { TempDirs } from './tmp.js';
import { htpasswdLine, portOpen, registryRequestLog, sharedRegistry, startRegistry, type TestRegistry } from './registry.js';

const haveRegistry = existsSync('/usr/bin/docker-registry');
const started: TestRegistry[] = [];
after(async () => {
  await Promise.all(started.map((r) => r.stop()));
});

async function start(opts?: Parameters<typeof startRegistry>[0]): Promise<TestRegistry> {
  const r = await startRegistry(opts);
  started.push(r);
  return r;
}

describe('test registry harness', { skip: haveRegistry ? false : '/usr/bin/docker-registry is not installed (apt-get install docker-registry)' }, () => {
  test('starts on 127.0.0.1, answers GET /v2/, and stop() frees the port and removes its root', async () => {
    const r = await startRegistry();
    try {
      assert.match(r.host, /^127\.0\.0\.1:\d+$/);
      assert.equal(r.url, `http://${r.host}`);
      const res = await fetch(`${r.url}/v2/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
      assert.ok(existsSync(r.root));
    } finally {
      await r.stop();
    }
    assert.equal(await portOpen(r.host), false);
    assert.equal(existsSync(r.root), false);
    await r.stop(); // idempotent
  });

  test('two registries run side by side on different ports', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    assert.notEqual(a.host, b.host);
    assert.equal((await fetch(`${a.url}/v2/`)).status, 200);
    assert.equal((await fetch(`${b.url}/v2/`)).status, 200);
  });

  test('htpasswd: 401 with a Basic challenge without credentials, 200 with them, 401 with a wrong password', async () => {
    const r = await start({ htpasswd: { user: 'tester', password: 's3cret:with colon' } });
    const anon = await fetch(`${r.url}/v2/`);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic realm="stratum-test"/);
    const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('tester', 's3cret:with colon') })).status, 200);
    assert.equal((await fetch(`${r.url}/v2/`, { headers: basic('tester', 'wrong') })).status, 401);
    assert.deepEqual(r.credentials, { user: 'tester', password: 's3cret:with colon' });
  });

  test('htpasswdLine makes a bcrypt hash distribution accepts, salted differently each time', () => {
    const a = htpasswdLine('u', 'p');
    const b = htpasswdLine('u', 'p');
    assert.match(a, /^u:\$2b\$05\$[./A-Za-z0-9]{53}$/);
    assert.notEqual(a, b);
    assert.throws(() => htpasswdLine('a:b', 'p'), /must not contain ':'/);
  });

  test('the request log counts GETs per path', async () => {
    const r = await start();
    const log = registryRequestLog(r);
    assert.ok(log, 'a started registry has a request log');
    const data = Buffer.from('counted blob\n');
    const digest = digestOf(data);
    await uploadBlob(r, 'library/counted', digest, { bytes: data });
    const path = `/v2/library/counted/blobs/${digest}`;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${r.url}${path}`);
      assert.equal(Buffer.from(await res.arrayBuffer()).toString(), 'counted blob\n');
    }
    await log.settle();
    assert.equal(log.count('GET', path), 3);
    assert.equal(log.count('HEAD', path), 1, 'uploadBlob checks with HEAD first');
    assert.equal(log.count('PUT', /^\/v2\/library\/counted\/blobs\/uploads\//), 1);
    assert.ok(log.requests().every((q) => !q.query.startsWith('stratum-log-marker')), 'markers are hidden');
    log.clear();
    await log.settle();
    assert.equal(log.count('GET', path), 0);
  });

  test('sharedRegistry uses STRATUM_TEST_REGISTRY when set, and starts one otherwise', async () => {
    const saved = process.env.STRATUM_TEST_REGISTRY;
    try {
      process.env.STRATUM_TEST_REGISTRY = '127.0.0.1:5999';
      const ext = await sharedRegistry();
      assert.equal(ext.host, '127.0.0.1:5999');
      assert.equal(ext.url, 'http://127.0.0.1:5999');
      assert.equal(registryRequestLog(ext), undefined, 'an external registry has no log we can read');
      await ext.stop();
      process.env.STRATUM_TEST_REGISTRY = 'registry.example.com:5000';
      await assert.rejects(sharedRegistry(), /must be a loopback host:port/);
      delete process.env.STRATUM_TEST_REGISTRY;
      const own = await sharedRegistry();
      started.push(own);
      assert.equal((await fetch(`${own.url}/v2/`)).status, 200);
    } finally {
      if (saved === undefined) delete process.env.STRATUM_TEST_REGISTRY;
      else process.env.STRATUM_TEST_REGISTRY = saved;
    }
  });
});

describe('test registry over TLS', { skip: haveRegistry ? false : '/usr/bin/docker-registry is not installed (apt-get install docker-registry)' }, () => {
  let certs: TestCertificates;
  const tmp = new TempDirs();
  before(async () => {
    certs = await makeCertificates(await tmp.make('registry-certs'));
  });
  after(() => tmp.cleanup());

  test('tls: https url, /v2/ answers with the CA trusted, refuses an untrusting client, and the log settles over TLS', async () => {
    const r = await start({ tls: { certificate: certs.server.cert, key: certs.server.key, ca: certs.ca.cert } });
    assert.equal(r.url, `https://${r.host}`);
    const res = await httpsGetText(`${r.url}/v2/`, { ca: certs.ca.cert });
    assert.equal(res.status, 200);
    await assert.rejects(httpsGetText(`${r.url}/v2/`), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    const log = registryRequestLog(r)!;
    await log.settle();
    assert.equal(log.count('GET', '/v2/'), 2, 'the readiness probe and our GET');
  });

  test('tls.clientCAs: the handshake fails without a client certificate and succeeds with one', async () => {
    const r = await start({ tls: { certificate: certs.server.cert, key: certs.server.key, clientCAs: [certs.clientCa.cert] } });
    await assert.rejects(httpsGetText(`${r.url}/v2/`, { ca: certs.ca.cert }), /certificate required|bad certificate|ECONNRESET|socket hang up/i);
    assert.equal((await httpsGetText(`${r.url}/v2/`, { ca: certs.ca.cert, client: certs.client })).status, 200);
    await assert.rejects(registryRequestLog(r)!.settle(), /needs tls\.client/);
  });

  test('tls.client: the harness presents it, so settle() works on a client-certificate registry', async () => {
    const r = await start({ tls: { certificate: certs.server.cert, key: certs.server.key, clientCAs: [certs.clientCa.cert], ca: certs.ca.cert, client: certs.client } });
    await httpsGetText(`${r.url}/v2/_catalog`, { ca: certs.ca.cert, client: certs.client });
    const log = registryRequestLog(r)!;
    await log.settle();
    assert.equal(log.count('GET', '/v2/_catalog'), 1);
  });
});
