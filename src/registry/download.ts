import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { DigestMismatchError, NetworkError, RegistryError, SizeMismatchError, StratumError } from '../errors.js';
import type { BlobInfo, Ingester, IngestWriter } from '../content/content.js';
import type { Digest } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import type { RetryConfig } from './hosts.js';
import { backoffDelay, describeError, isRetryable, retryPolicy } from './retry.js';
import { fetchRanges, RangeIgnoredError, DEFAULT_PARALLEL_FETCH, type ParallelFetchOptions } from './ranged-fetch.js';
import type { BlobFetcher, DownloadEvent, Endpoint } from './types.js';
import { isNativeBody } from './transport/native-tls.js';

/** Body bytes per native receive job: progress and abort happen between them. */
const NATIVE_SLICE = 4 << 20;

export interface DownloadOptions {
  onEvent?: (event: DownloadEvent) => void;
  retry?: RetryConfig;
  signal?: AbortSignal;
  /**
   * Sees every byte that goes to the store, in order, each once, starting at `resumedFrom` of the
   * result (0 unless a partial ingest from an earlier run was resumed; then the caller must hash
   * the prefix itself, e.g. by reading the committed blob, or pass `teeFromStart`). Retries and a
   * registry that ignores Range do not repeat bytes to it.
   */
  tee?: (chunk: Buffer) => void;
  /** With `tee`: drop a partial ingest from an earlier run and fetch from byte 0, so tee sees the whole blob. */
  teeFromStart?: boolean;
  /**
   * With `tee`: called before the blob is fetched again from byte 0 from another endpoint after a
   * mirror served corrupt bytes; the tee consumer must forget what it saw. Without it, a corrupt
   * blob from a mirror is an error when `tee` is set.
   */
  onTeeRestart?: () => void;
  /**
   * Called once, when every byte of the blob has been received and written, before it is verified
   * and committed (fsync, rename). A caller that bounds transfers can start the next one then, so
   * the fsync overlaps it. A mirror's corrupt blob fetched again from the next endpoint comes after.
   */
  onFetched?: () => void;
  /** Called with the path of the verified content before it is fsynced and renamed into the store (see IngestWriter.commit). */
  onVerified?: (path: string) => void;
  /** Minimum gap between two 'downloading' events. Default 100 ms. */
  progressIntervalMs?: number;
  /** Parallel Range requests within a large blob; default the fetcher's `parallelFetchFor(ref)` (false: never). */
  parallel?: ParallelFetchOptions | false;
  lockTimeoutMs?: number;
}

export interface DownloadResult {
  info: BlobInfo;
  /** The blob was already in the store; nothing was fetched. */
  existed: boolean;
  /** Bytes that were already on disk from an earlier, interrupted ingest (0 for a fresh one). */
  resumedFrom: number;
  /** Where the bytes came from (undefined when nothing had to be fetched). */
  endpoint?: Endpoint;
}

export { type LimitFunction };

/** Bounded concurrency for blob downloads (p-limit). */
export function createLimiter(concurrency: number): LimitFunction {
  return pLimit(concurrency);
}

/**
 * Streams one blob from a registry into the store: skips it when the store has it, resumes a
 * partial ingest with Range, retries connection errors, 5xx and 429 from where the bytes stopped,
 * restarts from 0 when the registry ignores Range, and commits only after size and digest match.
 * A digest mismatch aborts the ingest (nothing committed); when a mirror served the bad bytes, the
 * blob is fetched once more from the next endpoint.
 */
export async function downloadBlob(
  fetcher: BlobFetcher,
  ref: Reference,
  desc: { digest: Digest; size?: number },
  ingester: Ingester,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const { digest } = desc;
  const emit = options.onEvent ?? (() => {});
  const policy = retryPolicy(options.retry);
  const ingestOptions = { ...(desc.size !== undefined ? { expectedSize: desc.size } : {}), ...(options.lockTimeoutMs !== undefined ? { lockTimeoutMs: options.lockTimeoutMs } : {}) };
  const interval = options.progressIntervalMs ?? 100;

  let writer: IngestWriter | null = await ingester.ingest(digest, ingestOptions);
  if (!writer) return existing(ingester, desc, emit);
  if (options.tee && options.teeFromStart && writer.offset > 0) await writer.reset();
  const resumedFrom = writer.offset;
  /** Everything below this position has been handed to tee. */
  let teedUpTo = resumedFrom;
  const exclude: string[] = [];
  let lastEndpoint: Endpoint | undefined;
  let fetchedSignalled = false;
  const parallelSetting = options.parallel ?? fetcher.parallelFetchFor?.(ref) ?? DEFAULT_PARALLEL_FETCH;
  const parallel = parallelSetting === false ? undefined : { ...DEFAULT_PARALLEL_FETCH, ...parallelSetting };
  /** An endpoint answered a Range request with the whole blob: no parallel requests for this blob. */
  let rangesIgnored = false;
  /** A mirror's bad content; reported instead of the upstream's failure to connect, which says less. */
  let mirrorError: unknown;

  /**
   * After an endpoint's bad content (a corrupt or oversized blob): when it was a mirror, forget
   * what it sent and fetch from the next endpoint. False when there is no next one to try.
   */
  const leaveMirror = async (err: Error, endpoint: Endpoint | undefined): Promise<boolean> => {
    const canRestartTee = !options.tee || options.onTeeRestart !== undefined;
    if (!endpoint?.isMirror || exclude.length > 0 || !canRestartTee) return false;
    exclude.push(endpoint.url);
    mirrorError = err;
    emit({ type: 'retrying', digest, attempt: 1, delayMs: 0, reason: `${err.message}; trying the next endpoint` });
    writer = await ingester.ingest(digest, ingestOptions);
    if (writer && writer.offset > 0) await writer.reset();
    options.onTeeRestart?.();
    teedUpTo = 0;
    return true;
  };

  /** Hands tee the part of `chunk` (at blob offset `at`) it has not seen yet. */
  const teeChunk = (chunk: Buffer, at: number): void => {
    if (!options.tee || at + chunk.length <= teedUpTo) return;
    options.tee(teedUpTo > at ? chunk.subarray(teedUpTo - at) : chunk);
    teedUpTo = at + chunk.length;
  };
  /** Throttled 'downloading' events from byte `from`; `done()` sends the last one. */
  const progress = (from: number, total: number | undefined) => {
    let lastEmit = 0;
    const tracker = {
      pos: from,
      advance(n: number): void {
        tracker.pos += n;
        const now = Date.now();
        if (now - lastEmit >= interval) {
          lastEmit = now;
          tracker.done();
        }
      },
      done(): void {
        emit({ type: 'downloading', digest, current: tracker.pos, ...(total !== undefined ? { total } : {}) });
      },
    };
    return tracker;
  };

  try {
    endpoints: for (;;) {
      let failures = 0;
      for (;;) {
        const offset = position(writer);
        if (desc.size !== undefined && offset >= desc.size && offset > 0) break; // all bytes on disk: verify
        let fetchedFrom: Endpoint | undefined;
        try {
          if (parallel && !rangesIgnored && desc.size !== undefined && desc.size - offset >= parallel.thresholdBytes) {
            const got = progress(offset, desc.size);
            lastEndpoint = await fetchRanges({
              fetcher,
              ref,
              digest,
              sink: writer.stream(),
              from: offset,
              size: desc.size,
              options: parallel,
              exclude,
              ...(options.signal ? { signal: options.signal } : {}),
              onChunk: (chunk) => {
                teeChunk(chunk, got.pos);
                got.advance(chunk.length);
              },
            });
            got.done();
            break;
          }
          const res = await fetcher.fetchBlob(ref, digest, { offset, signal: options.signal, exclude, verify: false });
          fetchedFrom = res.endpoint;
          if (res.start !== offset) {
            if (res.start !== 0) {
              res.body.destroy();
              throw new RegistryError(`${res.endpoint.url} answered blob ${digest} from byte ${res.start}, asked for ${offset}`);
            }
            await writer.reset(); // Range ignored: the body is the whole blob
          }
          if (desc.size !== undefined && res.totalSize !== undefined && res.totalSize !== desc.size) {
            res.body.destroy();
            throw new SizeMismatchError(`blob ${digest} of ${ref.name} from ${res.endpoint.url}`, desc.size, res.totalSize);
          }
          const got = progress(res.start, desc.size ?? res.totalSize);
          const source = res.endpoint.url;
          /** A body that runs past the descriptor's size (a hostile or broken server, chunked): stop reading it. */
          const overflow = (got: number) => new SizeMismatchError(`blob ${digest} of ${ref.name} from ${source}`, desc.size!, got, true);
          const body = res.body;
          if (!options.tee && isNativeBody(body) && body.contentLength !== undefined && writer.receive) {
            // socket → file + hash in C, NATIVE_SLICE bytes per pool job (progress and abort between them).
            const end = got.pos + body.remaining;
            if (desc.size !== undefined && end > desc.size) {
              body.destroy();
              throw overflow(end);
            }
            // An abort shuts the socket down under a receive that waits on a stalled peer.
            const stop = () => body.destroy();
            options.signal?.addEventListener('abort', stop, { once: true });
            try {
              while (body.remaining > 0) {
                options.signal?.throwIfAborted();
                got.advance(await writer.receive(body, NATIVE_SLICE));
              }
            } catch (err) {
              options.signal?.throwIfAborted();
              throw err;
            } finally {
              options.signal?.removeEventListener('abort', stop);
            }
          } else {
            const sink = writer.stream();
            // Socket reads arrive 64 KiB at a time; corking the sink until the event loop has taken
            // every read that is ready lets the store write them with one writev instead of several.
            let corked = false;
            const uncork = () => {
              corked = false;
              sink.uncork();
            };
            const counter = new Transform({
              transform(chunk: Buffer, _enc, done) {
                if (!corked) {
                  corked = true;
                  sink.cork();
                  setImmediate(uncork);
                }
                const end = got.pos + chunk.length;
                if (desc.size !== undefined && end > desc.size) {
                  done(overflow(end));
                  return;
                }
                teeChunk(chunk, got.pos);
                got.advance(chunk.length);
                done(null, chunk);
              },
            });
            // A body cut mid-way ends the pipeline normally so the bytes already received reach the
            // file (the retry resumes after them); its error is raised once they have.
            let bodyError: unknown;
            async function* received(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
              try {
                for await (const chunk of body) yield chunk;
              } catch (err) {
                bodyError = err;
              }
            }
            await pipeline(received(res.body), counter, sink, ...(options.signal ? [{ signal: options.signal }] : []));
            if (bodyError !== undefined) throw bodyError;
          }
          got.done();
          lastEndpoint = res.endpoint;
          break;
        } catch (err) {
          if (err instanceof RangeIgnoredError) {
            rangesIgnored = true; // fetched again in one piece, at once
            if (writer.written === undefined) {
              await writer.close();
              writer = await ingester.ingest(digest, ingestOptions);
              if (!writer) return existing(ingester, desc, emit);
            }
            continue;
          }
          if (err instanceof SizeMismatchError) {
            // What the endpoint sent is not this blob: drop it, never resume from it.
            await writer.abort();
            writer = null;
            if (!(await leaveMirror(err, fetchedFrom))) throw err;
            if (!writer) return existing(ingester, desc, emit);
            continue endpoints;
          }
          if (options.signal?.aborted) throw err;
          if (!isRetryable(err)) throw namingBlob(err, digest, ref, fetchedFrom);
          if (writer.written === undefined) {
            // The writer cannot tell how much it persisted: hand the partial file back and reopen it.
            await writer.close();
            writer = await ingester.ingest(digest, ingestOptions);
            if (!writer) return existing(ingester, desc, emit); // another process finished it meanwhile
          }
          if (position(writer) > offset) failures = 0; // progress: a flaky link gets its attempts back
          failures++;
          if (failures >= policy.maxAttempts) throw namingBlob(err, digest, ref, fetchedFrom);
          const delayMs = backoffDelay(failures, policy, err);
          const from = fetchedFrom ? ` from ${fetchedFrom.url}` : '';
          emit({ type: 'retrying', digest, attempt: failures, delayMs, reason: `${describeError(err)}${from}` });
          await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : undefined);
        }
      }

      if (!fetchedSignalled) {
        fetchedSignalled = true;
        options.onFetched?.();
      }
      emit({ type: 'verifying', digest });
      const committing = writer;
      try {
        const info = await committing.commit(desc.size, options.onVerified ? { onVerified: options.onVerified } : {});
        writer = null;
        emit({ type: 'complete', digest, size: info.size, resumedFrom });
        return { info, existed: false, resumedFrom, ...(lastEndpoint ? { endpoint: lastEndpoint } : {}) };
      } catch (err) {
        if (!(err instanceof DigestMismatchError || err instanceof SizeMismatchError)) throw err;
        await committing.abort();
          writer = null;
        if (!(await leaveMirror(err, lastEndpoint))) throw err;
        if (!writer) return existing(ingester, desc, emit);
      }
    }
  } catch (err) {
    throw mirrorError !== undefined && err instanceof NetworkError ? mirrorError : err;
  } finally {
    // Keeps partial bytes for a later resume (close is idempotent and a no-op after commit/abort).
    if (writer) await writer.close().catch(() => {});
  }
}

/**
 * A failure that ends a blob's download must say which blob: a body cut short surfaces as a
 * socket error of undici or a NetworkError naming only the origin. StratumErrors that already
 * name it (or another subject on purpose: a store write, a 404) are kept as they are.
 */
function namingBlob(err: unknown, digest: Digest, ref: Reference, endpoint: Endpoint | undefined): unknown {
  if (err instanceof StratumError && (err.code !== 'ERR_NETWORK' || err.message.includes(digest))) return err;
  if (!(err instanceof Error)) return err;
  const from = endpoint ? ` from ${endpoint.url}` : '';
  return new NetworkError(`cannot fetch blob ${digest} of ${ref.name}${from}: ${describeError(err)}`, { cause: err });
}

function position(writer: IngestWriter): number {
  return writer.written ?? writer.offset;
}

async function existing(ingester: Ingester, desc: { digest: Digest; size?: number }, emit: (e: DownloadEvent) => void): Promise<DownloadResult> {
  let size = desc.size;
  // Stores that are also Providers (OciStore) know the size of what they hold; schema1 descriptors do not.
  const info = (ingester as Partial<{ info(d: Digest): Promise<BlobInfo | undefined> }>).info;
  if (typeof info === 'function') size = (await info.call(ingester, desc.digest))?.size ?? size;
  emit({ type: 'exists', digest: desc.digest, size: size ?? 0 });
  return { info: { digest: desc.digest, size: size ?? 0 }, existed: true, resumedFrom: 0 };
}
