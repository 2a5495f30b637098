import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';

/**
 * undici's request API, loaded from its own module: the package index pulls in every
 * dispatcher, fetch, caches and mocks, which costs ~48 ms of a CLI start (measured on Node 20).
 * The path is undici 7's, which package.json pins. The dispatcher is always the caller's (the
 * registry client's Transport).
 */
const require = createRequire(import.meta.url);
type Api = { request(this: Dispatcher, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> };
let api: Api | undefined;
/** Loaded on first use: a pull whose requests all go native never needs it (~25 ms). */
const loadApi = (): Api => (api ??= require('undici/lib/api/index.js') as Api);

/** A response as undici gives it. */
export type HttpResponse = Dispatcher.ResponseData;

export interface RequestOptions extends Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> {
  method?: Dispatcher.HttpMethod;
  dispatcher: Dispatcher;
  /**
   * false: never the native receive, even for a GET (the bounded Range chunks of a parallel fetch,
   * which undici spreads over its pool). Otherwise a GET goes native when the dispatcher allows it;
   * its connections are kept alive and reused as undici's are.
   */
  native?: boolean;
}

/** A dispatcher that can take a GET itself (registry/transport/transport.ts: the native receive); undefined from it means "not this one". */
interface NativeGetter {
  nativeGet(url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<HttpResponse | undefined>;
}

function nativeGetter(dispatcher: Dispatcher): NativeGetter | undefined {
  return typeof (dispatcher as Partial<NativeGetter>).nativeGet === 'function' ? (dispatcher as unknown as NativeGetter) : undefined;
}

function plainHeaders(headers: RequestOptions['headers']): Record<string, string> | undefined {
  if (headers === undefined || headers === null) return {};
  if (typeof headers !== 'object' || Array.isArray(headers) || Symbol.iterator in headers) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') return undefined;
    out[k] = v;
  }
  return out;
}

/**
 * undici's `request(url, options)`, without its global-dispatcher fallback: the caller always
 * names one. A GET without a body goes to the dispatcher's native receive when it has one and
 * the route allows it (Transport decides), unless marked `native: false`.
 */
export async function request(url: URL, options: RequestOptions): Promise<Dispatcher.ResponseData> {
  const { dispatcher, native, ...rest } = options;
  const method = rest.method ?? (rest.body ? 'PUT' : 'GET');
  const getter = method === 'GET' && !rest.body && native !== false ? nativeGetter(dispatcher) : undefined;
  const headers = getter ? plainHeaders(rest.headers) : undefined;
  if (getter && headers) {
    const res = await getter.nativeGet(url, headers, rest.signal as AbortSignal | undefined);
    if (res) return res;
  }
  return loadApi().request.call(dispatcher, {
    ...rest,
    origin: url.origin,
    path: url.search ? `${url.pathname}${url.search}` : url.pathname,
    method,
  });
}
