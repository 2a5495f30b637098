import type { Dispatcher } from 'undici';
import { request } from './http.js';
import { NetworkError, RegistryError, UnauthorizedError } from '../errors.js';
import { normaliseAuthKey, type CredentialSource, type Credentials } from './credentials.js';

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`. */
  scheme: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[A-Za-z0-9!#$%&'*+.^_`|~-]/;

/**
 * Parses WWW-Authenticate (RFC 7235): several challenges in one header or several headers,
 * quoted strings with commas and escapes, token68 values ignored.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < s.length && TOKEN_CHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const token = readToken();
    if (token === '') {
      i++; // stray character: skip it rather than loop forever
      continue;
    }
    skipWs();
    if (s[i] === '=' && current) {
      // `name=value` parameter of the current challenge (a token68 ends in '=' too: tolerate it).
      i++;
      skipWs();
      let value: string;
      if (s[i] === '"') {
        i++;
        value = '';
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++; // closing quote
      } else {
        value = readToken();
        while (s[i] === '=') i++; // token68 padding
      }
      current.params[token.toLowerCase()] = value;
      continue;
    }
    if (s[i] === '=') {
      i++; // a parameter before any scheme: malformed, skip it
      continue;
    }
    current = { scheme: token.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}

/** `repository:library/ubuntu:pull` */
export function repositoryScope(repository: string, actions = 'pull'): string {
  return `repository:${repository}:${actions}`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface AuthenticatorOptions {
  credentials: CredentialSource;
  dispatcher: Dispatcher;
  userAgent: string;
  /** Injected clock for tests of expiry. */
  now?: () => number;
}

export const DEFAULT_TOKEN_LIFETIME_S = 60;

/**
 * Holds what each registry host asked for (its last challenge) and the bearer tokens fetched for it,
 * per (realm, service, scope), until shortly before they expire. Concurrent requests for the same
 * token share one fetch.
 */
export class Authenticator {
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly now: () => number;
  /** How many tokens were fetched from token servers (for diagnostics and tests). */
  tokenFetches = 0;

  constructor(private readonly options: AuthenticatorOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * The Authorization header value for a request to `host` (host:port of the endpoint), or undefined
   * while the host has not challenged us yet.
   */
  async authorization(host: string, scope: string | undefined): Promise<string | undefined> {
    const challenge = this.challenges.get(host);
    if (!challenge) return undefined;
    const creds = await this.options.credentials.get(normaliseAuthKey(host));
    if (challenge.scheme === 'basic') {
      if (!creds?.username || creds.password === undefined) {
        throw new UnauthorizedError(host, 'the registry asks for Basic authentication and no credentials are configured for it');
      }
      return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    }
    const token = await this.bearerToken(host, challenge, scope ?? challenge.params.scope, creds);
    return `Bearer ${token.token}`;
  }

  /**
   * Records a 401's challenge and forgets the token it refused. Returns false when the challenge
   * names no scheme we can answer. Callers retry a request at most once after this.
   */
  onUnauthorized(host: string, header: string | string[] | undefined, scope?: string): boolean {
    const challenges = parseWwwAuthenticate(header);
    const usable = challenges.find((c) => c.scheme === 'bearer' && c.params.realm) ?? challenges.find((c) => c.scheme === 'basic');
    if (!usable) return false;
    this.challenges.set(host, usable);
    // A cached token may have been revoked early: the retry fetches a fresh one.
    if (usable.scheme === 'bearer') this.tokens.delete(tokenKey(usable, scope ?? usable.params.scope));
    return true;
  }

  private async bearerToken(host: string, challenge: Challenge, scope: string | undefined, creds: Credentials | undefined): Promise<CachedToken> {
    const key = tokenKey(challenge, scope);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return cached;
    let inflight = this.pending.get(key);
    if (!inflight) {
      inflight = this.fetchToken(host, challenge, scope, creds).finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    const token = await inflight;
    this.tokens.set(key, token);
    return token;
  }

  private async fetchToken(host: string, challenge: Challenge, scope: string | undefined, creds: Credentials | undefined): Promise<CachedToken> {
    const realm = challenge.params.realm!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`${host} sent a Bearer challenge with an invalid realm ${JSON.stringify(realm)}`);
    }
    const service = challenge.params.service;
    const headers: Record<string, string> = { 'user-agent': this.options.userAgent };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, as docker does for identity tokens.
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'stratum' });
      if (service) form.set('service', service);
      if (scope) form.set('scope', scope);
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service) url.searchParams.set('service', service);
      // Several scopes (a push that mounts from another repository) are several `scope` parameters, as docker sends them.
      for (const one of scope?.split(' ').filter(Boolean) ?? []) url.searchParams.append('scope', one);
      if (creds?.username && creds.password !== undefined) {
        headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
        url.searchParams.set('account', creds.username);
      }
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method, headers, body, dispatcher: this.options.dispatcher });
    } catch (err) {
      throw new NetworkError(`cannot reach the token server ${url.origin} for ${host}: ${(err as Error).message}`, { cause: err });
    }
    const text = await readLimited(res.body, 1 << 20);
    if (res.statusCode === 401 || res.statusCode === 403) {
      const who = creds ? 'rejected the credentials' : 'refused anonymous access';
      throw new UnauthorizedError(host, `token server ${url.origin} ${who} (HTTP ${res.statusCode})`);
    }
    if (res.statusCode !== 200) {
      throw new RegistryError(`token server ${url.origin} for ${host} answered HTTP ${res.statusCode}: ${excerpt(text)}`, res.statusCode);
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new RegistryError(`token server ${url.origin} for ${host} did not answer JSON`);
    }
    const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryError(`token server ${url.origin} for ${host} answered without "token" or "access_token"`);
    }
    this.tokenFetches++;
    const lifetimeMs = (typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_LIFETIME_S) * 1000;
    const marginMs = Math.min(10_000, lifetimeMs / 10);
    return { token, expiresAt: this.now() + lifetimeMs - marginMs };
  }
}

function tokenKey(challenge: Challenge, scope: string | undefined): string {
  return `${challenge.params.realm}\u0000${challenge.params.service ?? ''}\u0000${scope ?? ''}`;
}

/** Reads a small response body whole, refusing more than `max` bytes. */
export async function readLimited(body: AsyncIterable<Uint8Array> & { destroy?: () => void }, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy?.();
      break;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function excerpt(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat || '(empty body)';
}
