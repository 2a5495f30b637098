import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { listenOnLoopback, OpenSockets } from './loopback.js';

/**
 * A forward proxy on 127.0.0.1, as `HTTPS_PROXY`/`HTTP_PROXY` name one: `CONNECT host:port`
 * opens a tunnel (https targets), an absolute-form request (`GET http://host/path`) is relayed
 * (plain http targets). Every request is recorded, refused ones too.
 */

export interface ProxiedRequest {
  /** `CONNECT`, or the relayed request's method. */
  method: string;
  /** `host:port` the client asked for. */
  target: string;
  /** Path and query of an absolute-form request; undefined for CONNECT. */
  path?: string;
  headers: IncomingHttpHeaders;
  /** The proxy's own answer: 200 for an opened tunnel, 407 without valid credentials, 502 when the target is unreachable; for a relayed request, the target's status. */
  status: number;
}

export interface ConnectProxyOptions {
  /** Demand `Proxy-Authorization: Basic` with these credentials (else 407 with a Basic challenge). */
  auth?: { user: string; password: string };
}

export class ConnectProxy {
  readonly requests: ProxiedRequest[] = [];
  private readonly sockets = new OpenSockets();
  private listeningPort = 0;

  private constructor(
    private readonly server: Server,
    private readonly expectedAuth: string | undefined,
  ) {}

  static async start(opts: ConnectProxyOptions = {}): Promise<ConnectProxy> {
    const server = createServer();
    const auth = opts.auth ? `Basic ${Buffer.from(`${opts.auth.user}:${opts.auth.password}`).toString('base64')}` : undefined;
    const proxy = new ConnectProxy(server, auth);
    server.on('connection', (s: Socket) => proxy.sockets.add(s));
    server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => proxy.tunnel(req, socket, head));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proxy.relay(req, res));
    proxy.listeningPort = await listenOnLoopback(server);
    return proxy;
  }

  get port(): number {
    return this.listeningPort;
  }
  /** `http://127.0.0.1:PORT`, the value for `HTTPS_PROXY`/`HTTP_PROXY`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Tunnels opened (CONNECT answered 200). */
  get tunnels(): number {
    return this.requests.filter((r) => r.method === 'CONNECT' && r.status === 200).length;
  }
  /** Absolute-form requests relayed to their target. */
  get relayed(): number {
    return this.requests.filter((r) => r.method !== 'CONNECT' && r.status !== 407).length;
  }
  /** Requests refused with 407. */
  get refused(): number {
    return this.requests.filter((r) => r.status === 407).length;
  }
  /** Recorded requests (tunnels and relayed ones) for `host:port`. */
  to(target: string): ProxiedRequest[] {
    return this.requests.filter((r) => r.target === target);
  }

  clear(): void {
    this.requests.length = 0;
  }

  async stop(): Promise<void> {
    this.sockets.destroyAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authorized(req: IncomingMessage): boolean {
    return this.expectedAuth === undefined || req.headers['proxy-authorization'] === this.expectedAuth;
  }

  private tunnel(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const target = req.url ?? '';
    const entry: ProxiedRequest = { method: 'CONNECT', target, headers: { ...req.headers }, status: 0 };
    this.requests.push(entry);
    client.on('error', () => {});
    if (!this.authorized(req)) {
      entry.status = 407;
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="stratum-test-proxy"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const m = /^(.+):(\d+)$/.exec(target);
    if (!m) {
      entry.status = 400;
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = connect(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''));
    this.sockets.add(upstream);
    upstream.once('connect', () => {
      entry.status = 200;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('error', () => {
      if (entry.status === 0) {
        entry.status = 502;
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      } else client.destroy();
    });
    client.once('close', () => upstream.destroy());
  }

  private relay(req: IncomingMessage, res: ServerResponse): void {
    const entry: ProxiedRequest = { method: req.method ?? 'GET', target: '', headers: { ...req.headers }, status: 0 };
    this.requests.push(entry);
    res.on('finish', () => (entry.status ||= res.statusCode));
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute-form request expected (this is a forward proxy)\n');
      return;
    }
    entry.target = `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
    entry.path = url.pathname + url.search;
    if (!this.authorized(req)) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="stratum-test-proxy"', 'content-length': '0' }).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = httpRequest({ host: url.hostname, port: url.port || 80, method: req.method, path: entry.path, headers }, (up) => {
      entry.status = up.statusCode ?? 502;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(upstream);
  }
}
