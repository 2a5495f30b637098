import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { PassThrough, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { InvalidArgumentError } from '../errors.js';
import type { Lease } from '../content/lease.js';
import type { OciStore } from '../content/store.js';
import type { Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';

const requireCjs = createRequire(import.meta.url);

/** How a new layer blob is compressed. */
export type LayerBlobCompression = 'gzip' | 'zstd';

export interface LayerBlobOptions {
  /** Default gzip (what every runtime reads); zstd needs containerd 1.5+ / Docker 23+. */
  compression?: LayerBlobCompression;
  /** gzip 1–9 (default 6, zlib's), zstd 1–19 (default 3). */
  level?: number;
}

export interface LayerBlob {
  mediaType: string;
  digest: Digest;
  size: number;
  /** The digest of the uncompressed tar. */
  diffId: Digest;
}

/** Checks a reproducible-build epoch (whole seconds since 1970, as SOURCE_DATE_EPOCH). */
export function checkEpoch(epoch: number): number {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new InvalidArgumentError(`epoch ${epoch}: give whole seconds since 1970 (SOURCE_DATE_EPOCH)`);
  return epoch;
}

/** SOURCE_DATE_EPOCH's value as an epoch; undefined when unset or empty (as reproducible-builds.org says). */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`SOURCE_DATE_EPOCH=${JSON.stringify(value)}: give whole seconds since 1970`);
  return checkEpoch(Number(value));
}

/** The OCI media type of a layer compressed as `compression`. */
export function layerMediaType(compression: LayerBlobCompression): string {
  return compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayerGzip;
}

/**
 * Fixes the OS byte of a gzip header (zlib writes the build's OS code) to 255, "unknown", as
 * Go's compress/gzip writes it: with zlib's mtime 0 and no name, the header is the same everywhere.
 */
function fixGzipOsByte(): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (seen <= 9 && seen + chunk.length > 9) {
        chunk = Buffer.from(chunk);
        chunk[9 - seen] = 0xff;
      }
      seen += chunk.length;
      done(null, chunk);
    },
  });
}

/** Checks a compression and level before any work: gzip 1–9, zstd 1–19. */
export function checkLayerBlobOptions(options: LayerBlobOptions): void {
  const compression = options.compression ?? 'gzip';
  const level = options.level;
  if (compression !== 'gzip' && compression !== 'zstd') throw new InvalidArgumentError(`compression ${JSON.stringify(compression)}: give gzip or zstd`);
  const max = compression === 'gzip' ? 9 : 19;
  if (level !== undefined && (!Number.isInteger(level) || level < 1 || level > max)) throw new InvalidArgumentError(`${compression} level ${level}: give 1 to ${max}`);
}

/** The transforms that compress a layer tar, in pipeline order. */
export function compressors(options: LayerBlobOptions): Transform[] {
  checkLayerBlobOptions(options);
  const compression = options.compression ?? 'gzip';
  const level = options.level;
  if (compression === 'gzip') {
    return [createGzip({ ...(level !== undefined ? { level } : {}), chunkSize: 256 * 1024 }), fixGzipOsByte()];
  }
  if (compression === 'zstd') {
    const zstd = requireCjs('zstd-napi') as typeof import('zstd-napi');
    return [new zstd.CompressStream({ compressionLevel: level ?? 3, checksumFlag: true }) as unknown as Transform];
  }
  throw new InvalidArgumentError(`compression ${JSON.stringify(compression)}: give gzip or zstd`);
}

/**
 * Runs `produce` (which writes a tar to its stream and ends it) into a compressed blob written
 * through the store's ref-keyed ingest writer (under its lock, so GC leaves it alone) while
 * hashing both sides: the compressed bytes (the blob's digest), the tar (the diffID). Its commit
 * makes the blob, leased before it is visible. Nothing is held whole in memory.
 */
export async function writeLayerBlob<S>(
  store: OciStore,
  lease: Lease,
  produce: (out: Writable) => Promise<S>,
  options: LayerBlobOptions = {},
): Promise<LayerBlob & { stats: S }> {
  const compress = compressors(options);
  const writer = await store.writer(`layer-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    const diffIdHash = createHash('sha256');
    const tar = new PassThrough({ highWaterMark: 1 << 20 });
    const hashTar = new Transform({
      transform(chunk: Buffer, _enc, done) {
        diffIdHash.update(chunk);
        done(null, chunk);
      },
    });
    const [stats] = await Promise.all([
      produce(tar).catch((err: unknown) => {
        tar.destroy(err as Error);
        throw err;
      }),
      pipeline([tar, hashTar, ...compress, writer.stream()]),
    ]);
    const info = await writer.commit(undefined, undefined, { beforeCommit: (digest) => lease.add(digest) });
    return { mediaType: layerMediaType(options.compression ?? 'gzip'), digest: info.digest, size: info.size, diffId: `sha256:${diffIdHash.digest('hex')}` as Digest, stats };
  } finally {
    await writer.abort();
  }
}
