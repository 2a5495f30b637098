import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import { NetworkError, StratumError } from '../errors.js';
import type { DirectSource } from '../content/content.js';
import type { DigestWriter } from '../sys/native.js';
import { NativeSocket } from '../sys/socket.js';

/**
 * HTTP/1.1 GET over plain TCP on a NativeSocket, for blob bodies from http:// endpoints (a
 * registry or mirror on loopback or a LAN). A Content-Length body can be taken as a DirectSource:
 * the bytes go from the socket to the store's file and hash in C, never as JavaScript chunks,
 * which is what makes a pull faster than skopeo's on a fast link. HTTPS stays with undici: its
 * bytes must be decrypted in Node anyway. One request per connection (`Connection: close`): a
 * blob is large and a connect on such a link costs well under a millisecond.
 */

export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** The part of undici's ResponseData the registry client uses; a plain response has the same shape. */
export interface HttpResponse {
  statusCode: number;
  headers: ResponseHeaders;
  body: Readable & { dump(): Promise<void> };
  /** The body as a DirectSource: only for a Content-Length body nobody has read from yet. */
  direct?: DirectSource;
}

export interface PlainRequestOptions {
  headers: Record<string, string>;
  signal?: AbortSignal;
  connectTimeoutMs: number;
  /** Waiting for the response head. */
  headersTimeoutMs: number;
  /** Silence between two body reads. */
  bodyTimeoutMs: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const READ_SIZE = 256 * 1024;

/** Connection-level failure of a plain request; the cause carries an errno-style code so retries treat it like a socket error. */
function networkError(origin: string, message: string, cause: unknown): NetworkError {
  return new NetworkError(`${origin}: ${message}`, { cause });
}

function prematureClose(origin: string, got: number, length: number): NetworkError {
  return networkError(origin, `connection closed after ${got} of ${length} body bytes`, Object.assign(new Error('premature close'), { code: 'ECONNRESET' }));
}

/** A native failure (errno code) as a NetworkError naming the origin; a StratumError (a disk write) stays as it is. */
function asNetworkError(origin: string, err: unknown): unknown {
  if (err instanceof StratumError || !(err instanceof Error)) return err;
  return networkError(origin, err.message, err);
}

/** A response that breaks HTTP/1.1 (not retried: the server would answer the same). */
function httpError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_HTTP_PARSE' });
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error('This operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * GET `url` (http: only). Resolves once the response head is in; the body is then the caller's to
 * read, pipe or dump. Failures before that reject with the socket's own error (an errno `code`
 * such as ECONNREFUSED, or ECONNRESET for a connection closed early) for the caller to wrap; body
 * failures are NetworkErrors naming the origin.
 */
export async function plainGet(url: URL, options: PlainRequestOptions): Promise<HttpResponse> {
  if (url.protocol !== 'http:') throw new StratumError('ERR_INVALID_ARGUMENT', `plainGet serves http: URLs only, not ${url.protocol}`);
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal);
  const origin = url.origin;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port ? Number(url.port) : 80;
  const head = requestHead(url, options.headers);

  const socket = await connectAny(host, port, options.connectTimeoutMs, signal);
  const onAbort = () => void socket.close();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await socket.send(head, options.headersTimeoutMs);
    const { statusCode, headers, rest } = await readHead(socket, options.headersTimeoutMs);
    const framing = bodyFraming(statusCode, headers);
    const body = new PlainBody(socket, rest, framing, options.bodyTimeoutMs, origin, signal);
    const response: HttpResponse = { statusCode, headers, body };
    if (framing.kind === 'length') response.direct = body;
    return response;
  } catch (err) {
    await socket.close();
    if (signal?.aborted) throw abortError(signal);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Errors after which the next address of a name is worth trying (localhost → ::1 refused, 127.0.0.1 listening). */
const NEXT_ADDRESS_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT']);

async function connectAny(host: string, port: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<NativeSocket> {
  const addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  return connectFirst(addresses, port, timeoutMs, signal);
}

/** Connects to the first of `addresses` that answers, in order (what Node's net does with autoSelectFamily, one at a time). */
export async function connectFirst(addresses: readonly string[], port: number, timeoutMs: number, signal?: AbortSignal): Promise<NativeSocket> {
  let last: unknown = new StratumError('ERR_NETWORK', `no address to connect to on port ${port}`);
  for (const address of addresses) {
    try {
      return await NativeSocket.connect(address, port, timeoutMs, signal);
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      if (!NEXT_ADDRESS_CODES.has((err as { code?: string }).code ?? '')) throw err;
      last = err;
    }
  }
  throw last;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function requestHead(url: URL, headers: Record<string, string>): Buffer {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) throw new StratumError('ERR_INVALID_ARGUMENT', `invalid HTTP header ${JSON.stringify(name)}`);
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'connection' || lower === 'content-length' || lower === 'transfer-encoding') continue;
    lines.push(`${name}: ${value}`);
  }
  lines.push('connection: close', '', '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

interface Head {
  statusCode: number;
  headers: ResponseHeaders;
  /** Bytes received after the head: the start of the body. */
  rest: Buffer;
}

/** Reads until the end of a final (non-1xx) response head; at most 64 KiB of head. */
async function readHead(socket: NativeSocket, timeoutMs: number): Promise<Head> {
  let buf: Buffer = Buffer.alloc(0);
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end > MAX_HEAD_BYTES) throw httpError(`response head is over ${MAX_HEAD_BYTES} bytes`);
    if (end >= 0) {
      const head = parseHead(buf.subarray(0, end).toString('latin1'));
      buf = buf.subarray(end + 4);
      if (head.statusCode >= 100 && head.statusCode < 200) continue; // 100 Continue, 103 Early Hints: the real answer follows
      return { ...head, rest: buf };
    }
    if (buf.length > MAX_HEAD_BYTES) throw httpError(`response head is over ${MAX_HEAD_BYTES} bytes`);
    const chunk = await socket.recv(READ_SIZE, timeoutMs);
    if (chunk.length === 0) {
      throw Object.assign(new Error(buf.length ? 'connection closed in the middle of the response head' : 'connection closed before any response'), { code: 'ECONNRESET' });
    }
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
  }
}

function parseHead(text: string): { statusCode: number; headers: ResponseHeaders } {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!status) throw httpError(`not an HTTP/1.1 response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers: ResponseHeaders = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw httpError(`malformed response header line ${JSON.stringify(line.slice(0, 80))}`);
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers[key];
    headers[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return { statusCode: Number(status[1]), headers };
}

type Framing = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

/** RFC 9112 §6.3, for a GET: no body for 204/304, chunked wins over Content-Length, else Content-Length, else until close. */
function bodyFraming(statusCode: number, headers: ResponseHeaders): Framing {
  if (statusCode === 204 || statusCode === 304) return { kind: 'length', length: 0 };
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    const codings = (Array.isArray(te) ? te.join(',') : te).split(',').map((c) => c.trim().toLowerCase());
    return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  const cl = headers['content-length'];
  if (cl === undefined) return { kind: 'close' };
  const values = new Set((Array.isArray(cl) ? cl : [cl]).flatMap((v) => v.split(',').map((x) => x.trim())));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) throw httpError(`invalid Content-Length ${JSON.stringify(cl)}`);
  return { kind: 'length', length: Number(only) };
}

/**
 * A response body on its socket: a Readable (errors, redirects, the streaming fallback), or a
 * DirectSource when the body has a Content-Length and the caller wants the bytes in a DigestWriter.
 * Destroying it (or the signal) closes the connection.
 */
class PlainBody extends Readable implements DirectSource {
  private prefix: Buffer;
  /** Body bytes not yet handed out (length framing). */
  private remaining: number;
  private frames: AsyncIterator<Buffer> | undefined;
  /** A stream reader hears of the abort as an error; a direct one from pipeTo's promise (an unheard 'error' event would crash the process). */
  private readonly onAbort = () => (this.listenerCount('error') > 0 ? this.destroy(abortError(this.signal!) as Error) : this.destroy());

  constructor(
    private readonly socket: NativeSocket,
    prefix: Buffer,
    private readonly framing: Framing,
    private readonly timeoutMs: number,
    private readonly origin: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    super({ highWaterMark: READ_SIZE });
    this.prefix = prefix;
    this.remaining = framing.kind === 'length' ? framing.length : Infinity;
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  async pipeTo(into: DigestWriter, maxBytes: number): Promise<number> {
    if (this.frames) throw new StratumError('ERR_INVALID_ARGUMENT', `${this.origin}: this body is already being read as a stream`);
    if (this.destroyed) throw this.signal?.aborted ? abortError(this.signal) : new NetworkError(`${this.origin}: the response body was closed`);
    if (this.remaining === 0) return 0;
    if (this.prefix.length > 0) {
      const piece = this.prefix.subarray(0, Math.min(this.prefix.length, this.remaining, maxBytes));
      this.prefix = this.prefix.subarray(piece.length);
      await into.write([piece]);
      this.remaining -= piece.length;
      return piece.length;
    }
    const length = (this.framing as { length: number }).length;
    const before = into.bytes;
    try {
      const n = await this.socket.receiveInto(into, Math.min(maxBytes, this.remaining), this.timeoutMs);
      if (n === 0) throw prematureClose(this.origin, length - this.remaining, length);
      return n;
    } catch (err) {
      if (this.signal?.aborted) throw abortError(this.signal);
      throw asNetworkError(this.origin, err);
    } finally {
      this.remaining -= into.bytes - before;
    }
  }

  /** Discards the rest: the connection is not reused, so this closes it. */
  async dump(): Promise<void> {
    this.destroy();
  }

  override _read(): void {
    this.frames ??= this.framedChunks();
    this.frames.next().then(
      (r) => this.push(r.done ? null : r.value),
      (err) => this.destroy(this.signal?.aborted ? (abortError(this.signal) as Error) : (asNetworkError(this.origin, err) as Error)),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.socket.close().then(
      () => callback(err),
      () => callback(err),
    );
  }

  /** Raw bytes after the head: what came with it, then the socket's until it closes. */
  private async *raw(): AsyncGenerator<Buffer> {
    if (this.prefix.length > 0) {
      const p = this.prefix;
      this.prefix = Buffer.alloc(0);
      yield p;
    }
    for (;;) {
      const chunk = await this.socket.recv(READ_SIZE, this.timeoutMs);
      if (chunk.length === 0) return;
      yield chunk;
    }
  }

  private async *framedChunks(): AsyncGenerator<Buffer> {
    if (this.framing.kind === 'close') {
      yield* this.raw();
    } else if (this.framing.kind === 'length') {
      const { length } = this.framing;
      if (this.remaining > 0) {
        for await (const chunk of this.raw()) {
          const piece = chunk.length > this.remaining ? chunk.subarray(0, this.remaining) : chunk;
          this.remaining -= piece.length;
          yield piece;
          if (this.remaining === 0) break;
        }
      }
      if (this.remaining > 0) throw prematureClose(this.origin, length - this.remaining, length);
    } else {
      yield* dechunk(this.raw(), this.origin);
    }
  }
}

/** Decodes `Transfer-Encoding: chunked` (RFC 9112 §7.1); extensions and trailers are read and dropped. */
async function* dechunk(raw: AsyncGenerator<Buffer>, origin: string): AsyncGenerator<Buffer> {
  let buf: Buffer = Buffer.alloc(0);
  const more = async (): Promise<void> => {
    const r = await raw.next();
    if (r.done) throw networkError(origin, 'connection closed inside a chunked body', Object.assign(new Error('premature close'), { code: 'ECONNRESET' }));
    buf = buf.length ? Buffer.concat([buf, r.value]) : r.value;
  };
  const line = async (): Promise<string> => {
    let end: number;
    while ((end = buf.indexOf('\r\n')) < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new NetworkError(`${origin}: chunked body line over ${MAX_HEAD_BYTES} bytes`);
      await more();
    }
    const text = buf.subarray(0, end).toString('latin1');
    buf = buf.subarray(end + 2);
    return text;
  };
  for (;;) {
    const sizeLine = await line();
    const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(sizeLine);
    if (!size) throw new NetworkError(`${origin}: malformed chunk size ${JSON.stringify(sizeLine.slice(0, 40))}`);
    let left = parseInt(size[1]!, 16);
    if (left === 0) {
      while ((await line()) !== '');
      return;
    }
    while (left > 0) {
      if (buf.length === 0) await more();
      const piece = buf.subarray(0, Math.min(left, buf.length));
      buf = buf.subarray(piece.length);
      left -= piece.length;
      yield piece;
    }
    while (buf.length < 2) await more();
    if (buf[0] !== 0x0d || buf[1] !== 0x0a) throw new NetworkError(`${origin}: chunk not followed by CRLF`);
    buf = buf.subarray(2);
  }
}
