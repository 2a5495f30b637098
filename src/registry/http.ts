import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';

/**
 * undici's request API, loaded from its own module: the package index pulls in every
 * dispatcher, fetch, caches and mocks, which costs ~48 ms of a CLI start (measured on Node 20).
 * The path is undici 7's, which package.json pins. The dispatcher is always the caller's (the
 * registry client's Transport).
 */
const require = createRequire(import.meta.url);
const api = require('undici/lib/api/index.js') as {
  request(this: Dispatcher, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
};

/** A response as undici gives it. */
export type HttpResponse = Dispatcher.ResponseData;

export interface RequestOptions extends Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> {
  method?: Dispatcher.HttpMethod;
  dispatcher: Dispatcher;
}

/** undici's `request(url, options)`, without its global-dispatcher fallback: the caller always names one. */
export function request(url: URL, options: RequestOptions): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = options;
  return api.request.call(dispatcher, {
    ...rest,
    origin: url.origin,
    path: url.search ? `${url.pathname}${url.search}` : url.pathname,
    method: rest.method ?? (rest.body ? 'PUT' : 'GET'),
  });
}
