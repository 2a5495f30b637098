import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import { digestOf, type Digest } from '../oci/digest.js';
import { parseReference, type Reference } from '../oci/reference.js';
import { parseManifest } from '../oci/manifest.js';
import { parseImageConfig, checkConfigMatchesManifest } from '../oci/config.js';
import { formatPlatform, hostPlatform, platformMatches, selectManifest } from '../oci/platform.js';
import { parseSchema1, convertSchema1, schema1Blobs, schema1Layers } from '../oci/schema1.js';
import { MediaType } from '../oci/mediatypes.js';
import { Lease } from '../content/lease.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../oci/types.js';
import type { BlobInfo, Provider } from '../content/content.js';
import { closeSync, openSync } from 'node:fs';
import { blobReadStream } from '../content/blob-stream.js';
import type { OciStore } from '../content/store.js';
import type { RegistryClient } from '../registry/client.js';
import { downloadBlob } from '../registry/download.js';
import type { DownloadEvent, ResolvedManifest } from '../registry/types.js';
import { InvalidManifestError, NoMatchingPlatformError } from '../errors.js';
import type { Snapshotter } from '../snapshotter/snapshotter.js';
import type { UnpackLimits } from '../unpack/types.js';
import type { UnpackEvent, UnpackResult } from './unpack.js';
import type { IngestFollow } from '../content/follow.js';
import { SOURCE_DIGEST_ANNOTATION, SOURCE_MEDIA_TYPE_ANNOTATION, SCHEMA1_BLOB_ANNOTATION } from './annotations.js';
import { loadImage, type StoredImage } from './image.js';
import { checkLayerCount } from './layer-limit.js';

export type PullEvent =
  | { type: 'resolved'; reference: Reference; digest: Digest; mediaType: string; endpoint: string }
  | { type: 'layers'; layers: { digest: Digest; size?: number }[] }
  | DownloadEvent
  | UnpackEvent
  | { type: 'tagged'; name: string; digest: Digest };

export interface PullUnpackOptions {
  snapshotter: Snapshotter;
  /** Layers extracted at once where the backend can rebase (overlay). Default 3. */
  concurrency?: number;
  limits?: UnpackLimits;
}

export interface PullOptions {
  store: OciStore;
  client: RegistryClient;
  /** Wanted platform; default the host's. An explicit one is also checked against a single-platform image. */
  platform?: Platform;
  /** Layers downloaded at once. Default 3. */
  concurrency?: number;
  onEvent?: (event: PullEvent) => void;
  signal?: AbortSignal;
  /** Unpack the layers into committed snapshots (chainID names) as their blobs arrive. */
  unpack?: PullUnpackOptions;
  /**
   * Images with more layers are refused before any layer is fetched. Default 128 (DEFAULT_MAX_LAYERS,
   * as Docker and containerd on overlay); unpacking on overlay caps it at the kernel's 500.
   */
  maxLayers?: number;
  /**
   * Called with what the reference resolved to (its bytes digest-checked) before anything else is
   * fetched or unpacked; a throw stops the pull there (`pull --verify-key` checks the signature).
   */
  beforeFetch?: (resolved: ResolvedManifest) => Promise<void>;
  /**
   * The resolution of this pull's reference (`client.resolve(reference)`), when the caller started
   * it already: the Engine sends the manifest's requests before this module and its imports load.
   */
  resolving?: Promise<ResolvedManifest>;
}

export interface PullResult {
  reference: Reference;
  /** Fully qualified name the image is tagged under in the store. */
  name: string;
  /** What the reference resolved to at the registry (index, manifest or schema1 digest), as docker prints it. */
  digest: Digest;
  /** The image manifest stored and tagged (the converted one for schema1). */
  manifest: Descriptor;
  config: ImageConfig;
  layers: Descriptor[];
  /** True when no blob had to be fetched. */
  upToDate: boolean;
  /** Bytes fetched from the registry in this pull. */
  bytesDownloaded: number;
  /** With unpack: the committed snapshot of the top layer, and how many layers were extracted now. */
  unpacked?: UnpackResult;
}

interface PulledImage {
  manifest: Descriptor;
  manifestJson: ImageManifest;
  config: ImageConfig;
  annotations: Record<string, string>;
}

/**
 * Fetches an image into the store, verifying every byte, and tags it under its full name.
 * Everything it writes is held by a lease until the tag lands, so a concurrent GC cannot
 * remove the layers of an image that is half pulled.
 */
export async function pull(input: string | Reference, options: PullOptions): Promise<PullResult> {
  const reference = typeof input === 'string' ? parseReference(input) : input;
  const resolved = await (options.resolving ?? options.client.resolve(reference));
  await options.beforeFetch?.(resolved);
  const session = new PullSession(reference, options, await Lease.create(options.store.root));
  try {
    return await session.run(resolved);
  } finally {
    session.closeVerified();
    await session.lease.release();
  }
}

class PullSession {
  private readonly emit: (e: PullEvent) => void;
  private readonly wanted: Platform;
  private fetched = 0;
  private bytes = 0;
  /** Read descriptors of blobs verified but maybe not yet renamed into the store, for the unpacker. */
  private readonly verifiedFds = new Map<Digest, number>();
  /** Settles when a blob of this pull is verified; unpacking waits on it. */
  private readonly blobs = new Map<Digest, { promise: Promise<void>; resolve(): void; reject(err: unknown): void }>();
  /** Layer blobs followed in the store while they download, for extraction on the way (see OciStore.follow). */
  private readonly live = new Map<Digest, { follow: IngestFollow; settle: (ok: boolean) => void }>();
  private unpacking: Promise<UnpackResult> | undefined;
  /** The layer code, loaded while the config and first layers arrive when this pull unpacks (a pull that does not never loads it). */
  private readonly unpackModule: Promise<typeof import('./unpack.js')> | undefined;
  /** Stops this pull's downloads when one part of it failed (and follows the caller's signal). */
  private readonly cancel = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly reference: Reference,
    private readonly options: PullOptions,
    readonly lease: Lease,
  ) {
    this.emit = options.onEvent ?? (() => {});
    this.wanted = options.platform ?? hostPlatform();
    this.signal = options.signal ? AbortSignal.any([options.signal, this.cancel.signal]) : this.cancel.signal;
    // Every transfer in flight listens on it (request, body pipeline, retry sleep): more than
    // Node's default of 10 at --concurrency 4 and up, which is no leak.
    setMaxListeners(10 + 4 * (options.concurrency ?? 3), this.signal);
    this.unpackModule = options.unpack ? import('./unpack.js') : undefined;
    this.unpackModule?.catch(() => {}); // awaited in unpack()
  }

  private get store(): OciStore {
    return this.options.store;
  }

  async run(resolved: ResolvedManifest): Promise<PullResult> {
    const { reference } = this;
    const sourceDigest = resolved.descriptor.digest;
    this.emit({ type: 'resolved', reference, digest: sourceDigest, mediaType: resolved.descriptor.mediaType, endpoint: resolved.endpoint.url });

    const current = await this.storedCopy(sourceDigest);
    let image: PulledImage;
    try {
      image = current ? this.reuse(current) : await this.fetchImage(resolved);
    } catch (err) {
      // Stop the other downloads, fail the extractions still waiting for a blob, and let the
      // running ones finish before this pull reports its failure (and releases its lease).
      this.cancel.abort(err);
      for (const waiter of this.blobs.values()) waiter.reject(err);
      for (const live of this.live.values()) live.settle(false);
      await this.unpacking?.catch(() => {});
      throw err;
    }
    const unpacked = this.options.unpack ? await (this.unpacking ?? this.unpack(image.manifestJson.layers, image.config)) : undefined;
    const name = reference.toString();
    if (!current) {
      const { config } = image;
      await this.store.setTag(name, {
        ...image.manifest,
        platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) },
        annotations: { [SOURCE_DIGEST_ANNOTATION]: sourceDigest, [SOURCE_MEDIA_TYPE_ANNOTATION]: resolved.descriptor.mediaType, ...image.annotations },
      });
    }
    this.emit({ type: 'tagged', name, digest: image.manifest.digest });
    return {
      reference,
      name,
      digest: sourceDigest,
      manifest: image.manifest,
      config: image.config,
      layers: image.manifestJson.layers,
      upToDate: this.fetched === 0,
      bytesDownloaded: this.bytes,
      ...(unpacked ? { unpacked } : {}),
    };
  }

  /** The store, but a blob verified by this pull is read from the descriptor opened at verification. */
  private verifiedProvider(): Provider {
    const store = this.store;
    const fds = this.verifiedFds;
    return {
      has: (d) => store.has(d),
      info: (d) => store.info(d),
      read: (d, max) => store.read(d, max),
      open: (d, options) => {
        const fd = fds.get(d);
        if (fd === undefined) return store.open(d, options);
        fds.delete(d);
        return blobReadStream(fd, options);
      },
    };
  }

  /** Closes descriptors of verified blobs that no layer extraction took (their chainIDs were unpacked already). */
  closeVerified(): void {
    for (const fd of this.verifiedFds.values()) closeSync(fd);
    this.verifiedFds.clear();
  }

  /** Starts unpacking (when asked to); layers are extracted as soon as their blobs are verified. */
  private async unpack(layers: readonly Descriptor[], config: ImageConfig): Promise<UnpackResult> {
    const options = this.options.unpack!;
    const { unpackLayers } = await this.unpackModule!;
    return unpackLayers({
      store: this.verifiedProvider(),
      snapshotter: options.snapshotter,
      layers,
      diffIds: config.rootfs.diff_ids,
      subject: this.reference.toString(),
      blobReady: (digest) => this.blobs.get(digest)?.promise ?? Promise.resolve(),
      liveBlob: async (digest) => {
        const live = this.live.get(digest)?.follow;
        const stream = await live?.source();
        return stream ? { stream, isVoid: () => live!.isVoid() } : undefined;
      },
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(this.options.maxLayers !== undefined ? { maxLayers: this.options.maxLayers } : {}),
      onEvent: this.emit,
    });
  }

  /**
   * The image already tagged under this name, when it came from the same registry digest, is for
   * the wanted platform and has all its blobs: then nothing is fetched, like docker's "up to date".
   * (For schema1 this also avoids storing the registry's fresh re-signature of the same payload.)
   */
  private async storedCopy(sourceDigest: Digest): Promise<StoredImage | undefined> {
    const tagged = await this.store.getTag(this.reference.toString());
    if (!tagged || tagged.descriptor.annotations?.[SOURCE_DIGEST_ANNOTATION] !== sourceDigest) return undefined;
    if (tagged.descriptor.platform && !platformMatches(this.wanted, tagged.descriptor.platform)) return undefined;
    try {
      const image = await loadImage(this.store, tagged);
      // A layer of the wrong size on disk (truncated) counts as missing: the pull fetches it again.
      const present = await Promise.all(image.manifest.layers.map(async (l) => (await this.store.info(l.digest))?.size === l.size));
      return present.every(Boolean) ? image : undefined;
    } catch {
      return undefined; // damaged or missing blobs: pull again
    }
  }

  private checkLayerCount(subject: string, count: number): void {
    checkLayerCount(subject, count, this.options.maxLayers, this.options.unpack?.snapshotter.name);
  }

  private reuse(image: StoredImage): PulledImage {
    const layers = image.manifest.layers;
    this.checkLayerCount(image.name, layers.length);
    this.emit({ type: 'layers', layers: layers.map((l) => ({ digest: l.digest, size: l.size })) });
    for (const l of layers) this.emit({ type: 'exists', digest: l.digest, size: l.size });
    return { manifest: image.descriptor, manifestJson: image.manifest, config: image.config, annotations: {} };
  }

  private async fetchImage(resolved: ResolvedManifest): Promise<PulledImage> {
    const { reference } = this;
    let source = resolved;
    let parsed = parseManifest(resolved.bytes, resolved.descriptor.mediaType, reference.familiar);
    if (parsed.kind === 'index') {
      await this.put(resolved.bytes, resolved.descriptor.digest);
      const child = selectManifest(parsed.index, this.wanted, reference.toString());
      const subject = `${reference.name}@${child.digest}`;
      source = await this.options.client.fetchManifest(reference, child.digest, child.size);
      parsed = parseManifest(source.bytes, source.descriptor.mediaType, subject);
      if (parsed.kind !== 'image') {
        throw new InvalidManifestError(subject, `index entry for ${formatPlatform(this.wanted)} is a ${parsed.kind}, not an image manifest`);
      }
    }
    if (parsed.kind === 'schema1') return this.fetchSchema1(resolved);
    if (parsed.kind !== 'image') throw new InvalidManifestError(reference.toString(), 'an index inside an index is not supported');

    const manifestJson = parsed.manifest;
    const subject = source === resolved ? reference.toString() : `${reference.name}@${source.descriptor.digest}`;
    this.checkLayerCount(subject, manifestJson.layers.length);
    this.emit({ type: 'layers', layers: manifestJson.layers.map((l) => ({ digest: l.digest, size: l.size })) });
    for (const layer of manifestJson.layers) this.expectBlob(layer.digest);
    const fetchLayers = () => this.fetchAll(manifestJson.layers, (layer, releaseSlot) => this.fetch(layer, releaseSlot));
    // Layers start with the config unless the config must first prove the image is for an explicitly asked platform.
    let fetching = this.options.platform === undefined ? fetchLayers() : undefined;
    fetching?.catch(() => {}); // awaited below
    let config: ImageConfig;
    try {
      await this.fetch(manifestJson.config);
      config = parseImageConfig(await this.store.read(manifestJson.config.digest), `${subject} config`);
      checkConfigMatchesManifest(config, manifestJson, subject);
      const imagePlatform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
      if (this.options.platform && !platformMatches(this.options.platform, imagePlatform)) {
        throw new NoMatchingPlatformError(reference.familiar, formatPlatform(this.options.platform), [formatPlatform(imagePlatform)]);
      }
    } catch (err) {
      this.cancel.abort(err);
      throw err;
    }
    fetching ??= fetchLayers();
    if (this.options.unpack) {
      this.unpacking = this.unpack(manifestJson.layers, config);
      this.unpacking.catch(() => {}); // awaited in run(); a download failure is the error to report first
    }
    await fetching;
    await this.put(source.bytes, source.descriptor.digest);
    return {
      manifest: { mediaType: parsed.mediaType, digest: source.descriptor.digest, size: source.bytes.length },
      manifestJson,
      config,
      annotations: {},
    };
  }

  /**
   * Schema1 carries no config and no diffIDs: layers are fetched (the empty throwaway blob once),
   * their uncompressed digests computed while they download, and the image converted to an OCI
   * manifest + config that is stored and tagged. The signed original is kept as a blob too.
   */
  private async fetchSchema1(resolved: ResolvedManifest): Promise<PulledImage> {
    const { reference } = this;
    const schema1 = parseSchema1(resolved.bytes, reference.toString());
    const imagePlatform = { os: 'linux', architecture: schema1.architecture };
    if (this.options.platform && !platformMatches(this.options.platform, imagePlatform)) {
      throw new NoMatchingPlatformError(reference.familiar, formatPlatform(this.options.platform), [formatPlatform(imagePlatform)]);
    }
    // Throwaway steps become history entries only: the layers that count are the others.
    this.checkLayerCount(reference.toString(), schema1Layers(schema1).filter((l) => !l.empty).length);
    const blobs = schema1Blobs(schema1).map((digest) => ({ digest }));
    this.emit({ type: 'layers', layers: blobs });
    const diffIds = new Map<Digest, Digest>();
    const sizes = new Map<Digest, number>();
    const mediaTypes = new Map<Digest, string>();
    const { uncompressedDigest } = await import('../unpack/decompress.js');
    await this.fetchAll(blobs, async ({ digest }) => {
      // The diffID is hashed from the ingest as it grows; only when the download restarted under
      // that reader (or the blob was already stored) is the stored blob read back for it.
      const live = this.follow(digest);
      const hashing = live
        .source()
        .then((stream) => (stream ? uncompressedDigest(stream) : undefined))
        .catch(() => undefined);
      await this.fetch({ digest });
      let layer = await hashing;
      if (!layer || live.isVoid()) layer = await uncompressedDigest(this.store.open(digest, { dropBehind: true }));
      diffIds.set(digest, layer.digest);
      sizes.set(digest, layer.compressedSize);
      mediaTypes.set(digest, layer.compression === 'gzip' ? MediaType.OciLayerGzip : layer.compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer);
    });
    const converted = convertSchema1(schema1, diffIds, sizes, (blobSum) => mediaTypes.get(blobSum)!, reference.toString());
    const original = await this.put(resolved.bytes);
    await this.put(converted.configBytes);
    const manifest = await this.put(converted.manifestBytes);
    return {
      manifest: { mediaType: MediaType.OciManifest, digest: manifest.digest, size: manifest.size },
      manifestJson: converted.manifest,
      config: converted.config,
      annotations: { [SCHEMA1_BLOB_ANNOTATION]: original.digest },
    };
  }

  /**
   * Runs `each` over the unique blobs, `concurrency` at a time. A blob's slot is free when `each`
   * settles or calls `releaseSlot` (once its bytes are in, so its fsync overlaps the next transfer).
   */
  private async fetchAll<T extends { digest: Digest }>(blobs: readonly T[], each: (blob: T, releaseSlot: () => void) => Promise<void>): Promise<void> {
    const limit = pLimit(this.options.concurrency ?? 3);
    const seen = new Set<Digest>();
    const unique = blobs.filter((b) => !seen.has(b.digest) && seen.add(b.digest));
    await Promise.all(
      unique.map(async (b) => {
        let done: Promise<void> | undefined;
        await limit(
          () =>
            new Promise<void>((releaseSlot) => {
              done = each(b, releaseSlot);
              done.then(releaseSlot, releaseSlot);
            }),
        );
        await done;
      }),
    );
  }

  private expectBlob(digest: Digest): void {
    if (this.blobs.has(digest)) return;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => {}); // observed through blobReady; a failure also fails the download itself
    this.blobs.set(digest, { promise, resolve, reject });
    if (this.options.unpack) this.follow(digest);
  }

  /** Follows the blob's ingest in the store while this pull downloads it; settled when the download ends. */
  private follow(digest: Digest): IngestFollow {
    let settle!: (ok: boolean) => void;
    const settled = new Promise<boolean>((resolve) => (settle = resolve));
    const follow = this.store.follow(digest, settled);
    this.live.set(digest, { follow, settle });
    return follow;
  }

  private async fetch(desc: { digest: Digest; size?: number }, onFetched?: () => void): Promise<void> {
    const waiter = this.blobs.get(desc.digest);
    // Unpacking may start on the verified bytes while their fsync and rename still run.
    const onVerified = waiter
      ? (path: string) => {
          this.verifiedFds.set(desc.digest, openSync(path, 'r'));
          waiter.resolve();
        }
      : undefined;
    const live = this.live.get(desc.digest);
    try {
      await this.download(desc, onFetched, onVerified);
      live?.settle(true);
      waiter?.resolve();
    } catch (err) {
      live?.settle(false);
      waiter?.reject(err);
      throw err;
    }
  }

  private async download(desc: { digest: Digest; size?: number }, onFetched?: () => void, onVerified?: (path: string) => void): Promise<void> {
    await this.lease.add(desc.digest);
    await downloadBlob(this.options.client, this.reference, desc, this.store, {
      signal: this.signal,
      ...(onFetched ? { onFetched } : {}),
      ...(onVerified ? { onVerified } : {}),
      onEvent: (e) => {
        if (e.type === 'complete') {
          this.fetched++;
          this.bytes += e.size - e.resumedFrom;
        }
        this.emit(e);
      },
    });
  }

  private async put(bytes: Uint8Array, expected?: Digest): Promise<BlobInfo> {
    await this.lease.add(expected ?? digestOf(bytes));
    return this.store.put(bytes, expected);
  }
}
