import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { rawAddon, type DigestHandle, type TlsConnHandle, type TlsContextHandle } from '../../sys/addon.js';

/**
 * EXPERIMENT (issue 12): an HTTPS GET whose body is received, written and hashed by the addon
 * (native/tls.c) on the thread pool. JavaScript makes every decision (trust, client certificate,
 * verification, the address, the request, redirects, Range) and parses the response head; C moves
 * the bytes. Not wired into the client: see the issue 12 report for the integration design.
 */

export interface NativeTlsOptions {
  /** Every CA to trust (PEM texts): pass tls.rootCertificates and any extras, as Node's `ca` option replaces its store. */
  ca: string[];
  cert?: string;
  key?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

export class NativeTlsContext {
  readonly handle: TlsContextHandle;
  constructor(options: NativeTlsOptions) {
    this.handle = rawAddon().tlsContext(options);
  }
}

export interface NativeTlsResponse {
  status: number;
  headers: Record<string, string>;
  alpn: string;
  protocol: string;
  /** Body bytes left to receive (Content-Length); undefined when the server sent none (chunked: not supported here). */
  contentLength: number | undefined;
  conn: TlsConnHandle;
}

export interface GetOptions {
  headers?: Record<string, string>;
  connectTimeoutMs?: number;
  timeoutMs?: number;
}

/** GET url over ctx; resolves once the response head is in (the body is received with receiveBody, or the conn closed). */
export async function nativeGet(ctx: NativeTlsContext, url: URL, options: GetOptions = {}): Promise<NativeTlsResponse> {
  if (url.protocol !== 'https:') throw new TypeError(`nativeGet: ${url.href} is not https`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || 443);
  const address = isIP(host) ? host : (await lookup(host)).address;
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close'];
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw new TypeError(`nativeGet: header ${k} holds a line break`);
    lines.push(`${k}: ${v}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  const res = await rawAddon().tlsRequest(ctx.handle, {
    address,
    port,
    host,
    head,
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
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
  if (headers['transfer-encoding'] && headers['transfer-encoding'] !== 'identity') {
    // A real integration would fall back to undici for chunked bodies (registries send Content-Length for blobs).
    rawAddon().tlsClose(res.conn);
    throw new Error(`nativeGet: ${url.host} sent a ${headers['transfer-encoding']} body (not supported by the experiment)`);
  }
  const cl = headers['content-length'];
  const contentLength = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
  return { status: Number(m[1]), headers, alpn: res.alpn, protocol: res.protocol, contentLength, conn: res.conn };
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
      if (n < want) throw Object.assign(new Error(`the body ended after ${got} of ${res.contentLength} bytes`), { code: 'ECONNRESET', bytes: got });
    }
    return got;
  } finally {
    raw.tlsClose(res.conn);
  }
}
