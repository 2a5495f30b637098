import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../../errors.js';

/** Forward proxies for registry traffic, as curl and Docker read them from the environment. */
export interface ProxySettings {
  /** Proxy for http:// URLs. */
  http?: string;
  /** Proxy for https:// URLs. */
  https?: string;
  /** Comma-separated hosts, domains (`.example.com` or `example.com`, subdomains included), IPs, CIDRs, `host:port`, or `*`. */
  noProxy?: string;
}

/** HTTPS_PROXY / HTTP_PROXY / NO_PROXY, the lower-case name winning as curl's does; empty values are unset. */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (name: string): string | undefined => {
    const value = env[name.toLowerCase()] ?? env[name.toUpperCase()];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const out: ProxySettings = {};
  const http = pick('http_proxy');
  const https = pick('https_proxy');
  const noProxy = pick('no_proxy');
  if (http) out.http = http;
  if (https) out.https = https;
  if (noProxy) out.noProxy = noProxy;
  return out;
}

/**
 * Decides which proxy (if any) a request to `url` goes through. Unlike Go's net/http, loopback
 * hosts are proxied too unless NO_PROXY names them (curl's and undici's rule): a proxy on
 * loopback in front of a loopback registry must be usable.
 */
export class ProxyRules {
  private readonly http?: URL;
  private readonly https?: URL;
  private readonly all: boolean = false;
  private readonly names: { domain: string; port?: string }[] = [];
  private readonly addresses = new BlockList();

  constructor(settings: ProxySettings, source = 'proxy settings') {
    if (settings.http) this.http = proxyUrl(settings.http, source, 'http proxy');
    if (settings.https) this.https = proxyUrl(settings.https, source, 'https proxy');
    for (const raw of (settings.noProxy ?? '').split(/[,\s]+/)) {
      const entry = raw.trim().toLowerCase();
      if (entry === '') continue;
      if (entry === '*') {
        this.all = true;
        continue;
      }
      const cidr = /^([0-9a-f.:]+)\/(\d{1,3})$/.exec(entry);
      if (cidr && isIP(cidr[1]!)) {
        this.addresses.addSubnet(cidr[1]!, Number(cidr[2]), isIP(cidr[1]!) === 6 ? 'ipv6' : 'ipv4');
        continue;
      }
      const bare = entry.replace(/^\[|\](?=:|$)/g, '');
      if (isIP(bare)) {
        this.addresses.addAddress(bare, isIP(bare) === 6 ? 'ipv6' : 'ipv4');
        continue;
      }
      const m = /^(.*?)(?::(\d+))?$/.exec(entry)!;
      const host = m[1]!.replace(/^\*?\./, '').replace(/^\[|\]$/g, '');
      this.names.push({ domain: host, ...(m[2] ? { port: m[2] } : {}) });
    }
  }

  /** The proxy URL for a request to `target`, or undefined to connect directly. */
  proxyFor(target: URL): URL | undefined {
    const proxy = target.protocol === 'https:' ? this.https : this.http;
    if (!proxy || this.all) return undefined;
    const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const port = target.port || (target.protocol === 'https:' ? '443' : '80');
    const family = isIP(host);
    if (family && this.addresses.check(host, family === 6 ? 'ipv6' : 'ipv4')) return undefined;
    for (const { domain, port: p } of this.names) {
      if (p !== undefined && p !== port) continue;
      if (host === domain || host.endsWith(`.${domain}`)) return undefined;
    }
    return proxy;
  }

  get configured(): boolean {
    return this.http !== undefined || this.https !== undefined;
  }
}

function proxyUrl(value: string, source: string, field: string): URL {
  // curl takes `host:port` without a scheme as an http:// proxy.
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(source, field, `${JSON.stringify(redact(value))} is not a valid proxy URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(source, field, `${JSON.stringify(redact(value))}: only http:// and https:// proxies are supported, not ${url.protocol}`);
  }
  return url;
}

/** A proxy URL for messages: any password replaced. */
export function redact(value: string): string {
  return value.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}
