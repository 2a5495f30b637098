import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as tls from 'node:tls';
import type { Dispatcher as DispatcherType, Pool as PoolType, ProxyAgent as ProxyAgentType } from 'undici';
import { ConfigError } from '../../errors.js';
import { certsDirFor, readPem } from './certs.js';
import type { HttpResponse } from '../http.js';
import { loadSharedRoots, NativeBody, nativeGet, NativeTlsContext } from './native-tls.js';
import { ProxyRules, redact, type ProxySettings } from './proxy.js';

/**
 * undici's classes from their own modules (the package index loads every dispatcher, fetch and
 * the mocks: ~30 ms of a CLI start). The paths are undici 7's, which package.json pins.
 */
const require = createRequire(import.meta.url);
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as typeof DispatcherType;
/** undici's Pool (and its HTTP client, llhttp's wasm) on first use: a pull whose GETs all go native never loads it (~25 ms). */
const loadPool = (): typeof PoolType => require('undici/lib/dispatcher/pool.js') as typeof PoolType;
/** node:tls on first use: its ESM namespace would build the root certificate list (~15 ms) at every start. */
const loadTls = (): typeof tls => require('node:tls') as typeof tls;
/** ProxyAgent opens tunnels with `Pool#connect`, an API method undici's index puts on Dispatcher's prototype. */
const loadProxyAgent = (): typeof ProxyAgentType => {
  const proto = Dispatcher.prototype as unknown as { connect?: unknown };
  proto.connect ??= require('undici/lib/api/api-connect.js');
  return require('undici/lib/dispatcher/proxy-agent.js') as typeof ProxyAgentType;
};

/** TLS settings of one registry host, as containerd's hosts.toml has them (`ca`, `client`, `skip_verify`). */
export interface HostTlsSettings {
  /** PEM files of certificate authorities to trust for this host, besides the system's and certs.d's. */
  ca?: string[];
  /** A client certificate and its key (PEM files). */
  client?: { cert: string; key: string };
  /**
   * Skip certificate verification. Allowed only for insecure hosts (loopback or listed), where it
   * is the default unless a CA is given for the host (Docker's rule for insecure registries).
   */
  skipVerify?: boolean;
}

export interface TransportOptions {
  /** certs.d directories, searched in order for `HOST:PORT/` (then `HOST/`). */
  certsDirs: readonly string[];
  /** Per-host TLS settings keyed `host` or `host:port`. */
  hosts?: Readonly<Record<string, HostTlsSettings>>;
  proxy?: ProxySettings;
  /** Hosts that may be spoken to in plain HTTP and without verifying TLS. */
  isInsecure(hostPort: string): boolean;
  /** Connections per origin. */
  connections: number;
  keepAliveTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  connectTimeoutMs: number;
  /** Each origin's route, once, when first used (`--debug`). */
  log?: (line: string) => void;
}

/** How requests to one origin travel: its TLS material and proxy, for `--debug` and error hints. */
export interface Route {
  origin: string;
  proxy?: string;
  /** Where trusted CAs beyond the system's came from. */
  caSources: string[];
  clientCertificate?: string;
  verify: boolean;
}

/**
 * The one HTTP stack of the registry client: every request (manifests, tokens, blob bodies,
 * uploads, redirects to storage hosts) is dispatched here, to a connection pool per origin built
 * from that origin's decisions: certificates from certs.d and the config, verification, and a
 * forward proxy from HTTPS_PROXY/HTTP_PROXY/NO_PROXY. An undici Dispatcher, so interceptors compose.
 */
export class Transport extends Dispatcher {
  private readonly pools = new Map<string, DispatcherType>();
  private readonly routes = new Map<string, Route>();
  /** Each https origin's TLS material (PEMs), for the handshake diagnosis and the native context. */
  private readonly tlsMaterial = new Map<string, TlsMaterial>();
  /** Each https origin's tls.connect options (one secure context, made on first use), shared by its pool and the handshake diagnosis. */
  private readonly tlsConnect = new Map<string, tls.ConnectionOptions>();
  private readonly proxies: ProxyRules;
  private readonly natives = new Map<string, NativeTlsContext | null>();
  private closed = false;

  constructor(private readonly options: TransportOptions) {
    super();
    this.proxies = new ProxyRules(options.proxy ?? {});
    for (const [host, settings] of Object.entries(options.hosts ?? {})) {
      if (settings.skipVerify && !options.isInsecure(host)) {
        throw new ConfigError('registry config', `hosts.${host}.skipVerify`, `TLS verification may be skipped only for insecure registries (loopback or listed in "insecure"); ${host} is neither`);
      }
    }
    // The native contexts will want Node's roots: parse them on the thread pool now, while the
    // program starts and the first requests are prepared, rather than in a request's path.
    if (nativeEnabled()) this.nativeRoots().catch(() => {});
  }

  override dispatch(options: DispatcherType.DispatchOptions, handler: DispatcherType.DispatchHandler): boolean {
    return this.pool(String(options.origin)).dispatch(options, handler);
  }

  /** The route requests to `origin` take, e.g. for an error's hint. */
  route(origin: string): Route {
    return this.decide(new URL(origin));
  }

  /**
   * A GET taken by the native receive (native/tls.c) when the origin's route allows it: a direct
   * route (https with the origin's own TLS decisions, or plain http) and STRATUM_NATIVE_HTTP not
   * 0. The response is undici-shaped; its body is a NativeBody. undefined: use undici.
   */
  async nativeGet(url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<HttpResponse | undefined> {
    const native = await this.nativeContext(url.origin);
    if (!native) return undefined;
    const res = await nativeGet(native.ctx, url, { headers, connectTimeoutMs: native.connectTimeoutMs, timeoutMs: native.timeoutMs, ...(signal ? { signal } : {}) });
    const ctx = native.ctx;
    const body = new NativeBody(res.conn, res.contentLength, res.chunked, res.reusable ? (conn) => ctx.release(conn) : undefined);
    return { statusCode: res.status, headers: res.headers, body } as unknown as HttpResponse;
  }

  /**
   * The native receive context (native/tls.c) of an origin reached directly: for https, built from
   * the very decisions of its pool (CAs, client certificate, verification); for http, a plain one.
   * undefined for an origin behind a proxy (undici's ProxyAgent speaks CONNECT), or with
   * STRATUM_NATIVE_HTTP=0 (every body through undici).
   */
  private async nativeContext(originText: string): Promise<{ ctx: NativeTlsContext; connectTimeoutMs: number; timeoutMs: number } | undefined> {
    if (!nativeEnabled()) return undefined;
    const url = new URL(originText);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    const origin = url.origin;
    let ctx = this.natives.get(origin);
    if (ctx === undefined) {
      const route = this.decide(url);
      const material = this.tlsMaterial.get(origin);
      if (route.proxy) ctx = null;
      else if (url.protocol === 'http:') ctx = new NativeTlsContext({ plain: true });
      else if (!material) ctx = null;
      else {
        // The roots may still be parsing: the context looks them up when a chain first needs one.
        this.nativeRoots().catch(() => {});
        ctx = new NativeTlsContext({ roots: true, ca: material.extraCa ?? [], ...(material.cert ? { cert: material.cert, key: material.key! } : {}), rejectUnauthorized: material.verify });
      }
      this.natives.set(origin, ctx);
    }
    return ctx ? { ctx, connectTimeoutMs: this.options.connectTimeoutMs, timeoutMs: this.options.bodyTimeoutMs } : undefined;
  }

  /** Node's store for native contexts (its bundled roots and NODE_EXTRA_CA_CERTS), parsed once on the pool. */
  private nativeRoots(): Promise<void> {
    return loadSharedRoots(() => [...loadTls().rootCertificates, ...nodeExtraCaCerts()]);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.closed = true;
    this.closeNativeIdle();
    const done = Promise.all([...this.pools.values()].map((p) => p.close())).then(() => {});
    if (!callback) return done;
    done.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    this.closed = true;
    this.closeNativeIdle();
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    const done = Promise.all([...this.pools.values()].map((p) => p.destroy(err))).then(() => {});
    if (!callback) return done;
    done.then(callback, callback);
  }

  private closeNativeIdle(): void {
    for (const ctx of this.natives.values()) ctx?.closeIdle();
  }

  /**
   * Why a TLS server hung up on a request: a TLS 1.3 server that rejects the client certificate
   * (or its absence) sends its alert after the handshake, and undici reports only "other side
   * closed". One direct handshake and request with the route's settings reads the alert (an
   * OpenSSL code such as ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED); undefined when the server
   * answered, for a proxied route, or after `timeoutMs`.
   */
  handshakeAlert(origin: string, timeoutMs = 3000): Promise<string | undefined> {
    const url = new URL(origin);
    const material = this.tlsMaterial.get(url.origin);
    if (!material || this.routes.get(url.origin)?.proxy) return Promise.resolve(undefined);
    const settings = this.secureOptions(url.origin, material);
    return new Promise((resolve) => {
      const socket = loadTls().connect({ ...settings, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443), ALPNProtocols: ['http/1.1'] }, () => {
        socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
      });
      const done = (code: string | undefined): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(code);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      socket.once('data', () => done(undefined));
      socket.once('error', (err: Error & { code?: string }) => done(err.code));
      socket.once('close', () => done(undefined));
    });
  }

  /** The origin's route and TLS material, decided once (logged with --debug). */
  private decide(url: URL): Route {
    const origin = url.origin;
    const known = this.routes.get(origin);
    if (known) return known;
    if (this.closed) throw new ConfigError('transport', origin, 'the registry client is closed');
    const route: Route = { origin, caSources: [], verify: true };
    const material = url.protocol === 'https:' ? this.tlsFor(url, route) : undefined;
    if (material) this.tlsMaterial.set(origin, material);
    const proxy = this.proxies.proxyFor(url);
    if (proxy) route.proxy = redact(proxy.href);
    this.routes.set(origin, route);
    this.options.log?.(describeRoute(route, url.protocol === 'https:'));
    return route;
  }

  /** The origin's tls.connect options, made once (a secure context costs milliseconds). */
  private secureOptions(origin: string, material: TlsMaterial): tls.ConnectionOptions {
    let secure = this.tlsConnect.get(origin);
    if (!secure) this.tlsConnect.set(origin, (secure = connectOptions(material)));
    return secure;
  }

  /** The origin's undici pool (or ProxyAgent), made on its first request. */
  private pool(originText: string): DispatcherType {
    const url = new URL(originText);
    const origin = url.origin;
    const existing = this.pools.get(origin);
    if (existing) return existing;
    this.decide(url);
    const o = this.options;
    const material = this.tlsMaterial.get(origin);
    const secure = material ? this.secureOptions(origin, material) : undefined;
    const proxy = this.proxies.proxyFor(url);
    const common = { connections: o.connections, keepAliveTimeout: o.keepAliveTimeoutMs, headersTimeout: o.headersTimeoutMs, bodyTimeout: o.bodyTimeoutMs };
    let pool: DispatcherType;
    if (proxy) {
      const ProxyAgent = loadProxyAgent();
      pool = new ProxyAgent({ ...common, uri: proxy.href, ...(secure ? { requestTls: secure } : {}), proxyTls: { timeout: o.connectTimeoutMs } });
    } else {
      const Pool = loadPool();
      pool = new Pool(origin, { ...common, connect: { timeout: o.connectTimeoutMs, ...(secure ?? {}) } });
    }
    this.pools.set(origin, pool);
    return pool;
  }

  private tlsFor(url: URL, route: Route): TlsMaterial {
    const hostPort = url.host;
    const settings = this.options.hosts?.[hostPort] ?? this.options.hosts?.[url.hostname];
    const found = certsDirFor(hostPort, this.options.certsDirs) ?? (url.port ? certsDirFor(url.hostname, this.options.certsDirs) : undefined);
    const extra: string[] = [];
    for (const c of found?.ca ?? []) {
      extra.push(c.pem);
      route.caSources.push(c.source);
    }
    for (const path of settings?.ca ?? []) {
      extra.push(readPem(path, 'a CA certificate'));
      route.caSources.push(path);
    }
    const material: TlsMaterial = { verify: true };
    if (extra.length > 0) material.extraCa = extra;
    const client = settings?.client ? { cert: readPem(settings.client.cert, 'a client certificate'), key: readPem(settings.client.key, 'a private key'), source: settings.client.cert } : found?.client;
    if (client) {
      material.cert = client.cert;
      material.key = client.key;
      route.clientCertificate = client.source;
    }
    const insecure = this.options.isInsecure(hostPort);
    route.verify = material.verify = !(settings?.skipVerify ?? (insecure && extra.length === 0));
    return material;
  }
}

/** The PEMs and the verification decision of one https origin. */
interface TlsMaterial {
  /** The origin's own CAs, trusted beside Node's (its bundled roots and NODE_EXTRA_CA_CERTS). */
  extraCa?: string[];
  cert?: string;
  key?: string;
  verify: boolean;
}

/**
 * tls.connect options for `material`: one secure context per origin. Node's `ca` option replaces
 * its trust store, and handing it the ~140 bundled roots again costs 30–130 ms of parsing; so an
 * origin's own CAs are added to a default context with the native context's addCACert (what
 * createSecureContext does for each `ca` entry): its first call copies Node's already parsed
 * bundled roots (~1 ms). That copy lacks NODE_EXTRA_CA_CERTS, which are added again. Without
 * that method: `ca` with the roots.
 */
function connectOptions(material: TlsMaterial): tls.ConnectionOptions {
  const options: tls.ConnectionOptions = {};
  if (material.extraCa || material.cert) {
    const t = loadTls();
    const clientCert = material.cert ? { cert: material.cert, key: material.key! } : {};
    const context = t.createSecureContext(clientCert) as tls.SecureContext & { context?: { addCACert?: (pem: string) => void } };
    const native = context.context;
    if (!material.extraCa) options.secureContext = context;
    else if (typeof native?.addCACert === 'function') {
      for (const pem of [...nodeExtraCaCerts(), ...material.extraCa]) native.addCACert(pem);
      options.secureContext = context;
    } else {
      options.secureContext = t.createSecureContext({ ...clientCert, ca: [...t.rootCertificates, ...nodeExtraCaCerts(), ...material.extraCa] });
    }
  }
  if (!material.verify) options.rejectUnauthorized = false;
  return options;
}

/** Blob bodies and other GETs on direct routes go through native/tls.c unless STRATUM_NATIVE_HTTP=0. */
function nativeEnabled(): boolean {
  return process.env.STRATUM_NATIVE_HTTP !== '0';
}

let extraCaCache: string[] | undefined;
function nodeExtraCaCerts(): string[] {
  if (extraCaCache) return extraCaCache;
  const path = process.env.NODE_EXTRA_CA_CERTS;
  extraCaCache = [];
  if (path) {
    try {
      extraCaCache = [readFileSync(path, 'utf8')];
    } catch {
      // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS.
    }
  }
  return extraCaCache;
}

function describeRoute(route: Route, secure: boolean): string {
  const parts = [route.proxy ? `through proxy ${route.proxy}` : 'direct'];
  if (secure) {
    parts.push(route.verify ? 'TLS verified' : 'TLS not verified (insecure registry)');
    if (route.caSources.length > 0) parts.push(`CAs from ${route.caSources.join(', ')}`);
    if (route.clientCertificate) parts.push(`client certificate ${route.clientCertificate}`);
  }
  return `transport: ${route.origin}: ${parts.join('; ')}`;
}
