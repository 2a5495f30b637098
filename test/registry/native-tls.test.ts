import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request as httpsRequest, createServer, type Server, type ServerOptions } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rootCertificates } from 'node:tls';
import { rawAddon } from '../../src/sys/addon.js';
import { NativeTlsContext, nativeGet, receiveBody, type NativeTlsOptions } from '../../src/registry/transport/native-tls.js';
import { certificateProblem } from '../../src/registry/transport/tls-errors.js';
import { makeCertificates, type CertPair, type TestCertificates } from '../helpers/certs.js';
import { listenOnLoopback, OpenSockets } from '../helpers/loopback.js';
import { TempDirs } from '../helpers/tmp.js';

/**
 * Issue 12 experiment: native/tls.c against Node https servers. Every certificate failure must
 * carry the code Node's own TLS gives for the same server (so tls-errors.ts names it alike), and
 * verification is on unless rejectUnauthorized is false.
 */
const tmp = new TempDirs();
after(() => tmp.cleanup());

const BODY = randomBytes(9 << 20); // more than two 4 MiB slices
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

describe('native TLS receive (experiment)', () => {
  let certs: TestCertificates;
  let dir: string;
  const servers: Server[] = [];
  const sockets = new OpenSockets();
  const pem = (p: string) => readFileSync(p, 'utf8');

  before(async () => {
    dir = await tmp.make('native-tls');
    certs = await makeCertificates(join(dir, 'pki'));
  });
  after(async () => {
    sockets.destroyAll();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  });

  async function serve(pair: CertPair, extra: ServerOptions = {}, body: (res: import('node:http').ServerResponse) => void = (res) => res.end(BODY)): Promise<number> {
    const server = createServer({ cert: readFileSync(pair.cert), key: readFileSync(pair.key), ...extra }, (_req, res) => {
      res.setHeader('content-type', 'application/octet-stream');
      body(res);
    });
    server.on('secureConnection', (s) => sockets.add(s));
    servers.push(server);
    return listenOnLoopback(server);
  }

  /** What Node's own https client says about the same server (the error code, or 'ok'). */
  function nodeSays(port: number, host: string, o: NativeTlsOptions): Promise<string> {
    return new Promise((resolve) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port, path: '/', ...(isIP(host) ? {} : { servername: host }), ca: o.ca, cert: o.cert, key: o.key, rejectUnauthorized: o.rejectUnauthorized ?? true, agent: false },
        (res) => {
          res.resume();
          res.on('end', () => resolve('ok'));
          res.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
        },
      );
      req.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
      req.end();
    });
  }

  /** Native GET of https://host:port/ (connecting to 127.0.0.1): 'ok' with the body's digest checked, or the error code. */
  async function nativeSays(port: number, host: string, o: NativeTlsOptions): Promise<{ code: string; err?: unknown }> {
    const raw = rawAddon();
    const ctx = new NativeTlsContext(o);
    try {
      const head = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`);
      const res = await raw.tlsRequest(ctx.handle, { address: '127.0.0.1', port, host, head, timeoutMs: 5000 });
      assert.equal(res.alpn, 'http/1.1');
      const file = join(dir, `body-${port}-${host}`);
      const fd = openSync(file, 'w');
      try {
        const h = raw.digestCreate(fd, 'sha256', false, file);
        const text = res.head.toString('latin1');
        const len = Number(/content-length: (\d+)/i.exec(text)?.[1]);
        const progress: number[] = [];
        const n = await receiveBody({ status: 200, headers: {}, alpn: res.alpn, protocol: res.protocol, contentLength: len, conn: res.conn }, h, { onProgress: (p) => progress.push(p) });
        assert.equal(n, BODY.length);
        assert.ok(progress.length >= 3, 'progress after each slice');
        assert.equal(raw.digestFinal(h), BODY_SHA);
        assert.deepEqual(readFileSync(file), BODY);
      } finally {
        closeSync(fd);
      }
      return { code: 'ok' };
    } catch (err) {
      return { code: (err as { code?: string }).code ?? String(err), err };
    }
  }

  const trustCa = (): NativeTlsOptions => ({ ca: [...rootCertificates, pem(certs.ca.cert)] });

  test('verified download: IP and DNS names, body in slices into file + sha256', async () => {
    const port = await serve(certs.server);
    assert.equal((await nativeSays(port, '127.0.0.1', trustCa())).code, 'ok');
    assert.equal((await nativeSays(port, 'localhost', trustCa())).code, 'ok');
  });

  test('nativeGet: request line, Host and parsed head', async () => {
    const port = await serve(certs.server, {}, (res) => {
      res.setHeader('docker-content-digest', 'sha256:x');
      res.end('hello');
    });
    const ctx = new NativeTlsContext(trustCa());
    const res = await nativeGet(ctx, new URL(`https://127.0.0.1:${port}/v2/x/blobs/sha256:x?a=1`));
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-content-digest'], 'sha256:x');
    assert.equal(res.contentLength, 5);
    assert.equal(res.protocol, 'TLSv1.3');
    rawAddon().tlsClose(res.conn);
  });

  const failures: Array<[string, (c: TestCertificates) => CertPair, string, (c: TestCertificates) => NativeTlsOptions, string]> = [
    ['CA not trusted', (c) => c.server, '127.0.0.1', () => ({ ca: [...rootCertificates] }), 'unknown-authority'],
    ['signed by another CA', (c) => c.untrusted, '127.0.0.1', (c) => ({ ca: [readFileSync(c.ca.cert, 'utf8')] }), 'unknown-authority'],
    // A CA certificate served as the server's: Node (and so native) say INVALID_PURPOSE, named as not a server certificate.
    ['a CA certificate as the server certificate', (c) => c.otherCa, '127.0.0.1', (c) => ({ ca: [readFileSync(c.ca.cert, 'utf8')] }), 'wrong-purpose'],
    ['expired', (c) => c.expired, '127.0.0.1', (c) => ({ ca: [readFileSync(c.ca.cert, 'utf8')] }), 'expired'],
    ['certificate for another name (IP)', (c) => c.wrongName, '127.0.0.1', (c) => ({ ca: [readFileSync(c.ca.cert, 'utf8')] }), 'wrong-name'],
    ['certificate for another name (DNS)', (c) => c.server, 'registry.example', (c) => ({ ca: [readFileSync(c.ca.cert, 'utf8')] }), 'wrong-name'],
  ];
  for (const [name, pair, host, options, kind] of failures) {
    test(`refused like Node: ${name}`, async () => {
      const port = await serve(pair(certs));
      const node = await nodeSays(port, host, options(certs));
      const native = await nativeSays(port, host, options(certs));
      assert.notEqual(native.code, 'ok');
      assert.equal(native.code, node, `native ${native.code} vs node ${node}: ${(native.err as Error)?.message}`);
      assert.equal(certificateProblem(native.err, `${host}:${port}`, undefined)?.problem ?? 'none', kind, (native.err as Error)?.message);
    });
  }

  test('rejectUnauthorized:false accepts what verification refuses', async () => {
    const port = await serve(certs.untrusted);
    assert.equal((await nativeSays(port, 'registry.example', { ca: [], rejectUnauthorized: false })).code, 'ok');
  });

  test('client certificate: refused without, accepted with', async () => {
    const port = await serve(certs.server, { requestCert: true, rejectUnauthorized: true, ca: readFileSync(certs.clientCa.cert) });
    const without = await nativeSays(port, '127.0.0.1', trustCa());
    assert.equal(without.code, await nodeSays(port, '127.0.0.1', trustCa()));
    assert.equal(certificateProblem(without.err, `127.0.0.1:${port}`, undefined)?.problem, 'client-certificate', (without.err as Error)?.message);
    const withCert = { ...trustCa(), cert: pem(certs.client.cert), key: pem(certs.client.key) };
    assert.equal((await nativeSays(port, '127.0.0.1', withCert)).code, 'ok');
  });

  test('a body cut short rejects with the bytes that landed', async () => {
    const port = await serve(certs.server, {}, (res) => {
      res.setHeader('content-length', String(BODY.length));
      res.write(BODY.subarray(0, 5 << 20), () => res.socket?.destroy());
    });
    const r = await nativeSays(port, '127.0.0.1', trustCa());
    assert.notEqual(r.code, 'ok');
    assert.equal(typeof (r.err as { bytes?: unknown }).bytes, 'number');
  });

  test('refused connection and argument checks', async () => {
    const ctx = new NativeTlsContext(trustCa());
    await assert.rejects(rawAddon().tlsRequest(ctx.handle, { address: '127.0.0.1', port: 1, host: '127.0.0.1', head: Buffer.from('x') }), { code: 'ECONNREFUSED', syscall: 'connect' });
    const fd = openSync('/dev/null', 'w');
    const h = rawAddon().digestCreate(fd, 'sha256', false);
    // A digest handle is not a connection, nor the reverse (type-tagged externals).
    assert.throws(() => rawAddon().tlsReceive(h as never, h, 1), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => rawAddon().tlsRequest(h as never, { address: '127.0.0.1', port: 1, host: 'x', head: Buffer.from('') }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => rawAddon().digestFinal(ctx.handle as never), { code: 'ERR_INVALID_ARGUMENT' });
    closeSync(fd);
    assert.throws(() => new NativeTlsContext({ ca: ['-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n'] }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => new NativeTlsContext({ ca: [], cert: pem(certs.client.cert) }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => new NativeTlsContext({ ca: [], cert: pem(certs.client.cert), key: pem(certs.server.key) }), { code: 'ERR_INVALID_ARGUMENT' });
  });
});
