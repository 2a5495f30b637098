import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { connectFirst, plainGet, type HttpResponse } from '../../src/registry/plain-http.js';
import { isRetryable } from '../../src/registry/retry.js';
import { createDigestWriter, type DigestWriter } from '../../src/sys/native.js';
import { TempDirs } from '../helpers/tmp.js';

const tmp = new TempDirs();
const servers: Array<HttpServer | NetServer> = [];
const rawSockets = new Set<Socket>();
after(async () => {
  for (const s of rawSockets) s.destroy();
  for (const s of servers) {
    (s as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
  await tmp.cleanup();
});

const TIMEOUTS = { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 };

async function listen<S extends HttpServer | NetServer>(server: S): Promise<URL> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return new URL(`http://127.0.0.1:${port}/`);
}

/** A raw TCP server: `onSocket` writes whatever bytes the test needs after the request head arrived. */
async function rawServer(onSocket: (socket: Socket, requestHead: string) => void): Promise<URL> {
  return listen(
    createNetServer((socket) => {
      rawSockets.add(socket);
      let head = '';
      socket.on('error', () => {});
      socket.on('data', function onData(chunk) {
        head += chunk.toString('latin1');
        if (head.includes('\r\n\r\n')) {
          socket.off('data', onData);
          onSocket(socket, head);
        }
      });
    }),
  );
}

async function fileWriter(): Promise<{ writer: DigestWriter; path: string; close(): void }> {
  const path = join(await tmp.make('plain-http'), 'blob');
  const fd = openSync(path, 'a');
  return { writer: createDigestWriter(fd, 'sha256'), path, close: () => closeSync(fd) };
}

async function drainDirect(res: HttpResponse, writer: DigestWriter, slice = 256 * 1024): Promise<number> {
  assert.ok(res.direct, 'a Content-Length body is offered as a DirectSource');
  let total = 0;
  try {
    for (let n; (n = await res.direct.pipeTo(writer, slice)) > 0; ) total += n;
  } finally {
    res.body.destroy();
  }
  return total;
}

async function readAll(res: HttpResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Open descriptors of this process, once connections of earlier tests have wound down. */
async function openFds(): Promise<number> {
  await new Promise((r) => setTimeout(r, 50));
  return readdirSync('/proc/self/fd').length;
}

describe('plainGet (HTTP/1.1 on a native socket)', () => {
  test('a Content-Length body goes straight into a DigestWriter: same bytes, same digest; the request head is well-formed', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 77);
    let seen: { url?: string; headers?: Record<string, unknown> } = {};
    const url = await listen(
      createHttpServer((req, res) => {
        seen = { url: req.url!, headers: req.headers };
        res.setHeader('x-many', ['a', 'b']);
        res.writeHead(200, { 'content-length': data.length, 'docker-content-digest': 'sha256:x' });
        res.end(data);
      }),
    );
    const fds = await openFds();
    const res = await plainGet(new URL('/v2/a/blobs/sha256:x?q=1', url), { headers: { authorization: 'Bearer t', 'user-agent': 'stratum-test' }, ...TIMEOUTS });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-content-digest'], 'sha256:x');
    assert.deepEqual(res.headers['x-many'], ['a', 'b']);
    assert.equal(seen.url, '/v2/a/blobs/sha256:x?q=1');
    assert.equal(seen.headers!.authorization, 'Bearer t');
    assert.equal(seen.headers!.host, url.host);
    assert.equal(seen.headers!.connection, 'close');
    const f = await fileWriter();
    try {
      assert.equal(await drainDirect(res, f.writer), data.length);
      assert.equal(f.writer.bytes, data.length);
      assert.equal(f.writer.digest(), createHash('sha256').update(data).digest('hex'));
      assert.ok(readFileSync(f.path).equals(data));
    } finally {
      f.close();
    }
    assert.equal(await openFds(), fds, 'the socket is closed once the body is destroyed');
  });

  test('a body that arrives with the head (one segment) and an interim 100 response before the real one', async () => {
    const url = await rawServer((s) => s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  spaced  \r\n\r\nhello'));
    const res = await plainGet(url, { headers: {}, ...TIMEOUTS });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-a'], 'spaced');
    const f = await fileWriter();
    try {
      assert.equal(await drainDirect(res, f.writer), 5);
      assert.equal(readFileSync(f.path, 'utf8'), 'hello');
    } finally {
      f.close();
    }
  });

  test('chunked and close-delimited bodies are read as streams (no DirectSource)', async () => {
    const parts = [randomBytes(100_000), randomBytes(1), randomBytes(300_000)];
    const chunkedUrl = await listen(
      createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (const p of parts) res.write(p);
        res.end();
      }),
    );
    const chunked = await plainGet(chunkedUrl, { headers: {}, ...TIMEOUTS });
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    assert.equal(chunked.direct, undefined);
    assert.ok((await readAll(chunked)).equals(Buffer.concat(parts)));

    const closeUrl = await rawServer((s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end'));
    const closed = await plainGet(closeUrl, { headers: {}, ...TIMEOUTS });
    assert.equal(closed.direct, undefined);
    assert.equal((await readAll(closed)).toString(), 'until the end');
  });

  test('an error status keeps its small body readable (what the registry client quotes)', async () => {
    const url = await listen(
      createHttpServer((_req, res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
      }),
    );
    const res = await plainGet(url, { headers: {}, ...TIMEOUTS });
    assert.equal(res.statusCode, 404);
    assert.match((await readAll(res)).toString(), /BLOB_UNKNOWN/);
  });

  test('connection closed mid-body: a retryable NetworkError, and the writer counts exactly the bytes that landed', async () => {
    const sent = randomBytes(700 * 1024);
    const url = await rawServer((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`);
      s.end(sent);
    });
    const res = await plainGet(url, { headers: {}, ...TIMEOUTS });
    const f = await fileWriter();
    try {
      const err = await drainDirect(res, f.writer).then(
        () => assert.fail('a short body must fail'),
        (e: unknown) => e,
      );
      assert.ok(isStratumError(err, 'ERR_NETWORK'), String(err));
      assert.match((err as Error).message, new RegExp(`^${url.origin}: connection closed after ${sent.length} of ${2 * 1024 * 1024} body bytes`));
      assert.ok(isRetryable(err));
      assert.equal(f.writer.bytes, sent.length);
      assert.ok(readFileSync(f.path).equals(sent));
      assert.equal(f.writer.digest(), createHash('sha256').update(sent).digest('hex'), 'hash and file agree after the failure');
    } finally {
      f.close();
    }
  });

  test('silence longer than bodyTimeoutMs: ETIMEDOUT, retryable; the streamed path times out too', async () => {
    const url = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc'));
    const options = { headers: {}, ...TIMEOUTS, bodyTimeoutMs: 150 };
    const f = await fileWriter();
    try {
      const started = Date.now();
      const err = await drainDirect(await plainGet(url, options), f.writer).catch((e: unknown) => e);
      assert.ok(Date.now() - started < 1500);
      assert.equal(((err as Error).cause as { code?: string }).code, 'ETIMEDOUT', String(err));
      assert.ok(isRetryable(err));
      assert.equal(f.writer.bytes, 3);
    } finally {
      f.close();
    }
    const streamed = await readAll(await plainGet(url, options)).catch((e: unknown) => e);
    assert.ok(isRetryable(streamed), String(streamed));
  });

  test('abort while a receive waits: rejects at once with the AbortError and closes the socket', async () => {
    const url = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n'));
    const fds = await openFds();
    const ac = new AbortController();
    const res = await plainGet(url, { headers: {}, ...TIMEOUTS, bodyTimeoutMs: 30_000, signal: ac.signal });
    const f = await fileWriter();
    try {
      setTimeout(() => ac.abort(), 100);
      const started = Date.now();
      const err = await res.direct!.pipeTo(f.writer, 1 << 20).catch((e: unknown) => e);
      assert.ok(Date.now() - started < 2000, 'woken by the abort, not by the 30 s timeout');
      assert.equal((err as Error).name, 'AbortError', String(err));
    } finally {
      f.close();
    }
    assert.equal(await openFds(), fds);
  });

  test('a name with several addresses: the first that answers is used (::1 refused or absent, 127.0.0.1 listening); an abort stops it', async () => {
    const url = await rawServer((s) => s.end('HTTP/1.1 204 No Content\r\n\r\n'));
    const port = Number(url.port);
    const socket = await connectFirst(['::1', '127.0.0.1'], port, 2000);
    assert.equal(socket.peer, `127.0.0.1:${port}`);
    await socket.close();
    const res = await plainGet(new URL(`http://localhost:${port}/`), { headers: {}, ...TIMEOUTS });
    assert.equal(res.statusCode, 204);
    res.body.destroy();
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(connectFirst(['127.0.0.1'], port, 2000, ac.signal), { name: 'AbortError' });
    await assert.rejects(connectFirst([], port, 2000), /no address to connect to/);
  });

  test('refused connection, bad responses and bad headers: clear errors, nothing left open', async () => {
    const dead = await listen(createNetServer());
    await new Promise((r) => servers.pop()!.close(r));
    const badLength = await rawServer((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 12, 13\r\n\r\n'));
    const notHttp = await rawServer((s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'));
    const hugeHead = await rawServer((s) => s.end(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`));
    const hangUp = await rawServer((s) => s.end());
    const fds = await openFds();

    const refused = await plainGet(dead, { headers: {}, ...TIMEOUTS }).catch((e: unknown) => e);
    assert.equal((refused as { code?: string }).code, 'ECONNREFUSED');
    assert.match((refused as Error).message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${dead.port}: Connection refused`));
    assert.ok(isRetryable(refused));
    await assert.rejects(plainGet(badLength, { headers: {}, ...TIMEOUTS }), { code: 'ERR_HTTP_PARSE', message: /invalid Content-Length/ });
    await assert.rejects(plainGet(notHttp, { headers: {}, ...TIMEOUTS }), { code: 'ERR_HTTP_PARSE', message: /not an HTTP\/1\.1 response/ });
    await assert.rejects(plainGet(hugeHead, { headers: {}, ...TIMEOUTS }), /response head is over 65536 bytes/);
    await assert.rejects(plainGet(hangUp, { headers: {}, ...TIMEOUTS }), { code: 'ECONNRESET', message: /closed before any response/ });

    await assert.rejects(plainGet(badLength, { headers: { 'x-evil': 'a\r\nInjected: yes' }, ...TIMEOUTS }), /invalid HTTP header "x-evil"/);
    await assert.rejects(plainGet(new URL('https://127.0.0.1/'), { headers: {}, ...TIMEOUTS }), /http: URLs only/);
    assert.equal(await openFds(), fds);
  });
});
