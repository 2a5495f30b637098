import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { RegistryError, SizeMismatchError } from '../errors.js';
import { drained } from '../sys/drained.js';
import type { Digest } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import type { BlobFetcher, Endpoint } from './types.js';

/**
 * Parallel Range requests within one large blob (containerd 2.1's concurrent layer fetch): the
 * blob is cut into chunks fetched `connections` at a time and written to the ingest in order,
 * so it is hashed in order and a follower reads a growing prefix as before. Memory is bounded by
 * `connections × chunkBytes`: a chunk that arrives before the ones ahead of it waits in memory.
 */
export interface ParallelFetchOptions {
  /** Blobs with at least this many bytes left to fetch go in parallel. Default 64 MiB. */
  thresholdBytes?: number;
  /** Bytes per Range request. Default 4 MiB. */
  chunkBytes?: number;
  /** Requests in flight for one blob. Default 4. */
  connections?: number;
}

export const DEFAULT_PARALLEL_FETCH: Required<ParallelFetchOptions> = { thresholdBytes: 64 << 20, chunkBytes: 4 << 20, connections: 4 };

/** The registry answered a Range request with the whole blob: fetch it in one piece instead. */
export class RangeIgnoredError extends RegistryError {
  constructor(readonly endpoint: Endpoint) {
    super(`${endpoint.url} ignores Range requests`);
  }
}

export interface RangedFetch {
  fetcher: BlobFetcher;
  ref: Reference;
  digest: Digest;
  /** Where the bytes go, in order (the ingest's stream). */
  sink: Writable;
  /** First byte to fetch (what the ingest already holds ends here). */
  from: number;
  size: number;
  options: Required<ParallelFetchOptions>;
  exclude: readonly string[];
  signal?: AbortSignal;
  /** The bytes, in order, just before they are handed to the sink. */
  onChunk(chunk: Buffer): void;
}

/**
 * Fetches [from, size) in chunks, in parallel, into `sink` in order; ends the sink. A failed
 * chunk aborts the others and rejects (what reached the sink stays: the caller resumes after it).
 * RangeIgnoredError when the first answer is a 200 with the whole blob.
 */
export async function fetchRanges(job: RangedFetch): Promise<Endpoint> {
  const { fetcher, ref, digest, size, options } = job;
  const stop = new AbortController();
  const signal = job.signal ? AbortSignal.any([job.signal, stop.signal]) : stop.signal;
  let lastEndpoint: Endpoint | undefined;

  /** A chunk as it arrived: the body's own buffers, not copied. */
  const fetchChunk = async (start: number, length: number): Promise<Buffer[]> => {
    const res = await fetcher.fetchBlob(ref, digest, { offset: start, length, signal, exclude: job.exclude, verify: false });
    lastEndpoint = res.endpoint;
    if (!res.partial) {
      res.body.destroy();
      throw new RangeIgnoredError(res.endpoint);
    }
    if (res.start !== start) {
      res.body.destroy();
      throw new RegistryError(`${res.endpoint.url} answered blob ${digest} from byte ${res.start}, asked for ${start}`);
    }
    const out: Buffer[] = [];
    let got = 0;
    for await (const piece of res.body as AsyncIterable<Buffer>) {
      if (got + piece.length > length) {
        res.body.destroy();
        throw new SizeMismatchError(`bytes ${start}-${start + length - 1} of blob ${digest} of ${ref.name} from ${res.endpoint.url}`, length, got + piece.length, true);
      }
      out.push(piece);
      got += piece.length;
    }
    if (got < length) {
      // A short body is a cut connection: retryable, like any body that ends early.
      throw Object.assign(new Error(`bytes ${start}-${start + length - 1} of blob ${digest}: the body ended after ${got} bytes`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' });
    }
    return out;
  };

  const pending: Promise<Buffer[]>[] = [];
  let next = job.from;
  const launch = (): void => {
    const length = Math.min(options.chunkBytes, size - next);
    const p = fetchChunk(next, length);
    p.catch(() => {}); // awaited in order below; an early failure must not be an unhandled rejection
    pending.push(p);
    next += length;
  };
  try {
    while (pending.length < options.connections && next < size) launch();
    while (pending.length > 0) {
      const pieces = await pending.shift()!;
      if (next < size) launch();
      for (const piece of pieces) {
        job.onChunk(piece);
        if (!job.sink.write(piece)) await drained(job.sink);
      }
    }
    job.sink.end();
    await once(job.sink, 'finish');
    return lastEndpoint!;
  } catch (err) {
    stop.abort(err);
    job.sink.end();
    await once(job.sink, 'close').catch(() => {});
    throw err;
  }
}
