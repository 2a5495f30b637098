import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, isNoSpace, LayerApplyError, LayerLimitError, NoSpaceError, StratumError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { DigestWriter } from '../sys/native.js';
import type { LayerCompression } from '../oci/mediatypes.js';
import { autoDecompressor } from './decompress.js';
import { LayerWriter, nativeTarget } from './layer-writer.js';
import { loadNative } from '../sys/native.js';
import { TarFormatError, TarReader, type TarEvent } from '../tar/reader.js';
import type { ApplyOptions, ApplyResult } from './types.js';

export const DEFAULT_LIMITS = { maxBytes: 64 * 1024 ** 3, maxEntries: 10_000_000, maxPathLength: 4096 } as const;

/**
 * Applies one layer blob to rootDir: decompresses (gzip / zstd / plain by magic bytes), hashes
 * the uncompressed stream (the diffID, trailing bytes included), parses the tar, and writes every
 * entry through the native addon inside the root. Throws DigestMismatchError (ERR_DIGEST_MISMATCH)
 * after applying when expectedDiffId differs: the caller must then not commit the snapshot.
 */
export async function applyLayer(compressed: Readable, rootDir: string, options: ApplyOptions): Promise<ApplyResult & { compression: LayerCompression }> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const binding = loadNative();
  options.signal?.throwIfAborted();
  const rootFd = binding.openRoot(rootDir);
  try {
    const writer = new LayerWriter(nativeTarget(binding), rootFd, rootDir, {
      mode: options.mode,
      userxattr: options.userxattr,
      hasLowerLayers: options.hasLowerLayers,
      subject: options.subject,
      maxEntries: limits.maxEntries,
      maxPathLength: limits.maxPathLength,
    });
    const read = await readLayer(compressed, writer, rootDir, options);
    const overlayFixups = writer.overlayFixups();
    return { ...read, entries: writer.entries, ...(overlayFixups ? { overlayFixups } : {}) };
  } finally {
    binding.closeFd(rootFd);
  }
}

/** What readLayer feeds the parsed entries to (a LayerWriter on some target). */
export interface TarSink {
  handle(ev: TarEvent): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * The part of applying a layer every target shares: decompresses (gzip / zstd / plain by magic
 * bytes), hashes the uncompressed stream (the diffID, trailing bytes included), parses the tar
 * into `sink`, and checks the diffID (DigestMismatchError, ERR_DIGEST_MISMATCH, after the sink
 * finished: the caller must then not commit). `where` names the destination in errors.
 */
export async function readLayer(compressed: Readable, sink: TarSink, where: string, options: Pick<ApplyOptions, 'subject' | 'limits' | 'signal' | 'expectedDiffId'>): Promise<{ diffId: Digest; size: number; compression: LayerCompression }> {
  const { subject } = options;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const binding = loadNative();
  options.signal?.throwIfAborted();
  // The diffID is hashed on the thread pool, one batch in flight, while this thread parses the tar.
  const digester = new PipelinedDigest(binding.createDigestWriter(-1, 'sha256'));
  const reader = new TarReader();
  let compression: LayerCompression = 'none';
  /** Holes of sparse files: bytes the layer unpacks to beyond its stream, counted against maxBytes too. */
  let holeBytes = 0;
  const decompressed = autoDecompressor((kind) => (compression = kind));
  const piping = pipeline(compressed, decompressed, options.signal ? { signal: options.signal } : {});
  piping.catch(() => {});
  try {
    for await (const chunk of decompressed as AsyncIterable<Buffer>) {
      digester.update(chunk);
      if (digester.size > limits.maxBytes) {
        throw new LayerLimitError(subject, 'maxBytes', limits.maxBytes, `uncompressed size above ${limits.maxBytes} bytes`);
      }
      if (reader.ended) continue; // bytes after the end-of-archive marker: hashed, not parsed
      reader.push(chunk);
      for (let ev = reader.next(); ev !== null; ev = reader.next()) {
        if (ev.kind === 'entry' && ev.header.size > limits.maxBytes - digester.size - holeBytes + chunk.length) {
          throw new LayerLimitError(subject, 'maxBytes', limits.maxBytes, `entry ${JSON.stringify(ev.header.name)} declares ${ev.header.size} bytes, which with what came before`);
        }
        if (ev.kind === 'hole') holeBytes += ev.length;
        await sink.handle(ev);
      }
    }
    await piping;
    reader.finish();
    await sink.finish();
    await digester.settle();
  } catch (err) {
    decompressed.destroy();
    compressed.destroy();
    await sink.abort();
    await digester.settle().catch(() => {});
    throw toLayerError(err, subject, compression, where, options.signal);
  }
  const diffId = `sha256:${digester.digest()}` as Digest;
  if (options.expectedDiffId !== undefined && diffId !== options.expectedDiffId) {
    throw new DigestMismatchError(`${subject} (uncompressed diffID)`, options.expectedDiffId, diffId);
  }
  return { diffId, size: digester.size, compression };
}

function toLayerError(err: unknown, subject: string, compression: LayerCompression, rootDir: string, signal?: AbortSignal): unknown {
  if (isNoSpace(err)) return new NoSpaceError(subject, rootDir, err instanceof Error ? err.message : String(err), { cause: err });
  if (err instanceof StratumError) return err;
  if (signal?.aborted) return signal.reason ?? err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof TarFormatError) return new LayerApplyError(subject, message, { cause: err });
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('Z_')) return new LayerApplyError(subject, `${compression} decompression failed: ${message}`, { cause: err });
  if (compression === 'zstd' && /zstd|frame|corrupt/i.test(message)) return new LayerApplyError(subject, `zstd decompression failed: ${message}`, { cause: err });
  return new LayerApplyError(subject, `applying to the root failed: ${message}`, { cause: err });
}

/** Feeds a DigestWriter without waiting on it: chunks queue up while one update runs. */
class PipelinedDigest {
  size = 0;
  private queued: Buffer[] = [];
  private running: Promise<void> | undefined;
  private failure: unknown;

  constructor(private readonly writer: DigestWriter) {}

  update(chunk: Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    this.size += chunk.length;
    this.queued.push(chunk);
    this.running ??= this.drain();
  }

  /** Resolves once every chunk given so far is hashed. */
  async settle(): Promise<void> {
    while (this.running) await this.running;
    if (this.failure !== undefined) throw this.failure;
  }

  digest(): string {
    return this.writer.digest();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queued.length > 0) {
        const batch = this.queued;
        this.queued = [];
        await this.writer.update(batch);
      }
    } catch (err) {
      this.failure = err;
    } finally {
      this.running = undefined;
    }
  }
}
