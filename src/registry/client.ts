import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { pipeline } from 'node:stream';
import { verifier } from '../content/verifier.js';
import { request, type HttpResponse } from './http.js';
import {
  CertificateError,
  DeniedError,
  DigestMismatchError,
  InvalidManifestError,
  NetworkError,
  NotFoundError,
  RateLimitError,
  RedirectTargetError,
  RegistryError,
  SizeMismatchError,
  StratumError,
  UnauthorizedError,
} from '../errors.js';
import { digestAlgorithm, digestOf, isDigest, type Digest, type DigestAlgorithm } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, manifestContentType } from '../oci/manifest.js';
import { isSchema1MediaType, MANIFEST_ACCEPT, MediaType } from '../oci/mediatypes.js';
import type { Reference } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';
import { isSignedSchema1, schema1PayloadDigest } from '../oci/schema1.js';
import { Authenticator, excerpt, readLimited, repositoryScope } from './auth.js';
import { NO_CREDENTIALS, type CredentialSource } from './credentials.js';
import { DEFAULT_CONCURRENCY, isInsecureHost, isLoopbackHost, resolveEndpoints, type RegistryConfig } from './hosts.js';
import { defaultCertsDirs } from './transport/certs.js';
import { proxyFromEnv } from './transport/proxy.js';
import { DEFAULT_PARALLEL_FETCH, type ParallelFetchOptions } from './ranged-fetch.js';
import { certificateProblem } from './transport/tls-errors.js';
import { Transport } from './transport/transport.js';
import { describeError, isRetryable, parseRetryAfter, retryPolicy, withRetry, type RetryPolicy } from './retry.js';
import { uploadBlob, type UploadOptions, type UploadSession } from './upload.js';
import type { BlobFetcher, BlobResponse, Endpoint, ManifestFetcher, ResolvedManifest } from './types.js';

export interface RegistryClientOptions {
  config?: RegistryConfig;
  credentials?: CredentialSource;
  userAgent?: string;
  /** A dispatcher to use instead of the client's own Transport (the client then does not close it; certs.d, proxies and hosts settings are then the dispatcher's business). */
  dispatcher?: Dispatcher;
  /** Waiting for response headers; default 60 s. */
  headersTimeoutMs?: number;
  /** Silence between two body chunks; default 60 s. */
  bodyTimeoutMs?: number;
  /** Decisions worth a `--debug` line: each origin's route (proxy, certificates), HTTPS or plain HTTP for an insecure host. */
  log?: (line: string) => void;
  /** Environment read for proxies and certs.d (HTTPS_PROXY, NO_PROXY, STRATUM_CERTS_D); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Chunked uploads: chunk size and the size above which a blob goes in chunks (upload.ts has the defaults). */
  upload?: UploadOptions;
}


export interface FetchBlobOptions {
  offset?: number;
  /** At most this many bytes from `offset` (`Range: bytes=offset-(offset+length-1)`); the answer may still be a whole 200. */
  length?: number;
  signal?: AbortSignal;
  /**
   * Check the body against the digest (and `size`) while it streams: it errors with
   * DigestMismatchError / SizeMismatchError instead of ending, and its last chunk is held back
   * until the check passes. Default true; applies to a whole body (a 206 from `offset` cannot be
   * checked alone: `verified` is false then). Callers that verify across resumed requests
   * themselves (the pull's download) turn it off.
   */
  verify?: boolean;
  /** The descriptor's size, checked with the digest. */
  size?: number;
  /** Endpoint URLs not to use (a mirror that just served corrupt bytes). */
  exclude?: readonly string[];
}

export const DEFAULT_USER_AGENT = 'stratum/0.1.0';
const MAX_REDIRECTS = 5;
const CONNECT_TIMEOUT_MS = 10_000;
const ERROR_BODY_LIMIT = 16 * 1024;
/** One page of a tag listing; Docker Hub's biggest repositories send about 100 KiB per 1000 tags. */
const MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024;

interface SendOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';
  headers?: Record<string, string>;
  /** A fresh request body for each attempt (a 401 repeats the request once with credentials). */
  body?: () => Buffer | Readable;
  scope?: string;
  signal?: AbortSignal;
  /** What is being fetched, for error messages: `manifest docker.io/library/ubuntu:15.04`. */
  what: string;
  /** false: this GET goes through undici, never the native receive (see http.ts request). */
  native?: boolean;
}

/**
 * Talks to one or more registries: endpoints (mirrors, then upstream) from the config, auth per
 * endpoint host, manifests verified against their digests, blobs streamed with Range and redirects.
 * One keep-alive connection pool for everything it fetches; close() releases it.
 */
export class RegistryClient implements ManifestFetcher, BlobFetcher {
  readonly config: RegistryConfig;
  readonly auth: Authenticator;
  readonly retry: RetryPolicy;
  readonly userAgent: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly log: ((line: string) => void) | undefined;
  private readonly certsDirs: readonly string[];
  /** Origins whose hang-up was already looked into (hungUpOnTls). */
  private readonly diagnosed = new Set<string>();
  /** Insecure hosts' endpoints as spoken to: HTTPS, or plain HTTP when the host has no TLS (decided once). */
  private readonly schemes = new Map<string, Promise<Endpoint>>();
  private readonly upload: UploadOptions;

  constructor(options: RegistryClientOptions = {}) {
    this.config = options.config ?? {};
    this.retry = retryPolicy(this.config.retries);
    this.userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    this.ownsDispatcher = options.dispatcher === undefined;
    this.log = options.log;
    const env = options.env ?? process.env;
    this.certsDirs = this.config.certsDirs ?? defaultCertsDirs(env);
    this.upload = options.upload ?? {};
    this.dispatcher =
      options.dispatcher ??
      new Transport({
        certsDirs: this.certsDirs,
        ...(this.config.hosts ? { hosts: this.config.hosts } : {}),
        proxy: this.config.proxy ?? proxyFromEnv(env),
        isInsecure: (host) => isInsecureHost(host, this.config),
        connections: Math.max(DEFAULT_CONCURRENCY, this.config.concurrency ?? DEFAULT_CONCURRENCY) + 2,
        keepAliveTimeoutMs: 30_000,
        headersTimeoutMs: options.headersTimeoutMs ?? 60_000,
        bodyTimeoutMs: options.bodyTimeoutMs ?? 60_000,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        ...(this.log ? { log: this.log } : {}),
      });
    this.auth = new Authenticator({ credentials: options.credentials ?? NO_CREDENTIALS, dispatcher: this.dispatcher, userAgent: this.userAgent });
  }

  /** Parallel Range requests within one large blob (config `parallelFetch`; false turns them off). */
  get parallelFetch(): ParallelFetchOptions | false {
    return this.config.parallelFetch === false ? false : { ...DEFAULT_PARALLEL_FETCH, ...(this.config.parallelFetch ?? {}) };
  }

  /**
   * Parallel Range requests for a blob of `ref`: as configured; by default not when every
   * endpoint is a loopback host, where one connection is not the limit and the extra requests
   * and buffering only cost (0.15–0.2 s on the bench's 75 MB layer). A configured
   * `parallelFetch` object applies everywhere (a port-forwarded remote registry).
   */
  parallelFetchFor(ref: Reference): ParallelFetchOptions | false {
    if (this.config.parallelFetch === undefined && this.endpoints(ref).every((e) => isLoopbackHost(new URL(e.url).host))) return false;
    return this.parallelFetch;
  }

  get concurrency(): number {
    return this.config.concurrency ?? DEFAULT_CONCURRENCY;
  }

  /** Mirrors in order, then the upstream. Throws InsecureRegistryError for a refused http:// mirror. */
  endpoints(ref: Pick<Reference, 'registry'>): Endpoint[] {
    return resolveEndpoints(ref.registry, this.config);
  }

  async resolve(ref: Reference): Promise<ResolvedManifest> {
    return this.getManifest(ref, ref.digest ?? ref.tag ?? 'latest', ref.digest, `manifest ${ref}`);
  }

  async fetchManifest(ref: Reference, digest: Digest, size?: number): Promise<ResolvedManifest> {
    return this.getManifest(ref, digest, digest, `manifest ${ref.name}@${digest}`, size);
  }

  async fetchBlob(ref: Reference, digest: Digest, options: FetchBlobOptions = {}): Promise<BlobResponse> {
    if (!isDigest(digest)) throw new StratumError('ERR_INVALID_DIGEST', `invalid blob digest ${JSON.stringify(digest)}`);
    const offset = options.offset ?? 0;
    const what = `blob ${digest} of ${ref.name}`;
    return this.acrossEndpoints(ref, options.exclude, async (endpoint) => {
      const headers: Record<string, string> = {};
      if (options.length !== undefined) headers.range = `bytes=${offset}-${offset + options.length - 1}`;
      else if (offset > 0) headers.range = `bytes=${offset}-`;
      const res = await this.sendFollowingRedirects(endpoint, `/v2/${ref.repository}/blobs/${digest}`, {
        headers,
        scope: repositoryScope(ref.repository),
        signal: options.signal,
        what,
        // A bounded range is one of many parallel chunks of a big blob: undici keeps their connections alive.
        ...(options.length !== undefined ? { native: false } : {}),
      });
      if (res.statusCode === 200 || res.statusCode === 206) {
        const out: BlobResponse = { body: res.body, start: 0, endpoint, verified: false };
        if (res.statusCode === 200 && options.verify !== false) {
          const checked = verifier(digest, `${what} from ${endpoint.url}`, options.size !== undefined ? { size: options.size } : {});
          // Destroying the returned body (a cancelled read) also ends the response.
          pipeline(res.body, checked, () => {});
          out.body = checked;
          out.verified = true;
          const length = Number(header(res.headers, 'content-length'));
          if (header(res.headers, 'content-length') !== undefined && Number.isSafeInteger(length)) out.totalSize = length;
          return out;
        }
        if (res.statusCode === 206) {
          const range = parseContentRange(header(res.headers, 'content-range'));
          if (!range) {
            res.body.destroy();
            throw new RegistryError(`${endpointName(endpoint, ref)} answered 206 for ${what} without a readable Content-Range`, 206);
          }
          out.start = range.start;
          out.partial = true;
          if (range.total !== undefined) out.totalSize = range.total;
        } else {
          const length = Number(header(res.headers, 'content-length'));
          if (header(res.headers, 'content-length') !== undefined && Number.isSafeInteger(length)) out.totalSize = length;
        }
        return out;
      }
      throw await this.statusError(res, endpoint, ref, what);
    });
  }

  /** Whether the registry (never a mirror) has the blob in ref's repository: HEAD, with push scope. */
  async blobExists(ref: Reference, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    if (!isDigest(digest)) throw new StratumError('ERR_INVALID_DIGEST', `invalid blob digest ${JSON.stringify(digest)}`);
    const what = `blob ${digest} of ${ref.name}`;
    return withRetry(async () => {
      const endpoint = await this.upstream(ref, signal);
      const res = await this.send(endpoint, `/v2/${ref.repository}/blobs/${digest}`, { method: 'HEAD', scope: pushScope(ref), what, ...(signal ? { signal } : {}) });
      if (res.statusCode === 200) {
        await res.body.dump();
        return true;
      }
      if (res.statusCode === 404) {
        await res.body.dump();
        return false;
      }
      throw await this.statusError(res, endpoint, ref, what);
    }, this.retry, signal ? { signal } : {});
  }

  /**
   * A blob's size from the Content-Length of a HEAD (mirrors first, as for fetches), for blobs
   * whose descriptors have none (schema1). NotFoundError when no endpoint has it.
   */
  async blobSize(ref: Reference, digest: Digest, signal?: AbortSignal): Promise<number> {
    if (!isDigest(digest)) throw new StratumError('ERR_INVALID_DIGEST', `invalid blob digest ${JSON.stringify(digest)}`);
    const what = `blob ${digest} of ${ref.name}`;
    return withRetry(
      () =>
        this.acrossEndpoints(ref, undefined, async (endpoint) => {
          const res = await this.send(endpoint, `/v2/${ref.repository}/blobs/${digest}`, { method: 'HEAD', scope: repositoryScope(ref.repository), what, ...(signal ? { signal } : {}) });
          if (res.statusCode !== 200) throw await this.statusError(res, endpoint, ref, what);
          await res.body.dump();
          const length = Number(header(res.headers, 'content-length'));
          if (header(res.headers, 'content-length') === undefined || !Number.isSafeInteger(length) || length < 0) {
            throw new RegistryError(`${endpointName(endpoint, ref)} answered HEAD of ${what} without a usable Content-Length`);
          }
          return length;
        }),
      this.retry,
      signal ? { signal } : {},
    );
  }

  /**
   * Uploads one blob to ref's repository (the registry itself, never a mirror): POST for an
   * upload session, then the bytes (upload.ts: one monolithic PUT, or PATCH chunks resumed from
   * the registry's Range when `openRange` is given and the blob is over the threshold); the
   * registry checks the digest. With `mountFrom` (another repository of the same registry that
   * has the blob) the POST first asks the registry to mount it from there: 'mounted' when it
   * did, and nothing is uploaded.
   */
  async pushBlob(
    ref: Reference,
    desc: { digest: Digest; size: number },
    open: () => Readable,
    options: { signal?: AbortSignal; mountFrom?: string; openRange?: (start: number, end: number) => Readable; onProgress?: (uploaded: number) => void; upload?: UploadOptions } = {},
  ): Promise<'pushed' | 'mounted'> {
    const { digest, size } = desc;
    const { signal, mountFrom } = options;
    if (!isDigest(digest)) throw new StratumError('ERR_INVALID_DIGEST', `invalid blob digest ${JSON.stringify(digest)}`);
    const what = `blob ${digest} of ${ref.name}`;
    const scope = mountFrom ? `${pushScope(ref)} ${repositoryScope(mountFrom, 'pull')}` : pushScope(ref);
    const startPath = mountFrom
      ? `/v2/${ref.repository}/blobs/uploads/?${new URLSearchParams({ mount: digest, from: mountFrom })}`
      : `/v2/${ref.repository}/blobs/uploads/`;
    const session: UploadSession = {
      start: async () => {
        const endpoint = await this.upstream(ref, signal);
        const started = await this.send(endpoint, startPath, { method: 'POST', scope, what, headers: { 'content-length': '0' }, ...(signal ? { signal } : {}) });
        if (mountFrom && started.statusCode === 201) {
          await started.body.dump();
          return 'mounted';
        }
        if (started.statusCode !== 202) throw await this.statusError(started, endpoint, ref, `${what} (starting the upload)`);
        const location = header(started.headers, 'location');
        await started.body.dump();
        if (!location) throw new RegistryError(`${endpointName(endpoint, ref)} started an upload of ${what} without a Location`, 202);
        return new URL(location, endpoint.url);
      },
      send: async (method, target, headers, body) => {
        const endpoint = await this.upstream(ref, signal);
        const base = new URL(endpoint.url);
        const request: SendOptions = { method, scope, what, headers, ...(body ? { body } : {}), ...(signal ? { signal } : {}) };
        if (target.origin === base.origin) return this.send(endpoint, `${target.pathname}${target.search}`, request);
        // An upload handed to another host (storage behind the registry) gets no credentials, like a redirect.
        if (base.protocol === 'https:' && target.protocol !== 'https:') throw new RegistryError(`refusing to upload ${what} over plain HTTP to ${target.host}`);
        return this.rawRequest(target, method, { 'user-agent': this.userAgent, ...headers }, request);
      },
      fail: async (res, about) => this.statusError(res, await this.upstream(ref, signal), ref, `${what}: ${about}`),
    };
    return uploadBlob(session, { digest, size, open, ...(options.openRange ? { openRange: options.openRange } : {}) }, {
      ...this.upload,
      ...options.upload,
      retry: this.retry,
      ...(signal ? { signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  }

  /** PUTs a manifest under `reference` (a tag or its digest) in ref's repository; returns the digest the registry stored it under. */
  async pushManifest(ref: Reference, reference: string, mediaType: string, bytes: Buffer, signal?: AbortSignal): Promise<Digest> {
    // A signed schema1 manifest is addressed by its payload's digest, as the registry stores it.
    const digest = isSchema1MediaType(mediaType) && isSignedSchema1(bytes) ? schema1PayloadDigest(bytes, `manifest ${ref.name}`) : digestOf(bytes);
    const what = `manifest ${ref.name}:${reference}`;
    return withRetry(async () => {
      const endpoint = await this.upstream(ref, signal);
      const res = await this.send(endpoint, `/v2/${ref.repository}/manifests/${reference}`, {
        method: 'PUT',
        scope: pushScope(ref),
        what,
        headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
        body: () => bytes,
        ...(signal ? { signal } : {}),
      });
      if (res.statusCode !== 201) throw await this.statusError(res, endpoint, ref, what);
      await res.body.dump();
      const stored = header(res.headers, 'docker-content-digest');
      if (stored !== undefined && stored !== '' && stored !== digest) throw new DigestMismatchError(`${what} as stored by ${endpointName(endpoint, ref)}`, digest, stored);
      return digest;
    }, this.retry, signal ? { signal } : {});
  }

  /**
   * The referrers API (`GET /v2/<name>/referrers/<digest>`, OCI distribution 1.1): the index of
   * manifests whose `subject` is `digest`, filtered by `artifactType` when given (a registry that
   * ignores the filter is filtered here). undefined when the registry has no referrers API (404,
   * as distribution 2.8): then the referrers tag schema (`sha256-<hex>`) is where they are.
   */
  async referrers(ref: Reference, digest: Digest, options: { artifactType?: string; signal?: AbortSignal } = {}): Promise<Descriptor[] | undefined> {
    if (!isDigest(digest)) throw new StratumError('ERR_INVALID_DIGEST', `invalid digest ${JSON.stringify(digest)}`);
    const what = `referrers of ${ref.name}@${digest}`;
    const query = options.artifactType ? `?artifactType=${encodeURIComponent(options.artifactType)}` : '';
    const { signal } = options;
    return withRetry(
      () =>
        this.acrossEndpoints(ref, undefined, async (endpoint) => {
          const res = await this.send(endpoint, `/v2/${ref.repository}/referrers/${digest}${query}`, { scope: repositoryScope(ref.repository), what, headers: { accept: MediaType.OciIndex }, ...(signal ? { signal } : {}) });
          if (res.statusCode === 404) {
            await res.body.dump();
            return undefined;
          }
          if (res.statusCode !== 200) throw await this.statusError(res, endpoint, ref, what);
          const bytes = await readBuffer(res.body, MAX_MANIFEST_BYTES, (got) => new RegistryError(`${endpointName(endpoint, ref)}: ${what} is over ${MAX_MANIFEST_BYTES} bytes (at least ${got})`));
          let index: { manifests?: unknown };
          try {
            index = JSON.parse(bytes.toString('utf8')) as { manifests?: unknown };
          } catch {
            throw new RegistryError(`${endpointName(endpoint, ref)} sent ${what} that is not JSON`);
          }
          const manifests = Array.isArray(index.manifests) ? (index.manifests as Descriptor[]).filter((d) => typeof d === 'object' && d !== null && isDigest(d.digest)) : [];
          return options.artifactType ? manifests.filter((d) => d.artifactType === options.artifactType) : manifests;
        }),
      this.retry,
      signal ? { signal } : {},
    );
  }

  /**
   * The tags of ref's repository (`GET /v2/<name>/tags/list`), every page: `n` asks for
   * `pageSize` tags per page (the registry may send fewer or ignore it), and the next page is the
   * `Link: <…>; rel="next"` the registry sends, else `last=<last tag seen>` while full pages come
   * back. All pages come from one endpoint (mirrors first, as for manifests; a mirror that fails
   * moves the whole listing on to the next endpoint). A repository with no tags gives [].
   */
  async listTags(ref: Pick<Reference, 'registry' | 'repository' | 'name'>, options: { pageSize?: number; signal?: AbortSignal; maxPages?: number } = {}): Promise<string[]> {
    const { pageSize, signal } = options;
    const maxPages = options.maxPages ?? 10_000;
    if (pageSize !== undefined && !(Number.isSafeInteger(pageSize) && pageSize > 0)) throw new StratumError('ERR_INVALID_ARGUMENT', `tag page size must be a positive integer, got ${pageSize}`);
    const what = `tags of ${ref.name}`;
    const asRef = ref as Reference;
    return withRetry(
      () =>
        this.acrossEndpoints(asRef, undefined, async (endpoint) => {
          const tags: string[] = [];
          const seen = new Set<string>();
          const first = new URLSearchParams();
          if (pageSize !== undefined) first.set('n', String(pageSize));
          let path: string | undefined = `/v2/${ref.repository}/tags/list${pageSize !== undefined ? `?${first}` : ''}`;
          for (let page = 0; path !== undefined; page++) {
            if (page >= maxPages) throw new RegistryError(`${endpointName(endpoint, asRef)} sent more than ${maxPages} pages of ${what}`);
            const res = await this.send(endpoint, path, { scope: repositoryScope(ref.repository), what, headers: { accept: 'application/json' }, ...(signal ? { signal } : {}) });
            if (res.statusCode !== 200) throw await this.statusError(res, endpoint, asRef, what);
            const text = (await readBuffer(res.body, MAX_TAG_PAGE_BYTES, (got) => new RegistryError(`${endpointName(endpoint, asRef)}: a page of ${what} is over ${MAX_TAG_PAGE_BYTES} bytes (at least ${got})`))).toString('utf8');
            let body: { tags?: unknown };
            try {
              body = JSON.parse(text) as { tags?: unknown };
            } catch {
              throw new RegistryError(`${endpointName(endpoint, asRef)} answered ${what} with something that is not JSON: ${excerpt(text)}`);
            }
            const pageTags = body.tags ?? [];
            if (!Array.isArray(pageTags) || !pageTags.every((t) => typeof t === 'string')) throw new RegistryError(`${endpointName(endpoint, asRef)}: "tags" of ${what} is not a list of strings`);
            let fresh = 0;
            for (const t of pageTags as string[]) {
              if (seen.has(t)) continue;
              seen.add(t);
              tags.push(t);
              fresh++;
            }
            const next = nextLink(header(res.headers, 'link'));
            if (next !== undefined) {
              const url: URL = new URL(next, apiUrl(endpoint, path));
              if (url.origin !== new URL(endpoint.url).origin) throw new RegistryError(`${endpointName(endpoint, asRef)} sent a next page of ${what} on another host (${url.host})`);
              path = `${url.pathname}${url.search}`;
            } else if (pageSize !== undefined && pageTags.length >= pageSize && fresh > 0) {
              // No Link but a full page: ask for what follows the last tag (the spec's `last`).
              const q = new URLSearchParams({ n: String(pageSize), last: pageTags.at(-1) as string });
              path = `/v2/${ref.repository}/tags/list?${q}`;
            } else {
              path = undefined;
            }
            if (fresh === 0 && page > 0) path = undefined; // a registry repeating a page: stop, it has nothing new
          }
          return tags;
        }),
      this.retry,
      signal ? { signal } : {},
    );
  }

  /**
   * Checks that the credentials this client holds for `registry` are accepted, as `docker login`
   * does: `GET /v2/` on the registry itself (never a mirror); a 401 challenge is answered (a
   * token fetched with Basic auth, or Basic auth directly) and the request repeated once.
   * Resolves when the registry answers 200 (also when it needs no credentials at all: then
   * `authenticated` is false); throws UnauthorizedError naming the registry when it refuses them.
   */
  async checkLogin(registry: string, signal?: AbortSignal): Promise<{ authenticated: boolean; endpoint: string }> {
    const ref = { registry, repository: '', name: registry } as unknown as Reference;
    const what = `GET /v2/ (login)`;
    return withRetry(async () => {
      const endpoint = await this.upstream(ref, signal);
      const host = new URL(endpoint.url).host;
      let challenged = false;
      for (let attempt = 0; ; attempt++) {
        const headers: Record<string, string> = { 'user-agent': this.userAgent };
        const authorization = await this.auth.authorization(host, undefined);
        if (authorization) headers.authorization = authorization;
        const res = await this.rawRequest(new URL(`${endpoint.url}/v2/`), 'GET', headers, { what, ...(signal ? { signal } : {}) });
        if (res.statusCode === 401 && attempt === 0 && this.auth.onUnauthorized(host, res.headers['www-authenticate'])) {
          challenged = true;
          await res.body.dump();
          continue;
        }
        if (res.statusCode === 200) {
          await res.body.dump();
          return { authenticated: challenged, endpoint: endpoint.url };
        }
        if (res.statusCode === 401) {
          await res.body.dump();
          throw new UnauthorizedError(registry, challenged ? 'the registry refused the credentials (HTTP 401)' : 'the registry answered HTTP 401 with no challenge stratum can answer');
        }
        throw await this.statusError(res, endpoint, ref, what);
      }
    }, this.retry, signal ? { signal } : {});
  }

  /** Where pushes go: the registry itself; mirrors serve pulls only. */
  private upstream(ref: Reference, signal?: AbortSignal): Promise<Endpoint> {
    return this.spokenTo(this.endpoints(ref).find((e) => !e.isMirror)!, signal);
  }

  /**
   * An endpoint as it is spoken to. HTTPS first, as Docker does; an insecure host (loopback or
   * listed) that answers a TLS hello with something else (a plain-HTTP server: "wrong version
   * number") is spoken to in plain HTTP from then on. The probe is `GET /v2/`, the API's ping;
   * only a decisive answer is remembered (a refused connection is tried again next time).
   */
  private async spokenTo(endpoint: Endpoint, signal?: AbortSignal): Promise<Endpoint> {
    if (!endpoint.plainHttpFallback) return endpoint;
    const known = this.schemes.get(endpoint.url);
    if (known) return known;
    const probe = (async (): Promise<Endpoint | undefined> => {
      const url = new URL(`${endpoint.url}/v2/`);
      try {
        const res = await request(url, { method: 'GET', headers: { 'user-agent': this.userAgent }, dispatcher: this.dispatcher, ...(signal ? { signal } : {}) });
        await res.body.dump();
        this.log?.(`${url.host}: speaks HTTPS (insecure registry: plain HTTP would be the fallback)`);
        return endpoint;
      } catch (err) {
        if (!speaksPlainHttp(err)) return undefined;
        this.log?.(`${url.host}: no TLS (${tlsCode(err)}); plain HTTP, as for an insecure registry`);
        const { plainHttpFallback: _, ...rest } = endpoint;
        return { ...rest, url: endpoint.url.replace(/^https:/, 'http:') };
      }
    })();
    const decided = probe.then((e) => e ?? endpoint);
    this.schemes.set(endpoint.url, decided);
    // An undecided probe (connection refused, a timeout) is not remembered: the next request asks again.
    void probe.then((e) => {
      if (!e) this.schemes.delete(endpoint.url);
    }, () => this.schemes.delete(endpoint.url));
    return decided;
  }

  /** Releases the connection pool (when the client created it). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** `size`: the descriptor's, when known; else the body is capped at MAX_MANIFEST_BYTES (containerd's 4 MiB). */
  private async getManifest(ref: Reference, reference: string, expected: Digest | undefined, what: string, size?: number): Promise<ResolvedManifest> {
    const max = size !== undefined && size <= MAX_MANIFEST_BYTES ? size : MAX_MANIFEST_BYTES;
    const tooBig =
      max === size
        ? (got: number) => new SizeMismatchError(what, size, got, true)
        : (got: number) => new InvalidManifestError(what, `body of at least ${got} bytes is over the ${MAX_MANIFEST_BYTES}-byte manifest size limit`);
    return withRetry(
      () =>
        this.acrossEndpoints(ref, undefined, async (endpoint) => {
          const res = await this.send(endpoint, `/v2/${ref.repository}/manifests/${reference}`, {
            headers: { accept: MANIFEST_ACCEPT.join(', ') },
            scope: repositoryScope(ref.repository),
            what,
          });
          if (res.statusCode !== 200) throw await this.statusError(res, endpoint, ref, what);
          const declared = Number(header(res.headers, 'content-length'));
          if (Number.isFinite(declared) && declared > max) {
            res.body.destroy();
            throw tooBig(declared);
          }
          const bytes = await readBuffer(res.body, max, tooBig);
          return verifyManifest(bytes, header(res.headers, 'content-type'), header(res.headers, 'docker-content-digest'), expected, `${what} from ${endpoint.url}`, endpoint);
        }),
      this.retry,
    );
  }

  /**
   * Tries each endpoint in order; an error from a mirror moves on to the next one (a mirror that
   * is down, lacks the content or serves garbage must not stop a pull). When every endpoint
   * failed, the error reported is the one that says most: a transient one (5xx, 429, a dropped
   * connection) first, so the caller's retry tries the endpoints again; else a definitive answer
   * (not found, bad digest, bad manifest) over "could not connect" (an offline upstream behind a
   * mirror that answered 404 must say "not found"); else the last. But when the upstream itself
   * answered (401, 404, 503…), its answer is the one reported, whatever the mirrors did: a dead
   * mirror's "connection refused" must not hide the registry's own "not found" or "unauthorized".
   * The mirrors' failures are then added to its message as context.
   */
  private async acrossEndpoints<T>(ref: Reference, exclude: readonly string[] | undefined, fn: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const errors: unknown[] = [];
    /** The endpoints tried, as spoken to; errors[i] is endpoints[i]'s. */
    const endpoints: Endpoint[] = [];
    for (const configured of this.endpoints(ref)) {
      if (exclude?.includes(configured.url)) continue;
      let endpoint = configured;
      try {
        endpoint = await this.spokenTo(configured);
        if (exclude?.includes(endpoint.url)) continue;
        endpoints.push(endpoint);
        return await fn(endpoint);
      } catch (err) {
        if (endpoints.at(-1) !== endpoint) endpoints.push(endpoint);
        if ((err as { name?: string }).name === 'AbortError') throw err;
        errors.push(err);
      }
    }
    if (endpoints.length === 0) throw new RegistryError(`no endpoint left for ${ref.name} (all excluded)`);
    const upstreamAnswer = endpoints.length > 1 && !endpoints.at(-1)!.isMirror && errors.at(-1) instanceof StratumError && !(errors.at(-1) instanceof NetworkError);
    if (upstreamAnswer) {
      const answer = errors.at(-1) as StratumError;
      const mirrors = endpoints.slice(0, -1).map((e, i) => `mirror ${e.url}: ${describeError(errors[i])}`);
      answer.message += ` (after ${mirrors.join('; ')})`;
      throw answer;
    }
    throw errors.find((e) => isRetryable(e)) ?? errors.find((e) => !(e instanceof NetworkError)) ?? errors[errors.length - 1];
  }

  /** One request with auth: a 401 records the challenge and the request is repeated once with credentials. */
  private async send(endpoint: Endpoint, path: string, options: SendOptions): Promise<HttpResponse> {
    const url = apiUrl(endpoint, path);
    const host = url.host;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...options.headers };
      const authorization = await this.auth.authorization(host, options.scope);
      if (authorization) headers.authorization = authorization;
      const res = await this.rawRequest(url, options.method ?? 'GET', headers, options);
      if (res.statusCode === 401 && attempt === 0 && this.auth.onUnauthorized(host, res.headers['www-authenticate'], options.scope)) {
        await res.body.dump();
        continue;
      }
      return res;
    }
  }

  /**
   * Blob GETs are often redirected to storage (S3, a CDN). Redirects are followed here so that
   * Authorization goes only to the host it belongs to: a redirect to another host gets none.
   */
  private async sendFollowingRedirects(endpoint: Endpoint, path: string, options: SendOptions): Promise<HttpResponse> {
    let res = await this.send(endpoint, path, options);
    let current = apiUrl(endpoint, path);
    const origin = current.host;
    for (let hops = 0; isRedirect(res.statusCode); hops++) {
      const location = header(res.headers, 'location');
      await res.body.dump();
      if (!location) throw new RegistryError(`${current.host} redirected ${options.what} without a Location`, res.statusCode);
      if (hops >= MAX_REDIRECTS) throw new RegistryError(`too many redirects (over ${MAX_REDIRECTS}) for ${options.what}`, res.statusCode);
      const next = new URL(location, current);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new RegistryError(`redirect to unsupported URL scheme ${next.protocol} for ${options.what}`);
      if (current.protocol === 'https:' && next.protocol === 'http:') {
        throw new RegistryError(`refusing a redirect from HTTPS to plain HTTP (${next.host}) for ${options.what}`, res.statusCode);
      }
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...options.headers };
      if (next.host === origin) {
        const authorization = await this.auth.authorization(origin, options.scope);
        if (authorization) headers.authorization = authorization;
      }
      current = next;
      res = await this.rawRequest(next, 'GET', headers, options);
      if (next.host !== origin && res.statusCode >= 400) {
        const text = await readLimited(res.body, ERROR_BODY_LIMIT).catch(() => '');
        throw new RedirectTargetError(`${next.host} (where ${origin} redirected ${options.what}) answered HTTP ${res.statusCode}: ${registryErrorText(text) || excerpt(text)}`, res.statusCode);
      }
    }
    return res;
  }

  private async rawRequest(url: URL, method: NonNullable<SendOptions['method']>, headers: Record<string, string>, options: SendOptions): Promise<HttpResponse> {
    const { signal, what } = options;
    try {
      return await request(url, { method, headers, signal, dispatcher: this.dispatcher, ...(options.native === false ? { native: false } : {}), ...(options.body ? { body: options.body() } : {}) });
    } catch (err) {
      if ((err as { name?: string }).name === 'AbortError' || signal?.aborted) throw err;
      // A request body that failed on its own (a copied blob whose source failed its digest or
      // its connection) says what went wrong better than "cannot fetch": pass it through as is.
      if (err instanceof StratumError) throw err;
      const certificate = certificateProblem(err, url.host, this.certsDirs[0]) ?? (await this.hungUpOnTls(url, err));
      if (certificate) throw certificate;
      throw new NetworkError(`cannot fetch ${what} from ${url.origin}: ${describeError(err)}`, { cause: err });
    }
  }

  /** A TLS server that closed the connection without an answer: ask it why (a client certificate it wants), once per origin. */
  private async hungUpOnTls(url: URL, err: unknown): Promise<CertificateError | undefined> {
    if (url.protocol !== 'https:' || !(this.dispatcher instanceof Transport) || (err as { code?: unknown }).code !== 'UND_ERR_SOCKET') return undefined;
    if (this.diagnosed.has(url.origin)) return undefined;
    this.diagnosed.add(url.origin);
    const alert = await this.dispatcher.handshakeAlert(url.origin);
    return alert ? certificateProblem({ code: alert }, url.host, this.certsDirs[0]) : undefined;
  }

  private async statusError(res: HttpResponse, endpoint: Endpoint, ref: Reference, what: string): Promise<StratumError> {
    const text = await readLimited(res.body, ERROR_BODY_LIMIT).catch(() => '');
    const name = endpointName(endpoint, ref);
    const detail = registryErrorText(text);
    const status = res.statusCode;
    const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
    switch (status) {
      case 401:
        return new UnauthorizedError(name, `${what}: HTTP 401${detail ? `: ${detail}` : ''}`);
      case 403:
        return new DeniedError(name, `${what}: HTTP 403${detail ? `: ${detail}` : ''}`);
      case 404:
        return new NotFoundError(`${what} not found at ${endpoint.url}${detail ? ` (${detail})` : ''}`);
      case 429: {
        const limits = ['ratelimit-limit', 'ratelimit-remaining', 'retry-after']
          .map((h) => (header(res.headers, h) !== undefined ? `${h}: ${header(res.headers, h)}` : undefined))
          .filter(Boolean);
        return new RateLimitError(
          `${name} rate limit reached fetching ${what} (HTTP 429${limits.length ? `; ${limits.join(', ')}` : ''})${detail ? `: ${detail}` : ''}`,
          retryAfterMs,
        );
      }
      default:
        return new RegistryError(`${name} answered HTTP ${status} for ${what}: ${detail || excerpt(text)}`, status, retryAfterMs);
    }
  }
}

/** `endpoint.url + path`, without the `/v2` of the path for a mirror whose URL is the API root as is (override_path). */
function apiUrl(endpoint: Endpoint, path: string): URL {
  return new URL(endpoint.url + (endpoint.overridePath ? path.replace(/^\/v2(?=\/)/, '') : path));
}

/**
 * A TLS hello answered by something that is not TLS: the host speaks plain HTTP there (OpenSSL
 * reads the HTTP answer as a record of an unknown version or an absurd length).
 */
function speaksPlainHttp(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST' || code === 'EPROTO') return true;
  }
  return false;
}

function tlsCode(err: unknown): string {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return String(err);
}

/** Computes and checks a manifest's digest; exported for callers that fetch manifests some other way. */
export function verifyManifest(
  bytes: Buffer,
  contentType: string | undefined,
  dockerContentDigest: string | undefined,
  expected: Digest | undefined,
  subject: string,
  endpoint: Endpoint,
): ResolvedManifest {
  const mediaType = detectMediaType(bytes, contentType);
  const signedSchema1 = mediaType === MediaType.DockerSchema1SignedManifest || (mediaType === MediaType.DockerSchema1Manifest && isSignedSchema1(bytes));
  const digestWith = (alg: DigestAlgorithm): Digest => (signedSchema1 && alg === 'sha256' ? schema1PayloadDigest(bytes, subject) : digestOf(bytes, alg));
  if (dockerContentDigest !== undefined && dockerContentDigest !== '') {
    if (!isDigest(dockerContentDigest)) throw new RegistryError(`${subject}: Docker-Content-Digest ${JSON.stringify(dockerContentDigest)} is not a valid digest`);
    const actual = digestWith(digestAlgorithm(dockerContentDigest));
    if (actual !== dockerContentDigest) throw new DigestMismatchError(`${subject} (Docker-Content-Digest)`, dockerContentDigest, actual);
  }
  let digest: Digest;
  if (expected !== undefined) {
    digest = digestWith(digestAlgorithm(expected));
    if (digest !== expected) throw new DigestMismatchError(subject, expected, digest);
  } else {
    digest = digestWith('sha256');
  }
  return { descriptor: { mediaType, digest, size: bytes.length }, bytes, endpoint };
}

/** Content-Type when it says something, else the body's mediaType, else its shape (schema1 has none). */
export function detectMediaType(bytes: Buffer, contentType: string | undefined): string {
  const fromHeader = manifestContentType(contentType);
  let body: { mediaType?: unknown; schemaVersion?: unknown; signatures?: unknown; manifests?: unknown } | undefined;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    body = undefined;
  }
  if (typeof body?.mediaType === 'string' && body.mediaType !== '') return body.mediaType;
  if (fromHeader) return fromHeader;
  if (body?.schemaVersion === 1) return Array.isArray(body.signatures) ? MediaType.DockerSchema1SignedManifest : MediaType.DockerSchema1Manifest;
  if (Array.isArray(body?.manifests)) return MediaType.OciIndex;
  return MediaType.OciManifest;
}

/** `bytes 100-199/1000` → { start: 100, end: 199, total: 1000 }; total undefined for `*`. */
export function parseContentRange(value: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = value && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const out: { start: number; end: number; total?: number } = { start: Number(m[1]), end: Number(m[2]) };
  if (m[3] !== '*') out.total = Number(m[3]);
  return out;
}

/** `{errors:[{code,message}]}` from a registry → `MANIFEST_UNKNOWN: manifest unknown`; '' for other bodies. */
export function registryErrorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    if (!Array.isArray(parsed.errors)) return '';
    return parsed.errors
      .map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': '))
      .filter(Boolean)
      .join('; ');
  } catch {
    return '';
  }
}

function pushScope(ref: Reference): string {
  return repositoryScope(ref.repository, 'pull,push');
}

function endpointName(endpoint: Endpoint, ref: Pick<Reference, 'registry'>): string {
  return endpoint.isMirror ? new URL(endpoint.url).host : ref.registry;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads a body whole, stopping (and closing it) at the first chunk that takes it over `max` bytes. */
async function readBuffer(body: AsyncIterable<Uint8Array> & { destroy(): unknown }, max: number, tooBig: (got: number) => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      throw tooBig(size);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** The URL of `rel="next"` in a Link header (RFC 8288), as registries page tag and catalog lists. */
export function nextLink(value: string | undefined): string | undefined {
  if (!value) return undefined;
  for (const part of value.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!m) continue;
    const rels = /(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(m[2]!);
    const rel = rels?.[1] ?? rels?.[2];
    if (rel && rel.toLowerCase().split(/\s+/).includes('next')) return m[1];
  }
  return undefined;
}

