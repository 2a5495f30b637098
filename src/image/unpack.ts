import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import pLimit from 'p-limit';
import { chainIds, digestHex, type Digest } from '../oci/digest.js';
import type { Provider } from '../content/content.js';
import { acquireFileLock } from '../content/lock.js';
import type { Descriptor } from '../oci/types.js';
import type { Snapshotter } from '../snapshotter/snapshotter.js';
import { applyLayer } from '../unpack/apply.js';
import type { UnpackLimits } from '../unpack/types.js';
import { applyOverlayFixups } from '../unpack/overlay-fixups.js';
import type { PendingImage } from '../erofs/build.js';
import { mountTemporary, reclaimTemporaries, temporaryLabels, unmountTemporary } from '../snapshotter/temporaries.js';
import { InvalidManifestError, isStratumError } from '../errors.js';
import { checkLayerCount } from './layer-limit.js';

export type UnpackEvent =
  | { type: 'extracting'; digest: Digest; current: number; total: number }
  | { type: 'unpacked'; digest: Digest; chainId: Digest; existed: boolean };

export interface UnpackRequest {
  store: Provider;
  snapshotter: Snapshotter;
  /** The image manifest's layers, oldest first. */
  layers: readonly Descriptor[];
  /** The config's rootfs.diff_ids, one per layer. */
  diffIds: readonly Digest[];
  /** Names the image in errors. */
  subject: string;
  /** Resolves once a layer's blob is verified in the store (a pull in progress); default: already there. */
  blobReady?: (digest: Digest) => Promise<void>;
  /**
   * A layer blob still downloading, to extract while it arrives (for a backend that cannot rebase,
   * once its parent is committed); undefined when it is not coming through this pull's downloads.
   * Its extraction is committed only once `blobReady` resolves (and its diffID matched); one that
   * failed on a source a restarted download voided is done again from the stored blob.
   */
  liveBlob?: (digest: Digest) => Promise<LiveSource | undefined>;
  /** Layers extracted at once where the backend can rebase (overlay). Default 3. */
  concurrency?: number;
  limits?: UnpackLimits;
  /** Images with more layers are refused before anything is extracted (see layer-limit.ts). Default 128. */
  maxLayers?: number;
  onEvent?: (event: UnpackEvent) => void;
}

export interface LiveSource {
  stream: Readable;
  /** True once the download restarted: what the stream gave is void. */
  isVoid(): boolean;
}

export interface UnpackResult {
  /** chainID of the top layer: the committed snapshot an image's containers start from. Undefined for an image without layers. */
  chainId?: Digest;
  /** Layers extracted now (the others were committed already). */
  extracted: number;
}

/**
 * Applies an image's layers as committed snapshots named by chainID, skipping every chainID that
 * is already committed (also by another process: each chainID is extracted under a file lock).
 * Backends that can rebase (overlay) extract layers in parallel, each into its own snapshot
 * prepared without a parent, and commit them in chain order onto their parent; the others
 * (native, btrfs, zfs) prepare each layer on its committed parent and apply it in order.
 */
export async function unpackLayers(request: UnpackRequest): Promise<UnpackResult> {
  const { layers, diffIds, snapshotter, subject } = request;
  if (layers.length !== diffIds.length) {
    throw new InvalidManifestError(subject, `${layers.length} layers but ${diffIds.length} diff_ids in the config`);
  }
  if (layers.length === 0) return { extracted: 0 };
  checkLayerCount(subject, layers.length, request.maxLayers, snapshotter.name);
  const chain = chainIds(diffIds);
  const lockDir = join(snapshotter.root, 'locks');
  await mkdir(lockDir, { recursive: true });
  // What a killed unpack left (extract-* snapshots, fixup mounts) goes before this one adds its own.
  await reclaimTemporaries(snapshotter).catch(() => {});
  const ready = request.blobReady ?? (async () => {});
  let extracted = 0;

  const rebase = snapshotter.capabilities.rebase;
  // Extraction slots: a layer holds one only while it extracts, never while it waits for its blob
  // or for its parent's commit (layers whose blobs came first would otherwise fill every slot
  // waiting on a parent that cannot get one).
  const slot = pLimit(rebase ? (request.concurrency ?? 3) : 1);

  const unpackOne = async (i: number, parentCommitted: Promise<void>): Promise<void> => {
    const layer = layers[i]!;
    const chainId = chain[i]!;
    const parent = i > 0 ? chain[i - 1] : undefined;
    const existed = async () => {
      await parentCommitted;
      request.onEvent?.({ type: 'unpacked', digest: layer.digest, chainId, existed: true });
    };
    // A backend that cannot rebase applies a layer only onto its committed parent: by then its
    // blob may still be downloading, and is followed from there.
    if (!rebase) await parentCommitted;
    const live = request.liveBlob ? await request.liveBlob(layer.digest) : undefined;
    const skip = async () => {
      live?.stream.destroy();
      await ready(layer.digest);
      await existed();
    };
    if (!live) await ready(layer.digest);
    if (await isCommitted(snapshotter, chainId)) return skip();
    const release = await acquireFileLock(join(lockDir, digestHex(chainId)));
    try {
      if (await isCommitted(snapshotter, chainId)) return await skip();
      const layerSubject = `layer ${i + 1}/${layers.length} (${layer.digest}) of ${subject}`;
      const applyOptions = {
        ...(snapshotter.userxattr ? { userxattr: true } : {}),
        hasLowerLayers: parent !== undefined,
        expectedDiffId: diffIds[i],
        subject: layerSubject,
        ...(request.limits ? { limits: request.limits } : {}),
      };
      const extract = async (source: Readable): Promise<Extracted> => {
        const key = `extract-${process.pid}-${randomBytes(6).toString('hex')}-${chainId}`;
        await snapshotter.prepare(key, rebase ? undefined : parent, { labels: { 'dev.stratum.unpack.layer': layer.digest, ...temporaryLabels() } });
        try {
          if (snapshotter.applyMode === 'erofs') {
            // The layer becomes the snapshot's EROFS image, written straight from the tar; its metadata once the parent is there.
            const imagePath = await snapshotter.layerImage!(key);
            // Loaded for erofs stores only: the writer is not part of every pull's start.
            const { writeLayerImage } = await import('../erofs/build.js');
            const { image } = await slot(() => writeLayerImage(withProgress(request, layer, source), imagePath, applyOptions));
            return { key, image };
          }
          const dir = await snapshotter.applyDir(key);
          const mode = snapshotter.applyMode;
          const applied = await slot(() => applyLayer(withProgress(request, layer, source), dir, { ...applyOptions, mode }));
          return { key, dir, applied };
        } catch (err) {
          source.destroy();
          await snapshotter.remove(key).catch(() => {});
          throw err;
        }
      };
      let result: Awaited<ReturnType<typeof extract>> | undefined;
      if (live) {
        try {
          result = await extract(live.stream);
        } catch (err) {
          // Bad bytes from a mirror fail the extraction before the download sees the digest and
          // fetches the blob again: wait for the download's verdict (its failure is the one to report).
          await ready(layer.digest);
          if (!live.isVoid()) throw err;
        }
        // Committed only once the blob is verified too. What the reader got is vouched for by the
        // diffID the extraction checked, even if the download restarted after it was read.
        await ready(layer.digest).catch(async (err: unknown) => {
          await result?.image?.abort().catch(() => {});
          throw err;
        });
      }
      // Not live, or the download restarted under a reader that failed: from the verified blob
      // (read once to unpack and rarely again, so its pages leave the cache as extraction goes).
      result ??= await extract(request.store.open(layer.digest, { dropBehind: true }));
      const { key, dir, applied, image } = result;
      try {
        await parentCommitted;
        if (image) await finishImage(snapshotter, parent, image, layerSubject);
        else if (applied?.overlayFixups) {
          const fixups = applied.overlayFixups;
          await withParentView(snapshotter, parent, layerSubject, (lowerView) => applyOverlayFixups(dir!, lowerView, fixups, layerSubject));
        }
        await snapshotter.commit(chainId, key, {
          labels: { 'dev.stratum.layer': layer.digest, 'dev.stratum.diffid': diffIds[i]! },
          ...(rebase && parent ? { parent } : {}),
        });
        extracted++;
      } catch (err) {
        await image?.abort().catch(() => {});
        await snapshotter.remove(key).catch(() => {});
        throw err;
      }
      request.onEvent?.({ type: 'unpacked', digest: layer.digest, chainId, existed: false });
    } finally {
      await release();
    }
  };

  // Each layer's task resolves when its chainID is committed; the next waits on it before it commits.
  const committed: Promise<void>[] = [];
  for (let i = 0; i < layers.length; i++) committed.push(unpackOne(i, i > 0 ? committed[i - 1]! : Promise.resolve()));
  // Surface the first failure, but let every task settle so no extraction runs on in the background.
  const results = await Promise.allSettled(committed);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return { chainId: chain[chain.length - 1]!, extracted };
}

/** A layer extracted into an active snapshot: into its directory (applied), or as its EROFS image still to finish. */
interface Extracted {
  key: string;
  dir?: string;
  applied?: Awaited<ReturnType<typeof applyLayer>>;
  image?: PendingImage;
}

/** Runs `fn` with the merged view of the (committed) parent chain mounted read-only; an empty directory without parent. */
async function withParentView(snapshotter: Snapshotter, parent: string | undefined, subject: string, fn: (lowerView: string) => Promise<void>): Promise<void> {
  const viewKey = `fixup-${process.pid}-${randomBytes(6).toString('hex')}`;
  const mounts = parent !== undefined ? await snapshotter.view(viewKey, parent, { labels: temporaryLabels() }) : [];
  try {
    const lowerView = await mountTemporary(snapshotter.root, mounts, `fixup view of ${subject}`);
    try {
      await fn(lowerView);
    } finally {
      await unmountTemporary(lowerView);
    }
  } finally {
    if (parent !== undefined) await snapshotter.remove(viewKey).catch(() => {});
  }
}

/** Writes an EROFS layer image's metadata, against the parent chain's view when its fixups need the layers below. */
async function finishImage(snapshotter: Snapshotter, parent: string | undefined, image: PendingImage, subject: string): Promise<void> {
  if (!image.needsLower || parent === undefined) {
    await image.finish();
    return;
  }
  await withParentView(snapshotter, parent, subject, async (lowerView) => {
    await image.finish(lowerView);
  });
}

async function isCommitted(snapshotter: Snapshotter, name: string): Promise<boolean> {
  try {
    return (await snapshotter.stat(name)).kind === 'committed';
  } catch (err) {
    if (isStratumError(err, 'ERR_NOT_FOUND')) return false;
    throw err;
  }
}

/** The layer blob's bytes, reporting how much of them extraction has consumed. */
function withProgress(request: UnpackRequest, layer: Descriptor, source: Readable) {
  const emit = request.onEvent;
  if (!emit) return source;
  let current = 0;
  let last = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      current += chunk.length;
      const now = Date.now();
      if (now - last >= 100 || current === layer.size) {
        last = now;
        emit({ type: 'extracting', digest: layer.digest, current, total: layer.size });
      }
      done(null, chunk);
    },
  });
  source.on('error', (err) => counter.destroy(err));
  return source.pipe(counter);
}
