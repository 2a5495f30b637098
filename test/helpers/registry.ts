import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { removeDir, tempDir } from './tmp.js';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` when started with `tls`. */
  url: string;
  /** Temp dir holding config.yml, htpasswd and storage/ ('' for an external registry). */
  root: string;
  /** True when this registry was started with schema1 compatibility (unknown → false for an external one). */
  schema1: boolean;
  /** Basic-auth credentials the registry demands, when started with htpasswd. */
  credentials?: { user: string; password: string };
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** `compatibility.schema1.enabled: true`: accept signed schema1 manifest PUTs. */
  schema1?: boolean;
  /** Require HTTP Basic auth with this one user (bcrypt htpasswd file, as distribution requires). */
  htpasswd?: { user: string; password: string };
  /** Storage directory to use (kept on stop); default: a temp dir removed on stop. */
  storageDir?: string;
  /** Port to listen on; default: a free one. */
  port?: number;
  /** Serve HTTPS (distribution's `http.tls`) instead of plain HTTP. */
  tls?: RegistryTls;
}

export interface RegistryTls {
  /** PEM server certificate (`http.tls.certificate`). */
  certificate: string;
  /** Its PEM key (`http.tls.key`). */
  key: string;
  /** PEM CAs of which the registry requires a client certificate (`http.tls.clientcas`). */
  clientCAs?: string[];
  /** CA the harness's own requests (readiness, log markers) verify the registry with; default: not verified. */
  ca?: string;
  /**
   * Client certificate for the harness's own requests. Without it, a registry with `clientCAs`
   * counts as ready once it refuses the handshake for the missing certificate, but its request
   * log's settle() cannot reach it.
   */
  client?: { cert: string; key: string };
}

/** One request as the registry's access log recorded it. */
export interface LoggedRequest {
  method: string;
  /** Path without the query string, e.g. `/v2/library/app/blobs/sha256:…`. */
  path: string;
  query: string;
  status: number;
}

export interface RequestLog {
  /** Every request the registry logged so far (after `settle()`, all requests completed before it). */
  requests(): LoggedRequest[];
  /** Count of logged requests with this method whose path equals `path` or, for a RegExp, matches it. */
  count(method: string, path: string | RegExp): number;
  /** Forgets everything logged so far. */
  clear(): void;
  /**
   * Waits until requests that completed before this call are in the log: sends a marker request
   * and waits for it to appear (the registry writes its access log line after each response).
   */
  settle(): Promise<void>;
}

const logs = new WeakMap<TestRegistry, RequestLog>();
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Starts the real docker-registry (distribution 2.8) on 127.0.0.1 with a generated config. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BINARY)) throw new Error(`${REGISTRY_BINARY} is not installed (apt-get install docker-registry)`);
  let lastError: unknown;
  // A free port found by binding :0 can be taken by someone else before the registry binds it.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      lastError = err;
      if (opts.port !== undefined || !String(err).includes('address already in use')) throw err;
    }
  }
  throw lastError;
}

/**
 * The registry tests should share: the one named by STRATUM_TEST_REGISTRY=host:port when set
 * (its stop() does nothing), otherwise a new one from startRegistry(opts).
 * An external registry cannot honour htpasswd, so asking for it always starts a new one.
 */
export async function sharedRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const external = process.env.STRATUM_TEST_REGISTRY;
  if (external && !opts.htpasswd && !opts.storageDir && opts.port === undefined && !opts.tls) {
    const host = external.replace(/^https?:\/\//, '').replace(/\/+$/, '');
    if (!/^127\.0\.0\.1:\d+$/.test(host) && !/^localhost:\d+$/.test(host)) {
      throw new Error(`STRATUM_TEST_REGISTRY must be a loopback host:port, got ${JSON.stringify(external)}`);
    }
    return {
      host,
      url: `http://${host}`,
      root: '',
      schema1: process.env.STRATUM_TEST_REGISTRY_SCHEMA1 === '1',
      stop: async () => {},
    };
  }
  return startRegistry(opts);
}

/**
 * The access log of a registry started by startRegistry, or undefined for an external one
 * (its log is not ours to read; count through a proxy instead).
 */
export function registryRequestLog(registry: TestRegistry): RequestLog | undefined {
  return logs.get(registry);
}

async function startOnce(opts: RegistryOptions): Promise<TestRegistry> {
  const root = await tempDir('registry');
  const storage = opts.storageDir ?? join(root, 'storage');
  await mkdir(storage, { recursive: true });
  const port = opts.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  let htpasswdPath: string | undefined;
  if (opts.htpasswd) {
    htpasswdPath = join(root, 'htpasswd');
    await writeFile(htpasswdPath, htpasswdLine(opts.htpasswd.user, opts.htpasswd.password) + '\n', { mode: 0o600 });
  }
  const configPath = join(root, 'config.yml');
  await writeFile(configPath, registryConfig({ storage, host, schema1: !!opts.schema1, htpasswdPath, tls: opts.tls }));
  const harness = await harnessAgentOptions(opts.tls);

  const child = spawn(REGISTRY_BINARY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const lines = new AccessLogLines();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => lines.push(chunk));
  let stderrTail = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const url = `${opts.tls ? 'https' : 'http'}://${host}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    running.delete(child);
    await removeDir(root);
  };

  try {
    await waitUntilAnswering(url, harness, exited, () => stderrTail);
  } catch (err) {
    await stop();
    throw err;
  }

  const registry: TestRegistry = {
    host,
    url,
    root,
    schema1: !!opts.schema1,
    ...(opts.htpasswd ? { credentials: { ...opts.htpasswd } } : {}),
    stop,
  };
  logs.set(registry, lines.asRequestLog(url, harness));
  return registry;
}

function registryConfig(o: { storage: string; host: string; schema1: boolean; htpasswdPath?: string; tls?: RegistryTls }): string {
  // JSON strings are valid YAML scalars, so paths need no YAML quoting rules of their own.
  const q = (s: string) => JSON.stringify(s);
  const out = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(o.storage)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${q(o.host)}`,
    `  secret: ${q(randomBytes(16).toString('hex'))}`,
  ];
  if (o.tls) {
    out.push('  tls:', `    certificate: ${q(o.tls.certificate)}`, `    key: ${q(o.tls.key)}`);
    if (o.tls.clientCAs?.length) out.push('    clientcas:', ...o.tls.clientCAs.map((ca) => `      - ${q(ca)}`));
  }
  if (o.schema1) out.push('compatibility:', '  schema1:', '    enabled: true');
  if (o.htpasswdPath) out.push('auth:', '  htpasswd:', '    realm: stratum-test', `    path: ${q(o.htpasswdPath)}`);
  return out.join('\n') + '\n';
}

/**
 * A `user:bcrypt` htpasswd line (distribution accepts only bcrypt). The hash comes from libc's
 * crypt(3) through perl, which is part of every Debian install, so apache2-utils is not needed.
 */
export function htpasswdLine(user: string, password: string): string {
  if (user.includes(':') || /[\r\n]/.test(user)) throw new Error(`htpasswd user name must not contain ':' or newlines: ${JSON.stringify(user)}`);
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const salt = Array.from(randomBytes(22), (b) => alphabet[b % 64]).join('');
  // The last salt char only carries 2 bits in bcrypt; these 4 choices keep the salt canonical.
  const canonicalSalt = salt.slice(0, 21) + '.Oeu'[randomBytes(1)[0]! % 4];
  const res = spawnSync('perl', ['-e', 'print crypt($ENV{P}, $ENV{S})'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', P: password, S: `$2b$05$${canonicalSalt}` },
    encoding: 'utf8',
  });
  const hash = res.stdout;
  if (res.status !== 0 || !/^\$2b\$05\$[./A-Za-z0-9]{53}$/.test(hash)) {
    throw new Error(`could not make a bcrypt hash with perl crypt(): ${res.stderr || hash || res.error}`);
  }
  return `${user}:${hash}`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** TLS settings of the harness's own https requests; undefined for a plain-HTTP registry. */
interface HarnessTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** The registry demands a client certificate the harness does not have. */
  refusesHarness: boolean;
}

async function harnessAgentOptions(tls: RegistryTls | undefined): Promise<HarnessTls | undefined> {
  if (!tls) return undefined;
  return {
    ...(tls.ca ? { ca: await readFile(tls.ca) } : {}),
    ...(tls.client ? { cert: await readFile(tls.client.cert), key: await readFile(tls.client.key) } : {}),
    refusesHarness: !!tls.clientCAs?.length && !tls.client,
  };
}

/** The status of a GET by the harness itself (readiness probe, log markers), over https with `tls`. */
async function harnessGet(url: string, tls: HarnessTls | undefined, timeoutMs: number): Promise<number> {
  if (!tls) {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  }
  return new Promise<number>((resolve, reject) => {
    const { ca, cert, key } = tls;
    const req = httpsGet(url, { agent: false, timeout: timeoutMs, ca, cert, key, rejectUnauthorized: ca !== undefined }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.once('error', reject);
  });
}

async function waitUntilAnswering(url: string, tls: HarnessTls | undefined, exited: Promise<number | null>, stderr: () => string): Promise<void> {
  let dead: number | null | undefined;
  void exited.then((code) => (dead = code));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (dead !== undefined) throw new Error(`docker-registry exited with ${dead} before answering: ${stderr()}`);
    try {
      const status = await harnessGet(`${url}/v2/`, tls, 1000);
      if (status === 200 || status === 401) return;
    } catch (err) {
      // Refusing the handshake for want of a client certificate is an answer: it is up.
      if (tls?.refusesHarness && /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|bad certificate/i.test(`${(err as { code?: string }).code} ${(err as Error).message}`)) return;
      // otherwise: not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry at ${url} did not answer GET /v2/ within 15 s: ${stderr()}`);
}

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A test process that ends without stop() must not leave registries behind.
    process.once('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }
}

// Combined log format, as distribution's access log writes it to stdout:
// 127.0.0.1 - - [26/Nov/2026:13:13:12 +0000] "HEAD /v2/foo/blobs/sha256:… HTTP/1.1" 404 157 "" "curl/7.88.1"
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /;

class AccessLogLines {
  private partial = '';
  private entries: LoggedRequest[] = [];
  private waiters: Array<() => void> = [];

  push(chunk: string): void {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      const m = ACCESS_LINE.exec(line);
      if (!m) continue;
      const target = m[2]!;
      const q = target.indexOf('?');
      this.entries.push({
        method: m[1]!,
        path: q < 0 ? target : target.slice(0, q),
        query: q < 0 ? '' : target.slice(q + 1),
        status: Number(m[3]),
      });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  asRequestLog(url: string, tls: HarnessTls | undefined): RequestLog {
    let markerSeq = 0;
    const isMarker = (r: LoggedRequest) => r.path === '/v2/' && r.query.startsWith('stratum-log-marker=');
    return {
      requests: () => this.entries.filter((r) => !isMarker(r)),
      count: (method, path) =>
        this.entries.filter((r) => !isMarker(r) && r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path))).length,
      clear: () => {
        this.entries = [];
      },
      settle: async () => {
        if (tls?.refusesHarness) throw new Error(`settle() needs tls.client: the registry at ${url} requires a client certificate`);
        const marker = `stratum-log-marker=${process.pid}-${++markerSeq}`;
        await harnessGet(`${url}/v2/?${marker}`, tls, 10_000);
        const deadline = Date.now() + 5000;
        while (!this.entries.some((r) => r.query === marker)) {
          if (Date.now() > deadline) throw new Error(`registry access log never showed ${marker}`);
          await new Promise<void>((resolve) => {
            this.waiters.push(resolve);
            setTimeout(resolve, 100);
          });
        }
      },
    };
  }
}

/** Whether something accepts TCP connections at `host` (`HOST:PORT`): to check a registry really stopped. */
export function portOpen(host: string): Promise<boolean> {
  const [h, p] = host.split(':');
  return new Promise((resolve) => {
    const s = connect(Number(p), h!, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
