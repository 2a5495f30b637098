import { pipeline, Transform, type Readable } from 'node:stream';
import { RegistryError, type StratumError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { HttpResponse } from './http.js';
import { withRetry, type RetryPolicy } from './retry.js';

/**
 * When a blob goes up in chunks. 16 MiB chunks: a PATCH costs one round trip and the registry's
 * append, a few ms, against ~16 ms of bytes at loopback speed, so chunking costs under a tenth,
 * and a cut connection loses at most one chunk. Above 32 MiB only: a smaller blob is at most two
 * chunks, where resuming saves little over starting again, and most layers are small, so they
 * keep the one monolithic PUT (the fewest requests).
 */
export interface UploadOptions {
  /** Bytes per PATCH; default 16 MiB. */
  chunkSize?: number;
  /** Blobs larger than this go in chunks; at or below it, one monolithic PUT. Default 32 MiB. */
  monolithicThreshold?: number;
}

/** Bytes per PATCH of a chunked upload unless UploadOptions say otherwise. */
export const DEFAULT_CHUNK_SIZE = 16 << 20;
/** Blobs larger than this go up in chunks unless UploadOptions say otherwise. */
export const DEFAULT_MONOLITHIC_THRESHOLD = 32 << 20;
/** At most one progress report per this many ms (and one at the end of each chunk). */
const PROGRESS_INTERVAL_MS = 100;

/** The requests an upload needs, as the registry client makes them (auth, hosts, errors). */
export interface UploadSession {
  /** POST for an upload session (a mount when the client was asked for one): its URL, or 'mounted'. */
  start(): Promise<URL | 'mounted'>;
  /** One request to an upload URL; a fresh body per call. */
  send(method: 'GET' | 'PATCH' | 'PUT', url: URL, headers: Record<string, string>, body?: () => Readable): Promise<HttpResponse>;
  /** The error for an unexpected answer (reads and closes its body). */
  fail(res: HttpResponse, what: string): Promise<StratumError>;
}

export interface BlobUpload {
  digest: Digest;
  size: number;
  /** The whole blob, for a monolithic PUT. */
  open: () => Readable;
  /** Bytes start..end (inclusive); without it the blob always goes monolithic. */
  openRange?: (start: number, end: number) => Readable;
}

export interface UploadRunOptions extends UploadOptions {
  retry: RetryPolicy;
  signal?: AbortSignal;
  /** Bytes handed to the registry so far (throttled; may go back after a resume from an earlier point). */
  onProgress?: (uploaded: number) => void;
}

/**
 * Uploads a blob through `session`: monolithic (POST, PUT with the body) up to the threshold,
 * else chunked (POST, PATCHes of chunkSize following each answer's Location, PUT `?digest=`
 * with no body). A retryable failure mid-way asks the registry where the session stands (GET →
 * 204 `Range: 0-N`) and goes on from N+1; a session the registry no longer knows (404) starts
 * again from a new one. Retries follow the client's policy.
 */
export async function uploadBlob(session: UploadSession, blob: BlobUpload, options: UploadRunOptions): Promise<'pushed' | 'mounted'> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const threshold = options.monolithicThreshold ?? DEFAULT_MONOLITHIC_THRESHOLD;
  if (!(Number.isSafeInteger(chunkSize) && chunkSize > 0)) throw new RegistryError(`upload chunk size must be a positive integer, got ${chunkSize}`);
  const hooks = options.signal ? { signal: options.signal } : {};
  const progress = throttled(options.onProgress);
  if (!blob.openRange || blob.size <= threshold) {
    return withRetry(async () => {
      const location = await session.start();
      if (location === 'mounted') return 'mounted';
      await finish(session, location, blob.digest, { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) }, () => counting(blob.open(), 0, progress));
      progress.now(blob.size);
      return 'pushed';
    }, options.retry, hooks);
  }
  const openRange = blob.openRange;
  let location: URL | undefined;
  /** What the registry holds, as it last said. */
  let offset = 0;
  return withRetry(async (attempt) => {
    if (location !== undefined && attempt > 1) {
      const status = await uploadStatus(session, location, offset);
      location = status?.location;
      offset = status?.offset ?? 0;
    }
    if (location === undefined) {
      const started = await session.start();
      if (started === 'mounted') return 'mounted';
      location = started;
      offset = 0;
    }
    let resynced = false;
    while (offset < blob.size) {
      const start = offset;
      const end = Math.min(blob.size, start + chunkSize) - 1;
      const res = await session.send(
        'PATCH',
        location,
        { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end}`, 'content-length': String(end - start + 1) },
        () => counting(openRange(start, end), start, progress),
      );
      if (res.statusCode === 416 && !resynced) {
        // The registry holds another amount than we thought: ask it, once per attempt.
        resynced = true;
        await res.body.dump();
        const status = await uploadStatus(session, location, offset);
        if (status === undefined) throw await session.fail(res, `blob ${blob.digest} (upload session lost)`);
        ({ location, offset } = status);
        continue;
      }
      if (res.statusCode !== 202) throw await session.fail(res, `blob ${blob.digest} (chunk ${start}-${end})`);
      location = nextLocation(res, location);
      const held = rangeEnd(res);
      offset = held === undefined ? end + 1 : held;
      await res.body.dump();
      progress.now(offset);
    }
    await finish(session, location, blob.digest, { 'content-length': '0' });
    return 'pushed';
  }, options.retry, hooks);
}

/** The closing PUT `?digest=` (with the whole body for a monolithic upload): 201 or an error. */
async function finish(session: UploadSession, location: URL, digest: Digest, headers: Record<string, string>, body?: () => Readable): Promise<void> {
  const target = new URL(location);
  target.searchParams.set('digest', digest);
  const res = await session.send('PUT', target, headers, body);
  if (res.statusCode !== 201) throw await session.fail(res, `blob ${digest} (upload)`);
  await res.body.dump();
}

/**
 * GET of the upload URL: where the session stands (its next Location and the bytes it holds), or
 * undefined when the registry no longer knows it (404; distribution also cancels a session whose
 * stored size differs from what its Location's state says, a PATCH cut after some bytes landed).
 */
async function uploadStatus(session: UploadSession, location: URL, confirmed: number): Promise<{ location: URL; offset: number } | undefined> {
  const res = await session.send('GET', location, {});
  if (res.statusCode === 404) {
    await res.body.dump();
    return undefined;
  }
  if (res.statusCode !== 204 && res.statusCode !== 200) throw await session.fail(res, 'upload status');
  const held = rangeEnd(res);
  await res.body.dump();
  // distribution answers an empty session with `0-0`, as it would one holding one byte.
  const offset = held === undefined || (held === 1 && confirmed === 0) ? 0 : held;
  return { location: nextLocation(res, location), offset };
}

function nextLocation(res: HttpResponse, current: URL): URL {
  const value = res.headers.location;
  const location = Array.isArray(value) ? value[0] : value;
  return location ? new URL(location, current) : current;
}

/** `Range: 0-N` (the registry holds N+1 bytes) → N+1. */
function rangeEnd(res: HttpResponse): number | undefined {
  const value = res.headers.range;
  const m = /^\s*(?:bytes=)?0-(\d+)\s*$/.exec((Array.isArray(value) ? value[0] : value) ?? '');
  return m ? Number(m[1]) + 1 : undefined;
}

interface Progress {
  /** A report now (the end of a chunk or of the blob). */
  now(uploaded: number): void;
  /** A report unless one was made in the last PROGRESS_INTERVAL_MS. */
  maybe(uploaded: number): void;
  readonly active: boolean;
}

function throttled(report: ((uploaded: number) => void) | undefined): Progress {
  let last = 0;
  return {
    active: report !== undefined,
    now(uploaded) {
      last = Date.now();
      report?.(uploaded);
    },
    maybe(uploaded) {
      if (report === undefined) return;
      const t = Date.now();
      if (t - last < PROGRESS_INTERVAL_MS) return;
      last = t;
      report(uploaded);
    },
  };
}

/** `source` with its bytes counted from `base` into `progress` (as is when nobody listens). */
function counting(source: Readable, base: number, progress: Progress): Readable {
  if (!progress.active) return source;
  let sent = base;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sent += chunk.length;
      progress.maybe(sent);
      callback(null, chunk);
    },
  });
  // Destroying the counter (a request that failed) closes the source, and a source error fails the body.
  return pipeline(source, counter, () => {});
}
