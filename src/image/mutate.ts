import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { reclaimDeadWriterIngests } from '../content/gc.js';
import { Lease } from '../content/lease.js';
import type { OciStore } from '../content/store.js';
import { FailedPreconditionError, InvalidArgumentError, LayerSourceError } from '../errors.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { parseReference } from '../oci/reference.js';
import type { Descriptor, HistoryEntry } from '../oci/types.js';
import { isMountPoint } from '../snapshotter/mount.js';
import type { Info, Snapshotter } from '../snapshotter/snapshotter.js';
import { mountTemporary, temporaryLabels, unmountTemporary } from '../snapshotter/temporaries.js';
import { autoDecompressor } from '../unpack/decompress.js';
import { normalizeTar } from '../tar/normalize.js';
import { applyChanges, mergeContainerConfig, type ContainerConfig } from './changes.js';
import { writeTreeDiff } from './diff.js';
import { overlayUpper, upperDiffOrTrees, writeOverlayDiff } from './overlay-diff.js';
import { writeTreeAsTar } from './export.js';
import type { StoredImage } from './image.js';
import { checkEpoch, checkLayerBlobOptions, writeLayerBlob, type LayerBlob, type LayerBlobOptions } from './layer-blob.js';
import { MOUNTPOINT_LABEL } from './labels.js';

/**
 * Where an appended layer comes from:
 * - `{ dir }`: a directory tree, written whole as a tar (entries sorted);
 * - `{ tar }`: a tar file's path or a stream (plain, gzip or zstd), recompressed as asked; taken
 *   byte for byte, or with an epoch re-encoded canonically with mtimes clamped (normalizeTar);
 * - `{ snapshot: key }`: the changes of a snapshot (active or committed) from its parent;
 * - `{ diffOf: [lower, upper] }`: the changes from snapshot `lower` (undefined: nothing) to
 *   snapshot `upper`, as commit computes them (whiteouts for what is gone).
 */
export type LayerSource =
  | { dir: string }
  | { tar: string | Readable }
  | { snapshot: string }
  | { diffOf: readonly [string | undefined, string] };

export interface AppendLayerOptions extends LayerBlobOptions {
  /** The history entry's `created_by`. */
  createdBy?: string;
  /** The history entry's `comment`. */
  comment?: string;
  author?: string;
  /** Overrides the image's epoch for this layer (seconds since 1970). */
  epoch?: number;
}

/** What a mutation needs of its Engine: the store, and snapshots by key in any backend. */
export interface MutationContext {
  store: OciStore;
  findSnapshot(key: string): Promise<{ snapshotter: Snapshotter; info: Info }>;
}

export interface WrittenImage {
  /** The stored tag. */
  name: string;
  /** The image ID: the config's digest. */
  id: Digest;
  manifest: Descriptor;
  config: Descriptor;
  /** Every layer, oldest first, with its diffID. */
  layers: Array<Descriptor & { diffId: Digest }>;
}

interface StoredLayer {
  descriptor: Descriptor;
  diffId: Digest;
}

/** A layer appended but not yet written; shared by every value derived after the append. */
class PendingLayer {
  private written?: Promise<LayerBlob>;
  readonly appendedAt = new Date();
  constructor(
    readonly source: LayerSource,
    readonly options: AppendLayerOptions,
  ) {}

  /** Writes the blob once; a later write of a value holding it reuses it while the store still has it. */
  async write(ctx: MutationContext, lease: Lease, epoch: number | undefined): Promise<LayerBlob> {
    if (this.written) {
      const blob = await this.written.catch(() => undefined);
      if (blob && (await ctx.store.has(blob.digest))) {
        await lease.add(blob.digest);
        return blob;
      }
    }
    if (this.written && 'tar' in this.source && typeof this.source.tar !== 'string') {
      throw new LayerSourceError('the tar stream of this layer was read by an earlier write and its blob is gone: give a path to write it again');
    }
    this.written = upperDiffOrTrees((compareTrees) => writeLayerBlob(ctx.store, lease, (out) => produceLayer(ctx, this.source, out, epoch, compareTrees), this.options)).then(({ stats: _, ...blob }) => blob);
    return this.written;
  }
}

type Layer = StoredLayer | PendingLayer;
type History = HistoryEntry | { pending: PendingLayer; entry: HistoryEntry };

interface State {
  ctx: MutationContext;
  /** The name the base was read from ('scratch' for none). */
  base: string;
  /** The raw config without rootfs (rebuilt on write), unknown fields kept. */
  config: Record<string, unknown>;
  layers: readonly Layer[];
  history: readonly History[];
  annotations: Readonly<Record<string, string>>;
  created?: string;
  epoch?: number;
}

/** Docker layer media types and their OCI twins (same bytes): a written manifest is an OCI one. */
const OCI_LAYER_TYPE: Record<string, string> = {
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
};

/**
 * An image as a value, changed the way go-containerregistry's `mutate` changes one: every
 * method returns a new value and leaves this one as it was; nothing is stored until `write`.
 * Layers appended are produced at `write`, streamed into the store (never whole in memory) and
 * leased until the tag names them.
 *
 *   const img = (await engine.image('alpine:3')).withEpoch(0)
 *     .appendLayer({ dir: './out' }, { createdBy: 'COPY out /' })
 *     .withConfig({ Cmd: ['/app'], Env: ['A=b'] });
 *   const { id } = await img.write('my/app:1');
 */
export class MutableImage {
  private constructor(private readonly state: State) {}

  /** An image read from the store (see Engine.image); its config is read raw, unknown fields kept. */
  static async load(ctx: MutationContext, image: StoredImage): Promise<MutableImage> {
    const raw = JSON.parse((await ctx.store.read(image.configDescriptor.digest)).toString('utf8')) as Record<string, unknown>;
    const { rootfs: _rootfs, history, ...config } = raw;
    const layers: StoredLayer[] = image.manifest.layers.map((descriptor, i) => ({ descriptor, diffId: image.config.rootfs.diff_ids[i]! }));
    return new MutableImage({
      ctx,
      base: image.name,
      config,
      layers,
      history: Array.isArray(history) ? (history as HistoryEntry[]) : [],
      annotations: { ...(image.manifest.annotations ?? {}) },
    });
  }

  /** An empty image (no layers) for the platform given (default linux/amd64): Docker's `scratch`. */
  static scratch(ctx: MutationContext, platform: { os?: string; architecture?: string; variant?: string } = {}): MutableImage {
    const config: Record<string, unknown> = { architecture: platform.architecture ?? 'amd64', os: platform.os ?? 'linux', config: {} };
    if (platform.variant !== undefined) config.variant = platform.variant;
    return new MutableImage({ ctx, base: 'scratch', config, layers: [], history: [], annotations: {} });
  }

  private with(changes: Partial<State>): MutableImage {
    return new MutableImage({ ...this.state, ...changes });
  }

  /** The name this value was read from (`scratch` for none). */
  get base(): string {
    return this.state.base;
  }

  /** The runtime config (`config` of the image config) as it is now: a copy. */
  get containerConfig(): Record<string, unknown> {
    return structuredClone((this.state.config.config as Record<string, unknown> | undefined) ?? {});
  }

  /** Layers, oldest first: stored ones as descriptors, appended ones as `pending`. */
  get layers(): Array<(Descriptor & { diffId: Digest }) | { pending: LayerSource }> {
    return this.state.layers.map((l) => (l instanceof PendingLayer ? { pending: l.source } : { ...l.descriptor, diffId: l.diffId }));
  }

  /** Sets runtime config fields (Docker's names); a field given `null` is removed, one left out kept. */
  withConfig(changes: ContainerConfig): MutableImage {
    const config = mergeContainerConfig((this.state.config.config as Record<string, unknown> | undefined) ?? {}, changes);
    return this.with({ config: { ...this.state.config, config } });
  }

  /**
   * Sets the config's platform (ggcr's `mutate.ConfigFile` with another OS/architecture): what
   * createIndex lists the image under. The layers are not checked: building one content for
   * several platforms (scripts, static binaries, data) is the point.
   */
  withPlatform(platform: { os: string; architecture: string; variant?: string }): MutableImage {
    if (!platform.os || !platform.architecture) throw new InvalidArgumentError(`a platform needs an os and an architecture (got ${JSON.stringify(platform)})`);
    const { variant: _old, ...config } = this.state.config;
    return this.with({ config: { ...config, os: platform.os, architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}) } });
  }

  /** Applies `docker commit --change` instructions (`ENV A=b`, `CMD ["sh"]`, `EXPOSE 80`…) in order. */
  withChanges(changes: readonly string[]): MutableImage {
    const config = applyChanges((this.state.config.config as Record<string, unknown> | undefined) ?? {}, changes);
    return this.with({ config: { ...this.state.config, config } });
  }

  /** Adds (or with `null`, removes) manifest annotations. */
  withAnnotations(annotations: Record<string, string | null>): MutableImage {
    const next: Record<string, string> = { ...this.state.annotations };
    for (const [k, v] of Object.entries(annotations)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    return this.with({ annotations: next });
  }

  /** Appends a history entry (for a change without a layer, set `empty_layer: true`). */
  withHistory(entry: Omit<HistoryEntry, 'created'> & { created?: string | Date }): MutableImage {
    const { created, ...rest } = entry;
    const next: HistoryEntry = { ...(created !== undefined ? { created: created instanceof Date ? created.toISOString() : created } : {}), ...rest };
    return this.with({ history: [...this.state.history, next] });
  }

  /** The config's `created`; by default the epoch when one is set, else the write's time when a layer was appended. */
  withCreated(date: Date | string): MutableImage {
    const d = typeof date === 'string' ? new Date(date) : date;
    if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`created ${JSON.stringify(date)} is not a date`);
    return this.with({ created: d.toISOString() });
  }

  /**
   * Reproducible output (SOURCE_DATE_EPOCH): layers appended are written with every mtime
   * clamped to this many seconds since 1970, and it is the `created` of the config and of their
   * history entries (unless withCreated says otherwise).
   */
  withEpoch(epoch: number | undefined): MutableImage {
    if (epoch !== undefined) checkEpoch(epoch);
    const { epoch: _old, ...rest } = this.state;
    return new MutableImage(epoch === undefined ? rest : { ...rest, epoch });
  }

  /** Appends a layer made from `source` at write time, with its history entry. */
  appendLayer(source: LayerSource, options: AppendLayerOptions = {}): MutableImage {
    checkSource(source);
    if (options.epoch !== undefined) checkEpoch(options.epoch);
    checkLayerBlobOptions(options); // fails here, not at write
    const pending = new PendingLayer(source, options);
    const entry: HistoryEntry = { created_by: options.createdBy ?? defaultCreatedBy(source) };
    if (options.author !== undefined) entry.author = options.author;
    if (options.comment !== undefined) entry.comment = options.comment;
    return this.with({ layers: [...this.state.layers, pending], history: [...this.state.history, { pending, entry }] });
  }

  /**
   * go-containerregistry's `mutate.Rebase`: this image must start with `oldBase`'s layers; they
   * (and oldBase's history entries) are replaced by `newBase`'s. The config and the layers above
   * the base are kept. Both bases must be stored images (no layers pending).
   */
  rebase(oldBase: MutableImage, newBase: MutableImage): MutableImage {
    const stored = (img: MutableImage, what: string): StoredLayer[] =>
      img.state.layers.map((l) => {
        if (l instanceof PendingLayer) throw new FailedPreconditionError(`cannot rebase: ${what} (${img.base}) has a layer not written yet; write it first`);
        return l;
      });
    const oldLayers = stored(oldBase, 'the old base');
    const newLayers = stored(newBase, 'the new base');
    const mine = this.state.layers;
    const at = oldLayers.findIndex((l, i) => {
      const own = mine[i];
      return own === undefined || own instanceof PendingLayer || own.diffId !== l.diffId;
    });
    if (at >= 0) {
      throw new FailedPreconditionError(`cannot rebase ${this.base}: it does not start with the layers of ${oldBase.base} (layer ${at + 1} differs)`);
    }
    const history = [...newBase.state.history, ...this.state.history.slice(oldBase.state.history.length)];
    return this.with({ layers: [...newLayers, ...mine.slice(oldLayers.length)], history });
  }

  /**
   * Stores the image and tags it `tag`: appended layers are written (streamed, compressed, both
   * digests computed), then the config and an OCI manifest; everything is leased until the tag
   * names it. The value can be written again (the appended layers' blobs are reused).
   */
  async write(tag: string): Promise<WrittenImage> {
    const target = parseReference(tag);
    if (target.digest !== undefined) throw new InvalidArgumentError(`cannot write to ${tag}: name a tag, not a digest`);
    const { ctx, epoch } = this.state;
    const { store } = ctx;
    await reclaimDeadWriterIngests(store);
    const lease = await Lease.create(store.root);
    try {
      const layers: Array<Descriptor & { diffId: Digest }> = [];
      const written = new Map<PendingLayer, LayerBlob>();
      for (const layer of this.state.layers) {
        if (layer instanceof PendingLayer) {
          const blob = await layer.write(ctx, lease, layer.options.epoch ?? epoch);
          written.set(layer, blob);
          layers.push({ mediaType: blob.mediaType, digest: blob.digest, size: blob.size, diffId: blob.diffId });
        } else {
          await lease.add(layer.descriptor.digest); // the base's tag may go meanwhile
          if (!(await store.has(layer.descriptor.digest))) throw new FailedPreconditionError(`layer ${layer.descriptor.digest} of ${this.base} is not in the store`);
          const { mediaType, digest, size, annotations, urls } = layer.descriptor;
          layers.push({ mediaType: OCI_LAYER_TYPE[mediaType] ?? mediaType, digest, size, ...(annotations ? { annotations } : {}), ...(urls ? { urls } : {}), diffId: layer.diffId });
        }
      }
      const now = new Date();
      const timeOf = (layerEpoch: number | undefined, fallback: Date) => (layerEpoch !== undefined ? new Date(layerEpoch * 1000) : fallback).toISOString();
      const history = this.state.history.map((h) => ('pending' in h ? { created: timeOf(h.pending.options.epoch ?? epoch, h.pending.appendedAt), ...h.entry } : h));
      const appended = written.size > 0;
      const created = this.state.created ?? (epoch !== undefined ? timeOf(epoch, now) : appended ? now.toISOString() : (this.state.config.created as string | undefined));
      const config: Record<string, unknown> = { ...this.state.config };
      if (created !== undefined) config.created = created;
      config.rootfs = { type: 'layers', diff_ids: layers.map((l) => l.diffId) };
      if (history.length > 0) config.history = history;
      const putLeased = async (bytes: Buffer) => {
        await lease.add(digestOf(bytes));
        return store.put(bytes);
      };
      const configBlob = await putLeased(Buffer.from(JSON.stringify(config)));
      const configDescriptor: Descriptor = { mediaType: MediaType.OciConfig, digest: configBlob.digest, size: configBlob.size };
      const manifest: Record<string, unknown> = {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: configDescriptor,
        layers: layers.map(({ diffId: _, ...d }) => d),
      };
      if (Object.keys(this.state.annotations).length > 0) manifest.annotations = this.state.annotations;
      const manifestBlob = await putLeased(Buffer.from(JSON.stringify(manifest)));
      const manifestDescriptor: Descriptor = { mediaType: MediaType.OciManifest, digest: manifestBlob.digest, size: manifestBlob.size };
      const name = target.toString();
      await store.setTag(name, manifestDescriptor);
      return { name, id: configDescriptor.digest, manifest: manifestDescriptor, config: configDescriptor, layers };
    } finally {
      await lease.release();
    }
  }
}

function checkSource(source: LayerSource): void {
  const kinds = ['dir', 'tar', 'snapshot', 'diffOf'].filter((k) => k in (source as object));
  if (kinds.length !== 1) throw new InvalidArgumentError(`a layer source is one of { dir }, { tar }, { snapshot }, { diffOf: [lower, upper] }; got ${kinds.length === 0 ? 'none' : kinds.join(' and ')}`);
  if ('diffOf' in source && (!Array.isArray(source.diffOf) || source.diffOf.length !== 2 || typeof source.diffOf[1] !== 'string')) {
    throw new InvalidArgumentError('diffOf takes [lower, upper]: two snapshot keys (lower may be undefined)');
  }
}

function defaultCreatedBy(source: LayerSource): string {
  if ('dir' in source) return `stratum: layer from directory ${source.dir}`;
  if ('tar' in source) return typeof source.tar === 'string' ? `stratum: layer from tar ${source.tar}` : 'stratum: layer from a tar stream';
  if ('snapshot' in source) return `stratum: layer from snapshot ${source.snapshot}`;
  return `stratum: diff of snapshots ${source.diffOf[0] ?? '(none)'} and ${source.diffOf[1]}`;
}

/**
 * Writes the layer tar of `source` to `out` and ends it. An active overlay snapshot's own changes
 * come from its upper directory unless `compareTrees` (see upperDiffOrTrees).
 */
async function produceLayer(ctx: MutationContext, source: LayerSource, out: Writable, epoch: number | undefined, compareTrees: boolean): Promise<unknown> {
  const tarOptions = epoch !== undefined ? { epoch } : {};
  if ('dir' in source) {
    const st = await stat(source.dir).catch((err: unknown) => {
      throw new LayerSourceError(`layer directory ${source.dir}: ${(err as Error).message}`, { cause: err });
    });
    if (!st.isDirectory()) throw new LayerSourceError(`layer directory ${source.dir} is not a directory`);
    return writeTreeAsTar(source.dir, out, tarOptions);
  }
  if ('tar' in source) {
    let input: Readable;
    if (typeof source.tar === 'string') {
      const path = source.tar;
      await stat(path).catch((err: unknown) => {
        throw new LayerSourceError(`layer tar ${path}: ${(err as Error).message}`, { cause: err });
      });
      input = createReadStream(path, { highWaterMark: 1 << 20 });
    } else {
      input = source.tar;
      if (input.readableEnded || input.destroyed) throw new LayerSourceError('the layer tar stream was read already');
    }
    if (epoch === undefined) {
      await pipeline(input, autoDecompressor(), out);
      return {};
    }
    const plain = autoDecompressor();
    const normalized = normalizeTar(plain, out, epoch).catch((err: unknown) => {
      plain.destroy(err as Error);
      throw err;
    });
    const [stats] = await Promise.all([normalized, pipeline(input, plain)]);
    return stats;
  }
  const [lowerKey, upperKey] = 'snapshot' in source ? [undefined, source.snapshot] : source.diffOf;
  const undo: Array<() => Promise<unknown>> = [];
  try {
    const upperSnap = await ctx.findSnapshot(upperKey);
    if ('snapshot' in source && upperSnap.info.kind === 'active' && !compareTrees) {
      const upper = overlayUpper(await upperSnap.snapshotter.mounts(upperKey));
      if (upper !== undefined) return await writeOverlayDiff(upper, out, tarOptions);
    }
    const parentKey = 'snapshot' in source ? upperSnap.info.parent : lowerKey;
    const lower = parentKey === undefined ? undefined : await snapshotTree(ctx, parentKey, undo);
    const upper = await snapshotTree(ctx, upperKey, undo);
    return await writeTreeDiff(lower, upper, out, tarOptions);
  } finally {
    for (const step of undo.reverse()) await step().catch(() => {});
  }
}

/**
 * A directory showing snapshot `key`'s tree: where stratum has an active one mounted already
 * (overlay refuses a second mount of one upper), else a temporary mount of its mounts (a
 * committed one through a temporary view), undone by the caller through `undo`.
 */
async function snapshotTree(ctx: MutationContext, key: string, undo: Array<() => Promise<unknown>>): Promise<string> {
  const { snapshotter, info } = await ctx.findSnapshot(key);
  const mountedAt = info.labels[MOUNTPOINT_LABEL];
  if (info.kind !== 'committed' && mountedAt !== undefined && (await isMountPoint(mountedAt))) return mountedAt;
  let mounts;
  if (info.kind === 'committed') {
    const viewKey = `mutate-view-${randomBytes(6).toString('hex')}`;
    mounts = await snapshotter.view(viewKey, key, { labels: temporaryLabels() });
    undo.push(() => snapshotter.remove(viewKey));
  } else {
    mounts = await snapshotter.mounts(key);
  }
  const dir = await mountTemporary(snapshotter.root, mounts, `snapshot ${key} for a layer diff`);
  undo.push(() => unmountTemporary(dir));
  return dir;
}
