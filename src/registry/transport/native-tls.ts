import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import { ChunkedDecoder } from './chunked.js';
import { rawAddon, type DigestHandle, type RawAddon, type TlsConnHandle, type TlsContextHandle } from '../../sys/addon.js';

/**
 * Native receive (issue 12): a blob GET, over HTTPS or plain HTTP, whose body is received, written
 * and hashed by the addon (native/tls.c) on the thread pool. JavaScript makes every decision
 * (trust, client certificate, verification, the address, the request, redirects, Range) and
 * parses the response head; C moves the bytes. Transport.nativeContext builds the context of an
 * origin from the decisions of its undici pool; origins behind a proxy stay on undici.
 */

export interface NativeTlsOptions {
  /** CAs to trust (PEM texts), besides the shared roots when `roots` is set. */
  ca: string[];
  /** Also trust the roots loaded once by loadSharedRoots (Node's bundled roots and NODE_EXTRA_CA_CERTS). */
  roots?: boolean;
  cert?: string;
  key?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

let sharedRoots: Promise<void> | undefined;

/**
 * Starts parsing `pems` (Node's roots) on the thread pool, once per process; later calls return the
 * same promise. Contexts made with `roots: true` after it resolves share them.
 */
export function loadSharedRoots(pems: () => string[]): Promise<void> {
  sharedRoots ??= rawAddon()
    .tlsLoadRoots(pems().join('\n'))
    .then(() => {});
  return sharedRoots;
}

/** Kept-alive connections a context holds at most; more are closed as their bodies end. */
const MAX_IDLE = 8;
/** An idle connection older than this is closed rather than reused (servers drop idle ones after 30–120 s). */
const IDLE_TIMEOUT_MS = 30_000;

export class NativeTlsContext {
  readonly handle: TlsContextHandle;
  /** Connections whose last response was read to its end, newest last. */
  private readonly idle: Array<{ conn: TlsConnHandle; since: number }> = [];

  /** `plain`: an http: origin (no TLS). */
  constructor(options: NativeTlsOptions | { plain: true }) {
    this.handle = rawAddon().tlsContext(options);
  }

  /** A kept-alive connection for the next request, if one is idle and young enough. */
  takeIdle(): TlsConnHandle | undefined {
    const now = Date.now();
    for (let entry = this.idle.pop(); entry; entry = this.idle.pop()) {
      if (now - entry.since < IDLE_TIMEOUT_MS) return entry.conn;
      rawAddon().tlsClose(entry.conn);
    }
    return undefined;
  }

  /** Takes back a connection whose response was read to its end (HTTP/1.1 keep-alive). */
  release(conn: TlsConnHandle): void {
    if (this.idle.length >= MAX_IDLE) rawAddon().tlsClose(conn);
    else this.idle.push({ conn, since: Date.now() });
  }

  closeIdle(): void {
    for (const { conn } of this.idle.splice(0)) rawAddon().tlsClose(conn);
  }
}

export interface NativeTlsResponse {
  status: number;
  headers: Record<string, string>;
  alpn: string;
  protocol: string;
  /** Body bytes left to receive: the Content-Length, 0 for a 204, 304 or 1xx; undefined: chunked, or up to the close. */
  contentLength: number | undefined;
  /** The body is chunked (read by JavaScript, never received in C). */
  chunked: boolean;
  /** HTTP/1.1 without `Connection: close` and a body framed by its length: the connection may carry another request once the body is read. */
  reusable: boolean;
  conn: TlsConnHandle;
}

export interface GetOptions {
  headers?: Record<string, string>;
  /** The host name's addresses, in the order to try them (default: every address the system resolver gives). */
  resolve?: (host: string) => Promise<string[]>;
  /** Aborts the connect, the handshake or the wait for the head (the socket is shut down). */
  signal?: AbortSignal;
  connectTimeoutMs?: number;
  timeoutMs?: number;
}

async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true })).map((a) => a.address);
}

/** GET url over ctx; resolves once the response head is in (the body is received with receiveBody, or the conn closed). */
export async function nativeGet(ctx: NativeTlsContext, url: URL, options: GetOptions = {}): Promise<NativeTlsResponse> {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`nativeGet: ${url.href} is not http(s)`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const addresses = isIP(host) ? [host] : await (options.resolve ?? resolveAll)(host);
  if (addresses.length === 0) throw Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND', hostname: host });
  // HTTP/1.1 keeps the connection alive by default: a context keeps it for the next request once
  // this one's body is read (tokens, the probe, manifests and blobs then share handshakes).
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw new TypeError(`nativeGet: header ${k} holds a line break`);
    lines.push(`${k}: ${v}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  let res: Awaited<ReturnType<RawAddon['tlsRequest']>> | undefined;
  // Each resolved address in turn, as Node's net.connect without happy eyeballs: a name whose
  // first address refuses (an IPv6 ::1 for a registry listening on 127.0.0.1) is still reached.
  let kept = ctx.takeIdle();
  for (let i = 0; !res; ) {
    options.signal?.throwIfAborted();
    const pending = rawAddon().tlsRequest(ctx.handle, {
      address: addresses[i]!,
      port,
      host,
      head,
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(kept ? { conn: kept } : {}),
    });
    const abort = () => rawAddon().tlsAbort(pending.conn);
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      res = await pending;
    } catch (err) {
      if (options.signal?.aborted) throw err;
      // A kept-alive connection the server closed as the request went out: the GET again on a new one.
      if (kept && (err as { stale?: boolean }).stale) {
        kept = undefined;
        continue;
      }
      if ((err as { syscall?: string }).syscall !== 'connect' || i + 1 >= addresses.length) throw err;
      kept = undefined;
      i++;
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  }
  const text = res.head.toString('latin1');
  const [statusLine = '', ...rest] = text.slice(0, -4).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) {
    rawAddon().tlsClose(res.conn);
    throw new Error(`malformed status line from ${url.host}: ${JSON.stringify(statusLine.slice(0, 80))}`);
  }
  const headers: Record<string, string> = {};
  for (const line of rest) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const cl = headers['content-length'];
  const encoding = (headers['transfer-encoding'] ?? 'identity').toLowerCase();
  const chunked = encoding === 'chunked';
  const framed = cl !== undefined && /^\d+$/.test(cl) && encoding === 'identity';
  const status = Number(m[1]);
  // A body with a Content-Length can be received in C; a chunked one, or one that runs to the
  // close (the request said `Connection: close`), is read by JavaScript (NativeBody's stream).
  if (encoding !== 'identity' && !chunked) {
    rawAddon().tlsClose(res.conn);
    throw Object.assign(new Error(`${url.host} sent a body in transfer-encoding ${JSON.stringify(encoding)}`), { code: 'ERR_HTTP_TRANSFER_ENCODING' });
  }
  // A 204, a 304 or a 1xx has no body whatever its Content-Length says (a 304's is the resource's).
  const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
  const contentLength = noBody ? 0 : framed ? Number(cl) : undefined;
  const reusable = statusLine.startsWith('HTTP/1.1 ') && !/(^|,)\s*close\s*(,|$)/i.test(headers['connection'] ?? '') && (framed || noBody);
  return { status, headers, alpn: res.alpn, protocol: res.protocol, contentLength, chunked: !noBody && !framed && chunked, reusable, conn: res.conn };
}

export interface ReceiveOptions {
  /** Bytes per pool job (progress and abort happen between slices). Default 4 MiB. */
  sliceBytes?: number;
  onProgress?: (received: number) => void;
  signal?: AbortSignal;
}

/** Receives the Content-Length body into the digest handle's file + hash; closes the connection. Returns the byte count. */
export async function receiveBody(res: NativeTlsResponse, digest: DigestHandle, options: ReceiveOptions = {}): Promise<number> {
  const raw = rawAddon();
  const slice = options.sliceBytes ?? 4 << 20;
  let got = 0;
  try {
    if (res.contentLength === undefined) throw new Error('receiveBody: no Content-Length');
    while (got < res.contentLength) {
      options.signal?.throwIfAborted();
      const want = Math.min(slice, res.contentLength - got);
      const n = await raw.tlsReceive(res.conn, digest, want);
      got += n;
      options.onProgress?.(got);
      if (n === 0) throw Object.assign(new Error(`the body ended after ${got} of ${res.contentLength} bytes`), { code: 'ECONNRESET', bytes: got });
    }
    return got;
  } finally {
    raw.tlsClose(res.conn);
  }
}

/**
 * A native response body for the registry client (STRATUM_NATIVE_TLS=1): a Readable (tlsRead
 * slices) wherever JavaScript reads the body itself (error texts, a verified stream), and
 * `receiveInto` for the download, whose bytes then go socket → file + hash in C. `dump()` as
 * undici's bodies have it. The connection closes at the end, on destroy, or on dump.
 */
export class NativeBody extends Readable {
  /** Body bytes not yet handed out (Content-Length minus what was read or received). */
  private left: number;
  private inFlight = false;
  private connClosed = false;
  /** A receive or read failed: the connection is never reused. */
  private failed = false;

  private readonly dechunk: ChunkedDecoder | undefined;

  /**
   * contentLength undefined: the body runs until the peer closes, or is `chunked`; such a body is
   * only read, never received into a writer. `release`: where the connection goes once the body is
   * read to its end (a context's keep-alive pool); without it, or after a failure or an early end,
   * the connection is closed.
   */
  constructor(
    readonly conn: TlsConnHandle,
    readonly contentLength: number | undefined,
    chunked = false,
    private readonly release?: (conn: TlsConnHandle) => void,
  ) {
    super({ highWaterMark: 256 << 10 });
    this.dechunk = chunked && contentLength === undefined ? new ChunkedDecoder() : undefined;
    this.left = contentLength ?? Number.POSITIVE_INFINITY;
    if (this.left === 0) {
      this.close();
      this.push(null);
    }
  }

  override _read(size: number): void {
    if (this.connClosed || this.inFlight) return;
    if (this.left === 0) {
      this.push(null);
      return;
    }
    this.inFlight = true;
    rawAddon()
      .tlsRead(this.conn, Math.min(Math.max(size, 64 << 10), this.left, 16 << 20))
      .then(
        (buf) => {
          this.inFlight = false;
          if (this.dechunk && buf.length > 0) {
            let parts: Buffer[];
            try {
              parts = this.dechunk.push(buf);
            } catch (err) {
              this.destroy(err as Error);
              return;
            }
            for (const part of parts) this.push(part);
            if (this.dechunk.done) {
              this.left = 0;
              this.close();
              this.push(null);
            } else if (parts.length === 0) this._read(size);
            return;
          }
          if (buf.length === 0) {
            if (this.contentLength === undefined && !this.dechunk) {
              this.left = 0;
              this.close();
              this.push(null);
            } else this.destroy(Object.assign(new Error(`the body ended ${this.left} bytes early`), { code: 'ECONNRESET' }));
            return;
          }
          this.left -= buf.length;
          this.push(buf);
          if (this.left === 0) {
            this.close();
            this.push(null);
          }
        },
        (err: Error) => {
          this.inFlight = false;
          this.destroy(err);
        },
      );
  }

  /**
   * Receives what is ready of the body, up to maxBytes, into `writer` (its file and hash, on the
   * pool), waiting for the first bytes. Resolves with the count; a connection closed before the
   * end is an ECONNRESET error. Never mix with reading.
   */
  async receiveInto(writer: { receiveTls(conn: TlsConnHandle, maxBytes: number): Promise<number> }, maxBytes: number): Promise<number> {
    if (this.inFlight || this.connClosed || this.contentLength === undefined) throw new Error('NativeBody: busy, closed or of unknown length');
    const want = Math.min(maxBytes, this.left);
    this.inFlight = true;
    let failed = false;
    try {
      const n = await writer.receiveTls(this.conn, want);
      this.left -= n;
      if (n === 0) throw Object.assign(new Error(`the connection closed ${this.left} bytes before the end of the body`), { code: 'ECONNRESET', bytes: 0 });
      return n;
    } catch (err) {
      // What landed before a failure is in the writer (it counted `bytes`); the connection is done.
      failed = this.failed = true;
      throw err;
    } finally {
      this.inFlight = false;
      if (this.left === 0 || failed) this.close();
    }
  }

  get remaining(): number {
    return this.left;
  }

  async dump(): Promise<void> {
    this.destroy();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A job on the pool keeps the connection: shut its socket down (the job returns at once,
    // even from a stalled peer) and close once it has returned.
    const finish = () => {
      this.close();
      cb(err);
    };
    if (!this.inFlight) finish();
    else {
      if (!this.connClosed) rawAddon().tlsAbort(this.conn);
      const poll = setInterval(() => {
        if (!this.inFlight) {
          clearInterval(poll);
          finish();
        }
      }, 5);
    }
  }

  private close(): void {
    if (this.connClosed) return;
    this.connClosed = true;
    if (this.release && this.left === 0 && this.contentLength !== undefined && !this.failed) this.release(this.conn);
    else rawAddon().tlsClose(this.conn);
  }
}

export function isNativeBody(body: unknown): body is NativeBody {
  return body instanceof NativeBody;
}
