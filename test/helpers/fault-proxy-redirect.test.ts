import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../src/oci/digest.js';
import { uploadBlob } from '../fixtures/push.js';
import { makeCertificates, type TestCertificates } from './certs.js';
import { BLOB_PATH, FaultProxy } from './fault-proxy.js';
import { httpsGetText } from './https-get.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { TempDirs } from './tmp.js';

const haveRegistry = existsSync('/usr/bin/docker-registry');
const DATA = Buffer.from('0123456789 redirected blob\n');
const DIGEST = digestOf(DATA);
const BLOB = `/v2/library/redirect/blobs/${DIGEST}`;

describe('fault proxy as a redirecting front', { skip: haveRegistry ? false : '/usr/bin/docker-registry is not installed' }, () => {
  const tmp = new TempDirs();
  const stops: Array<() => Promise<void>> = [];
  let registry: TestRegistry;
  let certs: TestCertificates;
  before(async () => {
    registry = await startRegistry();
    stops.push(() => registry.stop());
    await uploadBlob(registry, 'library/redirect', DIGEST, { bytes: DATA });
    certs = await makeCertificates(await tmp.make('redirect-certs'));
  });
  after(async () => {
    for (const s of stops.splice(0).reverse()) await s();
    await tmp.cleanup();
  });

  async function proxy(target: string, opts?: Parameters<typeof FaultProxy.start>[1]): Promise<FaultProxy> {
    const p = await FaultProxy.start(target, opts);
    stops.push(() => p.stop());
    return p;
  }

  test('redirectBlobs: 307 to the target with the same path and query; fetch follows without Authorization and with Range', async () => {
    const target = await proxy(registry.url);
    const front = await proxy(registry.url);
    front.redirectBlobs(target.url);
    const manual = await fetch(`${front.url}${BLOB}?x=1`, { redirect: 'manual' });
    assert.equal(manual.status, 307);
    assert.equal(manual.headers.get('location'), `${target.url}${BLOB}?x=1`);
    const res = await fetch(`${front.url}${BLOB}`, { headers: { authorization: 'Bearer secret', range: 'bytes=2-5' } });
    assert.equal(res.status, 206);
    assert.equal(await res.text(), '2345');
    const seen = target.requests('GET', BLOB_PATH);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.headers.authorization, undefined, 'Authorization never reaches the redirect target');
    assert.equal(seen[0]!.headers.range, 'bytes=2-5');
    assert.equal(front.requests('GET', BLOB_PATH)[1]!.headers.authorization, 'Bearer secret', 'the front did get it');
    // Manifests and other paths are not redirected.
    assert.equal((await fetch(`${front.url}/v2/`, { redirect: 'manual' })).status, 200);
  });

  test('redirectBlobs count and status: only the first N blob GETs get a 302, then the front serves them itself', async () => {
    const target = await proxy(registry.url);
    const front = await proxy(registry.url);
    front.redirectBlobs(target.url, { count: 1, status: 302 });
    assert.equal((await fetch(`${front.url}${BLOB}`, { redirect: 'manual' })).status, 302);
    const direct = await fetch(`${front.url}${BLOB}`, { redirect: 'manual' });
    assert.equal(direct.status, 200);
    assert.equal(await direct.text(), DATA.toString());
    assert.equal(target.log.length, 0);
  });

  test('expireSignedUrl: the target answers 403 (S3 AccessDenied, expired) once, then serves the blob', async () => {
    const target = await proxy(registry.url);
    target.expireSignedUrl();
    const first = await fetch(`${target.url}${BLOB}`);
    assert.equal(first.status, 403);
    assert.match(await first.text(), /<Code>AccessDenied<\/Code><Message>Request has expired/);
    const second = await fetch(`${target.url}${BLOB}`);
    assert.equal(second.status, 200);
    assert.equal(await second.text(), DATA.toString());
  });

  test('tls: a front serving https with the test certificate, forwarding to an https registry', async () => {
    const tlsRegistry = await startRegistry({ tls: { certificate: certs.server.cert, key: certs.server.key }, storageDir: `${registry.root}/storage` });
    stops.push(() => tlsRegistry.stop());
    const front = await proxy(tlsRegistry.url, { tls: certs.server });
    assert.match(front.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    front.redirectBlobs(tlsRegistry.url);
    const res = await httpsGetText(`${front.url}${BLOB}`, { ca: certs.ca.cert });
    assert.equal(res.status, 307);
    const blob = await httpsGetText(`${tlsRegistry.url}${BLOB}`, { ca: certs.ca.cert });
    assert.equal(blob.body, DATA.toString());
    assert.equal((await httpsGetText(`${front.url}/v2/`, { ca: certs.ca.cert })).status, 200);
  });
});
