import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TokenIssuer } from './token-issuer.js';

/**
 * An HTTP proxy in front of a real registry that forwards everything and can be told to misbehave
 * on the next matching request(s): cut a body short, flip a byte, answer a status of its own,
 * rewrite a header, demand a bearer token, ignore Range, redirect blobs to another host name.
 * Every request is logged (method, path, request headers, status) for asserts.
 */

export interface ProxyLogEntry {
  method: string;
  /** Path with query string, as requested. */
  url: string;
  /** Path without the query string. */
  path: string;
  /** The Host header the client sent (`127.0.0.1:PORT` or `localhost:PORT`). */
  host: string;
  headers: IncomingHttpHeaders;
  /** Status the client got (0 when the socket was destroyed before headers). */
  status: number;
  /** Which client connection carried it (1, 2, … in the order the proxy accepted them). */
  connection: number;
  /** Body bytes handed to the socket, for bodies the proxy pads ('oversize'). */
  bodyBytes?: number;
  /** Request body bytes the proxy received from the client. */
  requestBytes: number;
  /** Response headers the client got (undefined when none were sent). */
  responseHeaders?: IncomingHttpHeaders;
}

interface Matcher {
  method?: string;
  path: RegExp;
  /** Matching requests still to let through before the rule applies. */
  skip: number;
}

interface BodyRule extends Matcher {
  kind: 'cut' | 'corrupt' | 'stall' | 'oversize';
  at: number;
  remaining: number;
  /** 'stall': how long the body pauses at `at`; 'corrupt': an optional pause once the flipped byte is sent. */
  stallMs?: number;
  /** 'oversize': the padded body announced by a Content-Length that counts the padding, instead of chunked. */
  lengthFramed?: boolean;
}

interface RespondRule extends Matcher {
  status: number;
  headers: Record<string, string>;
  body: string;
  remaining: number;
}

interface RequestCutRule extends Matcher {
  at: number;
  remaining: number;
  /** Forward the body's first bytes to the registry before the cut (it then holds part of the chunk). */
  forward: boolean;
}

interface HeaderRule extends Matcher {
  name: string;
  value: string;
  remaining: number;
}

export const BLOB_PATH = /\/v2\/.+\/blobs\/sha(256|512):[0-9a-f]+$/;
/** An upload session's URL (PATCH, PUT, GET of its status), not the POST that starts one. */
export const UPLOAD_PATH = /\/v2\/.+\/blobs\/uploads\/.+/;
const REDIRECT_PREFIX = '/_redirected';

export interface MatchOptions {
  /** Which paths (without query) the rule applies to. */
  path?: RegExp;
  method?: string;
  /** How many matching requests it applies to; default 1. */
  count?: number;
  /** How many matching requests go through untouched before it applies; default 0. */
  skip?: number;
}

export interface FaultProxyOptions {
  /** Serve HTTPS with this PEM certificate and key (e.g. makeCertificates' `server`). */
  tls?: { cert: string; key: string };
}

interface RedirectRule extends Matcher {
  base: string;
  status: number;
  remaining: number;
}

/** What S3 answers for a presigned URL past its expiry. */
const EXPIRED_SIGNED_URL = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>';

export class FaultProxy {
  readonly log: ProxyLogEntry[] = [];
  private bodyRules: BodyRule[] = [];
  private respondRules: RespondRule[] = [];
  private headerRules: HeaderRule[] = [];
  private requestCutRules: RequestCutRule[] = [];
  private stripRange = false;
  private bearer?: { issuer: TokenIssuer; service: string };
  private redirectHost?: string;
  private redirectRules: RedirectRule[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly connectionIds = new WeakMap<Socket, number>();
  /** Client connections accepted so far. */
  connectionsAccepted = 0;

  private constructor(
    private readonly server: Server | HttpsServer,
    readonly target: URL,
  ) {}

  /**
   * Starts a proxy on 127.0.0.1 forwarding to `target` (e.g. `http://127.0.0.1:5000`, or an
   * `https://` one, whose certificate the proxy does not check).
   */
  static async start(target: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
    const server = opts.tls ? createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }) : createServer();
    const proxy = new FaultProxy(server, new URL(target));
    server.on('request', (req, res) => proxy.handle(req, res));
    server.on('connection', (s) => {
      proxy.connectionIds.set(s, ++proxy.connectionsAccepted);
      proxy.sockets.add(s);
      s.on('close', () => proxy.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  /** `127.0.0.1:PORT` */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }
  get url(): string {
    return `${this.server instanceof HttpsServer ? 'https' : 'http'}://${this.host}`;
  }

  /** The next matching response (default: a blob GET) sends `bytes` body bytes, then the socket is destroyed. */
  cutAfter(bytes: number, opts: MatchOptions = {}): this {
    this.bodyRules.push({ kind: 'cut', at: bytes, ...matcher(opts, 'GET', BLOB_PATH), remaining: opts.count ?? 1 });
    return this;
  }

  /**
   * The next matching response (default: a blob GET) has the body byte at position `n` flipped;
   * with `stallMs`, the rest of the body waits that long after the chunk holding it.
   */
  corruptByteAt(n: number, opts: MatchOptions & { stallMs?: number } = {}): this {
    this.bodyRules.push({ kind: 'corrupt', at: n, ...matcher(opts, 'GET', BLOB_PATH), remaining: opts.count ?? 1, ...(opts.stallMs ? { stallMs: opts.stallMs } : {}) });
    return this;
  }

  /** The next matching response (default: a blob GET) sends `bytes` body bytes, pauses `ms`, then sends the rest. */
  stallAfter(bytes: number, ms: number, opts: MatchOptions = {}): this {
    this.bodyRules.push({ kind: 'stall', at: bytes, stallMs: ms, ...matcher(opts, 'GET', BLOB_PATH), remaining: opts.count ?? 1 });
    return this;
  }

  /**
   * The next matching response (default: a blob GET) is the real body, then `extra` more bytes of
   * zeros (a hostile or broken server that never stops): sent chunked, or with `framing: 'length'`
   * under a Content-Length that counts them (Content-Range, on a 206, is left as it was). The log
   * entry's bodyBytes says how much the proxy got to send before the client hung up.
   */
  oversizeBody(extra: number, opts: MatchOptions & { framing?: 'chunked' | 'length' } = {}): this {
    this.bodyRules.push({ kind: 'oversize', at: extra, ...matcher(opts, 'GET', BLOB_PATH), remaining: opts.count ?? 1, ...(opts.framing === 'length' ? { lengthFramed: true } : {}) });
    return this;
  }

  /**
   * The next matching request (default: an upload PATCH) has its connection cut once the proxy
   * has received `bytes` of its body; nothing of it reaches the registry (as behind a proxy that
   * buffers request bodies, nginx's default), so the session stays where it was. With `forward`, the bytes received go on
   * to the registry until the cut (no buffering proxy in between): the registry keeps part of the
   * chunk, and both connections are cut.
   */
  cutRequestAfter(bytes: number, opts: MatchOptions & { forward?: boolean } = {}): this {
    this.requestCutRules.push({ at: bytes, ...matcher(opts, 'PATCH', UPLOAD_PATH), remaining: opts.count ?? 1, forward: opts.forward ?? false });
    return this;
  }

  /** The next `count` requests matching `path` get this answer from the proxy itself (e.g. 429 with Retry-After). */
  respond(status: number, headers: Record<string, string> = {}, opts: MatchOptions & { body?: string } = {}): this {
    const body = opts.body ?? JSON.stringify({ errors: [{ code: status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: `injected HTTP ${status}` }] });
    this.respondRules.push({ status, headers, body, ...matcher(opts, undefined, /.*/), remaining: opts.count ?? 1 });
    return this;
  }

  /** Replaces (or adds) a response header on the next `count` matching responses. */
  rewriteHeader(name: string, value: string, opts: MatchOptions = {}): this {
    this.headerRules.push({ name: name.toLowerCase(), value, ...matcher(opts, undefined, /.*/), remaining: opts.count ?? 1 });
    return this;
  }

  /** From now on, /v2/ requests without a bearer token the issuer accepts get a 401 Bearer challenge. */
  requireBearer(opts: { issuer: TokenIssuer; service?: string }): this {
    this.bearer = { issuer: opts.issuer, service: opts.service ?? 'fault-proxy' };
    return this;
  }

  /** From now on, the Range header is removed before forwarding, so the registry answers 200 with the whole blob. */
  ignoreRange(on = true): this {
    this.stripRange = on;
    return this;
  }

  /**
   * From now on, blob GETs are answered with 307 to the same proxy under another host name
   * (`localhost` instead of `127.0.0.1`), as registries redirect to storage; the redirected
   * request is served without any auth check.
   */
  redirectBlobsTo(hostname: string): this {
    this.redirectHost = hostname;
    return this;
  }

  /**
   * Blob GETs are answered `status` (307 by default; 302 as some storage fronts do) with
   * `Location: <targetBase><same path and query>`: the next `count` of them, or every one from now
   * on without `count`. The target is another server (the registry itself at another address, or
   * a FaultProxy standing there to record what reached it); redirects are not authenticated.
   */
  redirectBlobs(targetBase: string, opts: MatchOptions & { status?: 301 | 302 | 303 | 307 | 308 } = {}): this {
    this.redirectRules.push({
      base: targetBase.replace(/\/+$/, ''),
      status: opts.status ?? 307,
      ...matcher(opts, 'GET', BLOB_PATH),
      remaining: opts.count ?? Infinity,
    });
    return this;
  }

  /**
   * The next `count` (default 1) blob GETs are refused as an expired signed URL is (403, S3's
   * AccessDenied XML): set on a redirect target, the client has to go back to the registry for a
   * fresh redirect.
   */
  expireSignedUrl(opts: MatchOptions = {}): this {
    return this.respond(403, { 'content-type': 'application/xml' }, { method: 'GET', path: BLOB_PATH, ...opts, body: EXPIRED_SIGNED_URL });
  }

  /** Forgets every rule (not the log). */
  reset(): this {
    this.bodyRules = [];
    this.respondRules = [];
    this.headerRules = [];
    this.requestCutRules = [];
    this.stripRange = false;
    this.bearer = undefined;
    this.redirectHost = undefined;
    this.redirectRules = [];
    return this;
  }

  clearLog(): void {
    this.log.length = 0;
  }

  /** Log entries with this method whose path matches. */
  requests(method: string, path: RegExp): ProxyLogEntry[] {
    return this.log.filter((e) => e.method === method && path.test(e.path));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private take<T extends Matcher & { remaining: number }>(rules: T[], method: string, path: string): T | undefined {
    const rule = rules.find((r) => r.remaining > 0 && (r.method === undefined || r.method === method) && r.path.test(path));
    if (rule && rule.skip > 0) {
      rule.skip--;
      return undefined;
    }
    if (rule) rule.remaining--;
    return rule;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    let path = url.split('?', 1)[0]!;
    const entry: ProxyLogEntry = { method, url, path, host: req.headers.host ?? '', headers: { ...req.headers }, status: 0, connection: this.connectionIds.get(req.socket) ?? 0, requestBytes: 0 };
    this.log.push(entry);
    req.on('data', (chunk: Buffer) => (entry.requestBytes += chunk.length));
    res.on('finish', () => (entry.status = res.statusCode));
    res.on('close', () => {
      if (entry.status === 0 && res.headersSent) entry.status = res.statusCode;
    });

    const redirected = path.startsWith(`${REDIRECT_PREFIX}/`);
    if (redirected) path = path.slice(REDIRECT_PREFIX.length);

    const cut = this.take(this.requestCutRules, method, path);
    if (cut && !cut.forward) {
      req.on('data', () => {
        if (entry.requestBytes >= cut.at) req.socket.destroy();
      });
      req.on('end', () => req.socket.destroy()); // a body shorter than `at` is cut at its end
      return;
    }

    const canned = this.take(this.respondRules, method, path);
    if (canned) {
      res.writeHead(canned.status, { 'content-type': 'application/json', ...canned.headers });
      res.end(canned.body);
      return;
    }

    if (!redirected && this.bearer && path.startsWith('/v2/')) {
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
      if (!token || !this.bearer.issuer.isValid(token)) {
        const repo = /^\/v2\/(.+)\/(manifests|blobs|tags)\//.exec(path)?.[1];
        const scope = repo ? `,scope="repository:${repo}:pull"` : '';
        res.writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': `Bearer realm="${this.bearer.issuer.realm}",service="${this.bearer.service}"${scope}`,
        });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
    }

    if (!redirected && this.redirectHost && method === 'GET' && BLOB_PATH.test(path)) {
      res.writeHead(307, { location: `http://${this.redirectHost}:${this.port}${REDIRECT_PREFIX}${url}` });
      res.end();
      return;
    }

    const redirect = redirected ? undefined : this.take(this.redirectRules, method, path);
    if (redirect) {
      res.writeHead(redirect.status, { location: `${redirect.base}${url}`, 'content-length': '0' });
      res.end();
      return;
    }

    const headers = { ...req.headers };
    delete headers.authorization; // the real registry runs without auth; the proxy plays its auth
    if (this.stripRange) delete headers.range;
    const bodyRule = this.take(this.bodyRules, method, path);
    const tls = this.target.protocol === 'https:';
    const upstream = (tls ? httpsRequest : httpRequest)(
      { host: this.target.hostname, port: this.target.port, method, path: redirected ? url.slice(REDIRECT_PREFIX.length) : url, headers, ...(tls ? { rejectUnauthorized: false } : {}) },
      (up) => this.relay(up, res, bodyRule, method, path, entry),
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
    if (cut) {
      const at = cut.at;
      req.on('data', () => {
        if (entry.requestBytes < at) return;
        upstream.destroy();
        req.socket.destroy();
      });
    }
  }

  private relay(up: IncomingMessage, res: ServerResponse, rule: BodyRule | undefined, method: string, path: string, entry: ProxyLogEntry): void {
    const headers = { ...up.headers };
    for (let r = this.take(this.headerRules, method, path); r; r = this.take(this.headerRules, method, path)) headers[r.name] = r.value;
    const padded = rule?.kind === 'oversize' && (up.statusCode === 200 || up.statusCode === 206);
    if (padded && rule.lengthFramed) {
      headers['content-length'] = String(Number(up.headers['content-length']) + rule.at);
    } else if (padded) {
      delete headers['content-length'];
      headers['transfer-encoding'] = 'chunked';
    }
    res.writeHead(up.statusCode ?? 502, headers);
    entry.responseHeaders = headers;
    if (!rule || (up.statusCode !== 200 && up.statusCode !== 206)) {
      up.pipe(res);
      return;
    }
    if (padded) {
      padBody(up, res, rule.at, entry);
      return;
    }
    let pos = 0;
    if (rule.kind === 'corrupt' || rule.kind === 'stall') {
      // Where the body pauses: at `at` for a stall, right after the flipped byte for a corruption.
      const pauseAt = rule.stallMs === undefined ? Infinity : rule.kind === 'stall' ? rule.at : rule.at + 1;
      let stalling = false;
      let ended = false;
      up.on('data', (chunk: Buffer) => {
        if (rule.kind === 'corrupt' && rule.at >= pos && rule.at < pos + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[rule.at - pos] ^= 0xff;
        }
        let rest: Buffer | undefined;
        if (pos < pauseAt && pos + chunk.length >= pauseAt) {
          rest = chunk.subarray(pauseAt - pos);
          chunk = chunk.subarray(0, pauseAt - pos);
        }
        pos += chunk.length + (rest?.length ?? 0);
        const flushed = res.write(chunk);
        if (rest) {
          up.pause();
          stalling = true;
          setTimeout(() => {
            stalling = false;
            if (rest.length > 0) res.write(rest);
            if (ended) res.end();
            else up.resume();
          }, rule.stallMs);
        } else if (!flushed) {
          up.pause();
          res.once('drain', () => up.resume());
        }
      });
      // The upstream can end while the stall holds the rest of its last chunk: end after it.
      up.on('end', () => (stalling ? (ended = true) : res.end()));
      return;
    }
    // cut: send exactly `at` body bytes, then kill the connection mid-body.
    let done = false;
    up.on('data', (chunk: Buffer) => {
      if (done) return;
      const room = rule.at - pos;
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      pos += part.length;
      if (pos >= rule.at) {
        done = true;
        up.destroy();
        res.write(part, () => res.socket?.destroy());
        return;
      }
      if (!res.write(part)) {
        up.pause();
        res.once('drain', () => up.resume());
      }
    });
    up.on('end', () => {
      if (!done) res.end();
    });
  }
}

const PAD_CHUNK = Buffer.alloc(64 * 1024);

/** Relays `up`'s body, then `extra` zero bytes in 64 KiB writes (waiting while the socket is full), counting into entry.bodyBytes. */
function padBody(up: IncomingMessage, res: ServerResponse, extra: number, entry: ProxyLogEntry): void {
  entry.bodyBytes = 0;
  let left = extra;
  const pad = (): void => {
    while (left > 0 && !res.destroyed) {
      const piece = PAD_CHUNK.subarray(0, Math.min(PAD_CHUNK.length, left));
      left -= piece.length;
      entry.bodyBytes! += piece.length;
      if (!res.write(piece)) {
        res.once('drain', pad);
        return;
      }
    }
    if (!res.destroyed) res.end();
  };
  up.on('data', (chunk: Buffer) => {
    entry.bodyBytes! += chunk.length;
    if (!res.write(chunk)) {
      up.pause();
      res.once('drain', () => up.resume());
    }
  });
  up.on('end', pad);
  res.on('close', () => up.destroy());
}

function matcher(opts: MatchOptions, defaultMethod: string | undefined, defaultPath: RegExp): Matcher {
  const method = opts.method ?? defaultMethod;
  return { path: opts.path ?? defaultPath, skip: opts.skip ?? 0, ...(method ? { method } : {}) };
}
