import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { ConfigError, InsecureRegistryError } from '../errors.js';
import type { ParallelFetchOptions } from './ranged-fetch.js';
import type { ProxySettings } from './transport/proxy.js';
import type { HostTlsSettings } from './transport/transport.js';
import type { Endpoint } from './types.js';

export interface RetryConfig {
  /** Attempts in total, the first included. Default 5. */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt, with jitter. Default 500 ms. */
  baseDelayMs?: number;
  /** Cap for one backoff delay. Default 30 s. */
  maxDelayMs?: number;
  /** Cap for a server's Retry-After. Default 60 s. */
  maxRetryAfterMs?: number;
}

export interface RegistryConfig {
  /** Registry host (as in references: `docker.io`, `ghcr.io`, `localhost:5000`) → mirror base URLs, tried in order. */
  mirrors?: Record<string, string[]>;
  /** Hosts (`host` or `host:port`) that may be reached over plain HTTP besides loopback. */
  insecure?: string[];
  /** Blobs downloaded in parallel. Default 3. */
  concurrency?: number;
  retries?: RetryConfig;
  /**
   * Per-host settings as containerd's hosts.toml has them, keyed `host[:port]` (TLS) or a mirror's
   * URL (`override_path`): `ca`, `client`, `skip_verify`, `override_path`.
   */
  hosts?: Record<string, HostSettings>;
  /** certs.d directories searched for `HOST:PORT/ca.crt`, `*.cert` + `*.key`; default stratum's, Docker's, containers'. */
  certsDirs?: string[];
  /** Forward proxies; default HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. */
  proxy?: ProxySettings;
  /**
   * Parallel Range requests within one large blob; false turns them off. Default: above 64 MiB,
   * 4 MiB chunks, 4 at a time, except from loopback registries (set it to use them there too).
   */
  parallelFetch?: ParallelFetchOptions | false;
}

export interface HostSettings extends HostTlsSettings {
  /** For a mirror URL with a path: the path is the API root as is (no `/v2` added), as containerd's override_path. */
  overridePath?: boolean;
}

export const DEFAULT_CONCURRENCY = 3;
export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_UPSTREAM = 'https://registry-1.docker.io';

/** Loopback hosts and hosts listed in `insecure`: plain HTTP is a fallback for them and TLS verification optional. */
export function isInsecureHost(hostPort: string, config: RegistryConfig): boolean {
  return isInsecureAllowed(hostPort, config);
}

/** `localhost`, 127.0.0.0/8 and ::1, with or without a port. */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostOnly(hostPort).toLowerCase();
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** Strips the port and IPv6 brackets: `[::1]:5000` → `::1`, `127.0.0.1:5000` → `127.0.0.1`. */
export function hostOnly(hostPort: string): string {
  if (hostPort.startsWith('[')) {
    const end = hostPort.indexOf(']');
    return end < 0 ? hostPort : hostPort.slice(1, end);
  }
  const colon = hostPort.lastIndexOf(':');
  if (colon >= 0 && hostPort.indexOf(':') === colon) return hostPort.slice(0, colon);
  return hostPort;
}

function isInsecureAllowed(hostPort: string, config: RegistryConfig): boolean {
  if (isLoopbackHost(hostPort)) return true;
  const listed = config.insecure ?? [];
  return listed.includes(hostPort) || listed.includes(hostOnly(hostPort));
}

/** Throws InsecureRegistryError for an http:// URL to a host that is neither loopback nor listed as insecure. */
export function checkEndpointUrl(url: string, config: RegistryConfig): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('registry endpoint', url, 'not a valid URL');
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol !== 'http:') throw new ConfigError('registry endpoint', url, `unsupported scheme ${parsed.protocol}`);
  if (!isInsecureAllowed(parsed.host, config)) {
    throw new InsecureRegistryError(url, `${parsed.host} is not a loopback host and not listed in "insecure"`);
  }
  return parsed;
}

/**
 * The registry itself, over HTTPS as Docker speaks to every registry. Docker Hub is served by
 * registry-1.docker.io. For loopback hosts and hosts listed as insecure (Docker's
 * insecure-registries, which include 127.0.0.0/8), plain HTTP is the fallback when the host does
 * not speak TLS (`plainHttpFallback`).
 */
export function upstreamEndpoint(registry: string, config: RegistryConfig = {}): Endpoint {
  if (registry === DOCKER_HUB) return { url: DOCKER_HUB_UPSTREAM, isMirror: false };
  return { url: `https://${registry}`, isMirror: false, ...(isInsecureAllowed(registry, config) ? { plainHttpFallback: true } : {}) };
}

/** Mirrors of `registry` in configured order, then the upstream. Refuses insecure mirror URLs. */
export function resolveEndpoints(registry: string, config: RegistryConfig = {}): Endpoint[] {
  const out: Endpoint[] = [];
  for (const mirror of config.mirrors?.[registry] ?? []) {
    const url = checkEndpointUrl(mirror, config);
    const overridePath = mirrorSettings(mirror, config)?.overridePath === true;
    const path = overridePath ? url.pathname.replace(/\/+$/, '') : url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '');
    out.push({ url: `${url.protocol}//${url.host}${path}`, isMirror: true, ...(overridePath ? { overridePath } : {}) });
  }
  out.push(upstreamEndpoint(registry, config));
  return out;
}

/** A mirror URL's own settings (keyed by the URL as written, with or without a trailing slash). */
function mirrorSettings(url: string, config: RegistryConfig): HostSettings | undefined {
  const hosts = config.hosts ?? {};
  return hosts[url] ?? hosts[url.replace(/\/+$/, '')] ?? hosts[`${url.replace(/\/+$/, '')}/`];
}

/** `docker.io=http://127.0.0.1:5000` → { registry: 'docker.io', url: 'http://127.0.0.1:5000' }. */
export function parseMirrorFlag(flag: string): { registry: string; url: string } {
  // A bare URL mirrors Docker Hub, like dockerd's --registry-mirror.
  if (/^https?:\/\//.test(flag)) return parseMirrorFlag(`${DOCKER_HUB}=${flag}`);
  const eq = flag.indexOf('=');
  if (eq <= 0 || eq === flag.length - 1) {
    throw new ConfigError('--mirror', flag, 'expected [REGISTRY=]URL, e.g. docker.io=http://127.0.0.1:5000');
  }
  const registry = flag.slice(0, eq).trim();
  const url = flag.slice(eq + 1).trim();
  if (!/^https?:\/\//.test(url)) throw new ConfigError('--mirror', flag, 'the mirror URL must start with http:// or https://');
  try {
    new URL(url);
  } catch {
    throw new ConfigError('--mirror', flag, `${JSON.stringify(url)} is not a valid URL`);
  }
  return { registry, url };
}

/** Flags' mirrors come first (a flag says "use this now"), then the file's. */
export function mergeMirrorFlags(config: RegistryConfig, flags: readonly string[]): RegistryConfig {
  if (flags.length === 0) return config;
  const mirrors: Record<string, string[]> = {};
  for (const flag of flags) {
    const { registry, url } = parseMirrorFlag(flag);
    (mirrors[registry] ??= []).push(url);
  }
  for (const [registry, urls] of Object.entries(config.mirrors ?? {})) {
    const list = (mirrors[registry] ??= []);
    for (const url of urls) if (!list.includes(url)) list.push(url);
  }
  return { ...config, mirrors };
}

export async function loadRegistryConfig(path: string): Promise<RegistryConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, '(file)', `cannot read: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(path, '(file)', `not valid JSON: ${(err as Error).message}`);
  }
  return validateRegistryConfig(value, path);
}

/** Checks a parsed config object field by field; `source` names the file in errors. */
export function validateRegistryConfig(value: unknown, source: string): RegistryConfig {
  if (!isPlainObject(value)) throw new ConfigError(source, '(top level)', 'expected a JSON object');
  const known = new Set(['mirrors', 'insecure', 'concurrency', 'retries', 'hosts', 'certsDirs', 'proxy', 'parallelFetch']);
  for (const key of Object.keys(value)) {
    if (!known.has(key)) throw new ConfigError(source, key, `unknown field (known: ${[...known].join(', ')})`);
  }
  const config: RegistryConfig = {};
  if (value.mirrors !== undefined) {
    if (!isPlainObject(value.mirrors)) throw new ConfigError(source, 'mirrors', 'expected an object of registry → [URL, ...]');
    config.mirrors = {};
    for (const [registry, urls] of Object.entries(value.mirrors)) {
      const field = `mirrors.${registry}`;
      if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string')) {
        throw new ConfigError(source, field, 'expected an array of URL strings');
      }
      for (const url of urls as string[]) {
        if (!/^https?:\/\//.test(url)) throw new ConfigError(source, field, `${JSON.stringify(url)} must start with http:// or https://`);
        try {
          new URL(url);
        } catch {
          throw new ConfigError(source, field, `${JSON.stringify(url)} is not a valid URL`);
        }
      }
      config.mirrors[registry] = [...(urls as string[])];
    }
  }
  if (value.insecure !== undefined) {
    if (!Array.isArray(value.insecure) || !value.insecure.every((h) => typeof h === 'string' && h.length > 0)) {
      throw new ConfigError(source, 'insecure', 'expected an array of host names');
    }
    config.insecure = [...(value.insecure as string[])];
  }
  if (value.concurrency !== undefined) {
    config.concurrency = positiveInteger(value.concurrency, source, 'concurrency');
  }
  if (value.retries !== undefined) {
    const r = value.retries;
    if (!isPlainObject(r)) throw new ConfigError(source, 'retries', 'expected an object');
    const retries: RetryConfig = {};
    for (const key of Object.keys(r)) {
      if (key !== 'maxAttempts' && key !== 'baseDelayMs' && key !== 'maxDelayMs' && key !== 'maxRetryAfterMs') {
        throw new ConfigError(source, `retries.${key}`, 'unknown field (known: maxAttempts, baseDelayMs, maxDelayMs, maxRetryAfterMs)');
      }
      retries[key] = key === 'maxAttempts' ? positiveInteger(r[key], source, `retries.${key}`) : nonNegativeInteger(r[key], source, `retries.${key}`);
    }
    config.retries = retries;
  }
  if (value.hosts !== undefined) config.hosts = validateHosts(value.hosts, source);
  if (value.parallelFetch !== undefined) {
    const p = value.parallelFetch;
    if (p === false) config.parallelFetch = false;
    else if (!isPlainObject(p)) throw new ConfigError(source, 'parallelFetch', 'expected false or an object with thresholdBytes, chunkBytes, connections');
    else {
      const parallel: ParallelFetchOptions = {};
      for (const [key, v] of Object.entries(p)) {
        if (key !== 'thresholdBytes' && key !== 'chunkBytes' && key !== 'connections') throw new ConfigError(source, `parallelFetch.${key}`, 'unknown field (known: thresholdBytes, chunkBytes, connections)');
        parallel[key] = positiveInteger(v, source, `parallelFetch.${key}`);
      }
      config.parallelFetch = parallel;
    }
  }
  if (value.certsDirs !== undefined) {
    if (!Array.isArray(value.certsDirs) || !value.certsDirs.every((d) => typeof d === 'string' && d.length > 0)) {
      throw new ConfigError(source, 'certsDirs', 'expected an array of directory paths');
    }
    config.certsDirs = [...(value.certsDirs as string[])];
  }
  if (value.proxy !== undefined) {
    const p = value.proxy;
    if (!isPlainObject(p)) throw new ConfigError(source, 'proxy', 'expected an object with http, https, noProxy');
    const proxy: ProxySettings = {};
    for (const [key, v] of Object.entries(p)) {
      if (key !== 'http' && key !== 'https' && key !== 'noProxy') throw new ConfigError(source, `proxy.${key}`, 'unknown field (known: http, https, noProxy)');
      if (typeof v !== 'string') throw new ConfigError(source, `proxy.${key}`, 'expected a string');
      proxy[key] = v;
    }
    config.proxy = proxy;
  }
  return config;
}

/** containerd's hosts.toml fields, under their own names (`skip_verify`) or camelCase (`skipVerify`). */
function validateHosts(value: unknown, source: string): Record<string, HostSettings> {
  if (!isPlainObject(value)) throw new ConfigError(source, 'hosts', 'expected an object of host → settings');
  const out: Record<string, HostSettings> = {};
  for (const [host, raw] of Object.entries(value)) {
    const field = `hosts.${host}`;
    if (!isPlainObject(raw)) throw new ConfigError(source, field, 'expected an object (ca, client, skip_verify, override_path)');
    const settings: HostSettings = {};
    for (const [key, v] of Object.entries(raw)) {
      switch (key) {
        case 'ca':
          if (typeof v === 'string') settings.ca = [v];
          else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) settings.ca = [...(v as string[])];
          else throw new ConfigError(source, `${field}.ca`, 'expected a PEM file path or an array of them');
          break;
        case 'client': {
          // containerd: "cert.pem" (key inside), ["cert", "key"], or [["cert", "key"], ...] (the first pair is used).
          const pair = typeof v === 'string' ? [v, v] : Array.isArray(v) && Array.isArray(v[0]) ? v[0] : v;
          if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((x) => typeof x === 'string' && x.length > 0)) {
            throw new ConfigError(source, `${field}.client`, 'expected a PEM path, ["cert", "key"] or [["cert", "key"]]');
          }
          settings.client = { cert: pair[0] as string, key: pair[1] as string };
          break;
        }
        case 'skip_verify':
        case 'skipVerify':
          if (typeof v !== 'boolean') throw new ConfigError(source, `${field}.${key}`, 'expected true or false');
          settings.skipVerify = v;
          break;
        case 'override_path':
        case 'overridePath':
          if (typeof v !== 'boolean') throw new ConfigError(source, `${field}.${key}`, 'expected true or false');
          settings.overridePath = v;
          break;
        default:
          throw new ConfigError(source, `${field}.${key}`, 'unknown field (known: ca, client, skip_verify, override_path)');
      }
    }
    out[host] = settings;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function positiveInteger(v: unknown, source: string, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(source, field, `expected a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function nonNegativeInteger(v: unknown, source: string, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(source, field, `expected a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}
