import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { request as httpsRequest, createServer, type Server, type ServerOptions } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rootCertificates } from 'node:tls';
import { rawAddon } from '../../src/sys/addon.js';
import { loadSharedRoots, NativeBody, NativeTlsContext, nativeGet, receiveBody, type NativeTlsOptions } from '../../src/registry/transport/native-tls.js';
import { certificateProblem } from '../../src/registry/transport/tls-errors.js';
import { makeCertificates, type CertPair, type TestCertificates } from '../helpers/certs.js';
import { listenOnLoopback, OpenSockets } from '../helpers/loopback.js';
import { TempDirs } from '../helpers/tmp.js';

/**
 * Native receive (native/tls.c) against Node https and http servers. Every certificate failure must
 * carry the code Node's own TLS gives for the same server (so tls-errors.ts names it alike), and
 * verification is on unless rejectUnauthorized is false.
 */
const tmp = new TempDirs();
after(() => tmp.cleanup());

const BODY = randomBytes(9 << 20); // more than two 4 MiB slices
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

describe('native receive (TLS and plain HTTP)', () => {
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
        const n = await receiveBody({ status: 200, headers: {}, alpn: res.alpn, protocol: res.protocol, contentLength: len, chunked: false, reusable: false, conn: res.conn }, h, { onProgress: (p) => progress.push(p) });
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

  test('shared roots: parsed once on the pool, trusted by every context that asks, beside its own CAs; a context made while they parse waits for them only when a chain needs them', async () => {
    const port = await serve(certs.server);
    const otherPort = await serve(certs.untrusted);
    assert.throws(() => new NativeTlsContext({ roots: true, ca: [] }), /before tlsLoadRoots/);
    // The "roots" here: the unrelated CA (which signs `untrusted`) among enough copies of Node's
    // bundled roots that parsing them takes a while (hundreds of milliseconds).
    const copies = Array.from({ length: 12 }, () => rootCertificates).flat();
    let parsed = false;
    const first = loadSharedRoots(() => [...copies, pem(certs.otherCa.cert)]);
    assert.equal(loadSharedRoots(() => assert.fail('parsed twice')), first, 'one load per process');
    const loading = first.then(() => (parsed = true));
    // Made while the roots parse: the host's own CA verifies at once, without waiting for them.
    const ownCa = new NativeTlsContext({ roots: true, ca: [pem(certs.ca.cert)] });
    const viaLookup = new NativeTlsContext({ roots: true, ca: [] });
    const refused = new NativeTlsContext({ roots: true, ca: [] });
    const res = await nativeGet(ownCa, new URL(`https://127.0.0.1:${port}/`), { timeoutMs: 5000 });
    assert.equal(parsed, false, 'the own-CA handshake did not wait for the roots');
    rawAddon().tlsClose(res.conn);
    // A chain that needs a root waits for the parse, then verifies against them.
    const other = await nativeGet(viaLookup, new URL(`https://127.0.0.1:${otherPort}/`), { timeoutMs: 5000 });
    assert.equal(other.status, 200, 'verified through the roots (the only place its CA is)');
    rawAddon().tlsClose(other.conn);
    const notTrusted = await nativeGet(refused, new URL(`https://127.0.0.1:${port}/`), { timeoutMs: 5000 }).then(
      () => assert.fail('verified without its CA'),
      (err: unknown) => err,
    );
    assert.equal(certificateProblem(notTrusted, `127.0.0.1:${port}`, undefined)?.problem, 'unknown-authority', String(notTrusted));
    await loading;
    // Made after the parse: the roots are added directly, with the same verdicts.
    assert.equal((await nativeSays(port, '127.0.0.1', { roots: true, ca: [pem(certs.ca.cert)] })).code, 'ok');
    assert.equal((await nativeSays(otherPort, '127.0.0.1', { roots: true, ca: [] })).code, 'ok');
    const without = await nativeSays(port, '127.0.0.1', { roots: true, ca: [] });
    assert.equal(certificateProblem(without.err, `127.0.0.1:${port}`, undefined)?.problem, 'unknown-authority', String(without.code));
  });

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

  /** A plain-HTTP server answering every request with `body`. */
  async function servePlain(body: (res: import('node:http').ServerResponse) => void): Promise<number> {
    const server = createHttpServer((_req, res) => body(res));
    server.on('connection', (s) => sockets.add(s));
    servers.push(server as unknown as Server);
    return listenOnLoopback(server);
  }

  async function readBody(body: NativeBody): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of body) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  test('plain HTTP: the same request and receive without TLS', async () => {
    const port = await servePlain((res) => res.end(BODY));
    const res = await nativeGet(new NativeTlsContext({ plain: true }), new URL(`http://127.0.0.1:${port}/v2/`));
    assert.equal(res.protocol, 'plain');
    assert.equal(res.contentLength, BODY.length);
    const file = join(dir, `plain-${port}`);
    const fd = openSync(file, 'w');
    try {
      const h = rawAddon().digestCreate(fd, 'sha256', false, file);
      assert.equal(await receiveBody(res, h), BODY.length);
      assert.equal(rawAddon().digestFinal(h), BODY_SHA);
    } finally {
      closeSync(fd);
    }
  });

  /**
   * A server (https or http) that numbers its connections and each connection's requests; `answer`
   * may end a response, or do something worse, from those numbers.
   */
  async function serveCounting(tls: boolean, answer: (res: import('node:http').ServerResponse, conn: number, nth: number) => void): Promise<{ port: number; connections: () => number }> {
    let connections = 0;
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
      const socket = req.socket as typeof req.socket & { stratumConn?: number; stratumNth?: number };
      socket.stratumConn ??= ++connections;
      socket.stratumNth = (socket.stratumNth ?? 0) + 1;
      answer(res, socket.stratumConn, socket.stratumNth);
    };
    if (!tls) return { port: await servePlain((res) => handler(res.req, res)), connections: () => connections };
    const port = await serve(certs.server, {}, (res) => handler(res.req, res));
    return { port, connections: () => connections };
  }

  for (const tls of [true, false]) {
    const scheme = tls ? 'https' : 'http';
    const context = () => (tls ? new NativeTlsContext(trustCa()) : new NativeTlsContext({ plain: true }));
    /** One GET read to its end (a NativeBody released to the context as Transport does). */
    const get = async (ctx: NativeTlsContext, port: number, path = '/') => {
      const res = await nativeGet(ctx, new URL(`${scheme}://127.0.0.1:${port}${path}`), { timeoutMs: 5000 });
      const body = new NativeBody(res.conn, res.contentLength, res.chunked, res.reusable ? (c) => ctx.release(c) : undefined);
      return { status: res.status, reusable: res.reusable, text: (await readBody(body)).toString() };
    };

    test(`keep-alive (${scheme}): GETs whose bodies were read share one connection`, async () => {
      const server = await serveCounting(tls, (res, conn, nth) => res.end(`c${conn} r${nth}`));
      const ctx = context();
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c1 r1' });
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c1 r2' });
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c1 r3' });
      assert.equal(server.connections(), 1);
      // A kept connection carries requests for its own host and context only.
      const kept = ctx.takeIdle()!;
      const head = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const misuse = (c: NativeTlsContext, host: string) => () => rawAddon().tlsRequest(c.handle, { address: '127.0.0.1', port: server.port, host, head, conn: kept });
      assert.throws(misuse(ctx, 'localhost'), /conn was made for another host/);
      assert.throws(misuse(tls ? new NativeTlsContext({ plain: true }) : new NativeTlsContext(trustCa()), '127.0.0.1'), /of another context/);
      assert.throws(() => rawAddon().tlsRequest(ctx.handle, { address: '127.0.0.1', port: server.port, host: '127.0.0.1', head, conn: ctx.handle as never }), /expected a TLS connection/);
      ctx.release(kept);
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c1 r4' });
      ctx.closeIdle();
    });

    test(`keep-alive (${scheme}): a 304 has no body whatever its Content-Length says, and its connection carries the next GET`, async () => {
      const server = await serveCounting(tls, (res, conn, nth) => {
        if (nth === 1) {
          // A 304's Content-Length is the resource's: no byte of it follows the head.
          res.writeHead(304, { 'content-length': '5' });
          res.end();
        } else res.end(`c${conn} r${nth}`);
      });
      const ctx = context();
      const notModified = await nativeGet(ctx, new URL(`${scheme}://127.0.0.1:${server.port}/`), { timeoutMs: 5000 });
      assert.equal(notModified.contentLength, 0);
      const body = new NativeBody(notModified.conn, notModified.contentLength, notModified.chunked, (c) => ctx.release(c));
      assert.equal((await readBody(body)).length, 0);
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c1 r2' });
      assert.equal(server.connections(), 1);
      ctx.closeIdle();
    });

    test(`keep-alive (${scheme}): Connection: close, a body not read to its end, and a dead idle connection are never reused`, async () => {
      const server = await serveCounting(tls, (res, conn, nth) => {
        if (conn === 1) res.setHeader('connection', 'close');
        res.end(conn === 2 ? BODY : `c${conn} r${nth}`);
      });
      const ctx = context();
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: false, text: 'c1 r1' });
      // Connection 2: a big body abandoned after its first chunk.
      const res = await nativeGet(ctx, new URL(`${scheme}://127.0.0.1:${server.port}/`));
      assert.equal(res.reusable, true);
      const body = new NativeBody(res.conn, res.contentLength, res.chunked, (c) => ctx.release(c));
      for await (const _ of body) break;
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c3 r1' });
      // The server drops its idle connections: the next GET notices before sending and connects anew.
      sockets.destroyAll();
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await get(ctx, server.port), { status: 200, reusable: true, text: 'c4 r1' });
      assert.equal(server.connections(), 4);
      ctx.closeIdle();
    });

    test(`keep-alive (${scheme}): a kept connection the server drops as the request arrives is retried on a new one`, async () => {
      const server = await serveCounting(tls, (res, conn, nth) => {
        if (nth === 2) res.socket!.destroy();
        else res.end(`c${conn} r${nth}`);
      });
      const ctx = context();
      assert.equal((await get(ctx, server.port)).text, 'c1 r1');
      assert.equal((await get(ctx, server.port)).text, 'c2 r1');
      assert.equal(server.connections(), 2);
      ctx.closeIdle();
    });
  }

  test('a name with several addresses: each in turn until one connects (an address nobody listens on first)', async () => {
    const port = await serve(certs.server);
    const asked: string[] = [];
    const resolve = async (host: string) => {
      asked.push(host);
      return ['127.0.0.3', '127.0.0.1']; // the server listens on 127.0.0.1 only
    };
    const res = await nativeGet(new NativeTlsContext(trustCa()), new URL(`https://localhost:${port}/`), { resolve, timeoutMs: 5000 });
    assert.equal(res.status, 200);
    assert.deepEqual(asked, ['localhost']);
    rawAddon().tlsClose(res.conn);
    // Every address refuses: the last refusal is the error.
    await assert.rejects(
      nativeGet(new NativeTlsContext(trustCa()), new URL(`https://localhost:${port}/`), { resolve: async () => ['127.0.0.3', '127.0.0.4'] }),
      (err: Error & { code?: string }) => err.code === 'ECONNREFUSED' && /127\.0\.0\.4/.test(err.message),
    );
  });

  test('a receive returns what has arrived when the peer pauses (progress while a body is slow)', async () => {
    const port = await servePlain((res) => {
      res.setHeader('content-length', String(BODY.length));
      res.write(BODY.subarray(0, 1 << 20));
      setTimeout(() => res.end(BODY.subarray(1 << 20)), 400);
    });
    const res = await nativeGet(new NativeTlsContext({ plain: true }), new URL(`http://127.0.0.1:${port}/`));
    const fd = openSync('/dev/null', 'w');
    try {
      const h = rawAddon().digestCreate(fd, 'sha256', false);
      const started = Date.now();
      const first = await rawAddon().tlsReceive(res.conn, h, 8 << 20);
      assert.ok(first > 0 && first <= 1 << 20, `first receive: ${first}`);
      assert.ok(Date.now() - started < 300, 'the first receive did not wait for the pause to end');
      let got = first;
      while (got < BODY.length) got += await rawAddon().tlsReceive(res.conn, h, 8 << 20);
      assert.equal(rawAddon().digestFinal(h), BODY_SHA);
    } finally {
      rawAddon().tlsClose(res.conn);
      closeSync(fd);
    }
  });

  test('an abort wakes a receive waiting on a stalled peer, and a request waiting for the head', async () => {
    const port = await servePlain((res) => {
      res.setHeader('content-length', String(BODY.length));
      res.write(BODY.subarray(0, 1 << 16)); // then nothing
    });
    const res = await nativeGet(new NativeTlsContext({ plain: true }), new URL(`http://127.0.0.1:${port}/`));
    const fd = openSync('/dev/null', 'w');
    try {
      const h = rawAddon().digestCreate(fd, 'sha256', false);
      let got = 0;
      while (got < 1 << 16) got += await rawAddon().tlsReceive(res.conn, h, 8 << 20);
      const started = Date.now();
      const waiting = rawAddon().tlsReceive(res.conn, h, 8 << 20);
      setTimeout(() => rawAddon().tlsAbort(res.conn), 100);
      await assert.rejects(waiting, { name: 'AbortError', code: 'ABORT_ERR' });
      assert.ok(Date.now() - started < 2000, 'the receive returned at the abort, not at the timeout');
    } finally {
      rawAddon().tlsClose(res.conn);
      closeSync(fd);
    }

    const silent = await servePlain(() => {}); // never answers
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    await assert.rejects(nativeGet(new NativeTlsContext({ plain: true }), new URL(`http://127.0.0.1:${silent}/`), { signal: controller.signal, timeoutMs: 20_000 }), { name: 'AbortError' });
    assert.ok(Date.now() - started < 2000, 'the request returned at the abort');
  });

  for (const protocol of ['https', 'http'] as const) {
    test(`${protocol}: chunked and read-to-close bodies are read by JavaScript, decoded`, async () => {
      const text = 'x'.repeat(100_000);
      const answer = (res: import('node:http').ServerResponse) => {
        res.writeHead(404, { 'content-type': 'text/plain' }); // no length: chunked
        res.write(text.slice(0, 40_000));
        setTimeout(() => res.end(text.slice(40_000)), 20);
      };
      const port = protocol === 'https' ? await serve(certs.server, {}, answer) : await servePlain(answer);
      const ctx = protocol === 'https' ? new NativeTlsContext(trustCa()) : new NativeTlsContext({ plain: true });
      const res = await nativeGet(ctx, new URL(`${protocol}://127.0.0.1:${port}/`));
      assert.equal(res.status, 404);
      assert.equal(res.chunked, true);
      assert.equal(res.contentLength, undefined);
      assert.equal((await readBody(new NativeBody(res.conn, undefined, true))).toString(), text);

      const closing = await servePlain((res) => {
        res.useChunkedEncodingByDefault = false;
        res.shouldKeepAlive = false;
        res.writeHead(401, { connection: 'close' });
        res.end('denied until close');
      });
      const unframed = await nativeGet(new NativeTlsContext({ plain: true }), new URL(`http://127.0.0.1:${closing}/`));
      assert.equal(unframed.chunked, false);
      assert.equal(unframed.contentLength, undefined);
      assert.equal((await readBody(new NativeBody(unframed.conn, undefined, false))).toString(), 'denied until close');
    });
  }

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
