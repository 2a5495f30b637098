import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { makeCertificates, writeCertsDir, type CertPair, type TestCertificates } from './certs.js';
import { httpsGetText } from './https-get.js';
import { listenOnLoopback } from './loopback.js';
import { TempDirs } from './tmp.js';

const tmp = new TempDirs();
after(() => tmp.cleanup());

async function verify(caFile: string, certFile: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('openssl', ['verify', '-CAfile', caFile, certFile]);
    return stdout.trim();
  } catch (err) {
    return `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`.trim();
  }
}

/** An https server on 127.0.0.1 presenting `pair`; returns its base URL. */
async function serve(pair: CertPair, servers: Server[]): Promise<string> {
  const server = createServer({ cert: readFileSync(pair.cert), key: readFileSync(pair.key) }, (_req, res) => res.end('ok'));
  servers.push(server);
  return `https://127.0.0.1:${await listenOnLoopback(server)}`;
}

describe('test certificates (openssl)', () => {
  let certs: TestCertificates;
  const servers: Server[] = [];
  before(async () => {
    certs = await makeCertificates(await tmp.make('certs'));
  });
  after(() => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))));

  test('openssl verify: server, wrong-name and client certificates chain to their CAs; expired and untrusted do not', async () => {
    assert.match(await verify(certs.ca.cert, certs.server.cert), /: OK$/);
    assert.match(await verify(certs.ca.cert, certs.wrongName.cert), /: OK$/);
    assert.match(await verify(certs.clientCa.cert, certs.client.cert), /: OK$/);
    assert.match(await verify(certs.ca.cert, certs.expired.cert), /certificate has expired/);
    assert.match(await verify(certs.ca.cert, certs.untrusted.cert), /unable to get local issuer certificate/);
    assert.match(await verify(certs.otherCa.cert, certs.untrusted.cert), /: OK$/);
    assert.match(await verify(certs.ca.cert, certs.client.cert), /unable to get local issuer certificate/);
  });

  test('Node sees each variant as the error it stands for', async () => {
    const { ca } = certs;
    assert.equal((await httpsGetText(await serve(certs.server, servers), { ca: ca.cert })).body, 'ok');
    assert.equal((await httpsGetText((await serve(certs.server, servers)).replace('127.0.0.1', 'localhost'), { ca: ca.cert })).status, 200);
    await assert.rejects(httpsGetText(await serve(certs.wrongName, servers), { ca: ca.cert }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    await assert.rejects(httpsGetText(await serve(certs.expired, servers), { ca: ca.cert }), { code: 'CERT_HAS_EXPIRED' });
    await assert.rejects(httpsGetText(await serve(certs.untrusted, servers), { ca: ca.cert }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    await assert.rejects(httpsGetText(await serve(certs.server, servers), { ca: certs.otherCa.cert }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  test('writeCertsDir lays out HOST:PORT/ca.crt, client.cert, client.key', async () => {
    const root = await tmp.make('certs-d');
    const dir = await writeCertsDir(root, '127.0.0.1:5443', { ca: certs.ca.cert, clientCert: certs.client.cert, clientKey: certs.client.key });
    assert.equal(dir, join(root, '127.0.0.1:5443'));
    assert.deepEqual(readFileSync(join(dir, 'ca.crt')), readFileSync(certs.ca.cert));
    assert.deepEqual(readFileSync(join(dir, 'client.cert')), readFileSync(certs.client.cert));
    assert.deepEqual(readFileSync(join(dir, 'client.key')), readFileSync(certs.client.key));
    const caOnly = await writeCertsDir(root, 'localhost:5000', { ca: certs.ca.cert });
    assert.ok(existsSync(join(caOnly, 'ca.crt')));
    assert.equal(existsSync(join(caOnly, 'client.cert')), false);
  });
});
