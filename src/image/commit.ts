import { randomBytes } from 'node:crypto';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { chainIds, digestOf, type Digest } from '../oci/digest.js';
import { reclaimDeadWriterIngests } from '../content/gc.js';
import { Lease } from '../content/lease.js';
import { MediaType } from '../oci/mediatypes.js';
import { parseReference } from '../oci/reference.js';
import type { OciStore } from '../content/store.js';
import type { Descriptor } from '../oci/types.js';
import { isMountPoint } from '../snapshotter/mount.js';
import { mountTemporary, reclaimTemporaries, temporaryLabels, unmountTemporary } from '../snapshotter/temporaries.js';
import type { Snapshotter } from '../snapshotter/snapshotter.js';
import { writeTreeDiff } from './diff.js';
import { overlayUpper, upperDiffOrTrees, writeOverlayDiff } from './overlay-diff.js';
import { applyChanges } from './changes.js';
import { checkEpoch, writeLayerBlob } from './layer-blob.js';
import { resolveImage } from './resolve.js';
import { IMAGE_LABEL, MOUNTPOINT_LABEL } from './rootfs.js';

export interface CommitImageOptions {
  store: OciStore;
  snapshotter: Snapshotter;
  /** An active snapshot on an image's top layer (`stratum mount --rw KEY IMAGE DIR`). */
  key: string;
  /** The new image's name (`myapp:2`). */
  name: string;
  /** The image the snapshot was made from; default: the snapshot's dev.stratum.image label. */
  image?: string;
  /** History comment, as `docker commit -m`. */
  message?: string;
  author?: string;
  /** History `created_by`; default `stratum commit`. */
  createdBy?: string;
  /** Config changes in `docker commit --change` syntax (`ENV A=b`, `CMD ["sh"]`), applied in order. */
  changes?: string[];
  /**
   * Reproducible output (SOURCE_DATE_EPOCH, seconds since 1970): mtimes in the layer are clamped
   * to it, and it is the `created` of the config and the history entry.
   */
  epoch?: number;
}

export interface CommitImageResult {
  name: string;
  manifest: Descriptor;
  config: Descriptor;
  layer: Descriptor & { diffId: Digest };
  entries: number;
  whiteouts: number;
}

/** Docker layer media types and their OCI twins (same bytes): the new manifest is an OCI one. */
const OCI_LAYER_TYPE: Record<string, string> = {
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
};

/**
 * `docker commit` for a writable snapshot: the changes from the image's layers to the snapshot
 * become one new gzip layer (written into the store while it is produced, never whole in
 * memory), then a config with its diffID and a history entry, then an OCI manifest with the old
 * layers and the new one, tagged `name`. The snapshot is left as it was (still active, and
 * still mounted if it was).
 */
export async function commitImage(options: CommitImageOptions): Promise<CommitImageResult> {
  const { store, snapshotter, key } = options;
  const target = parseReference(options.name);
  if (target.digest !== undefined) throw new InvalidArgumentError(`cannot commit to ${options.name}: name a tag, not a digest`);
  if (options.changes) applyChanges({}, options.changes); // a malformed change fails before any work
  if (options.epoch !== undefined) checkEpoch(options.epoch);
  const info = await snapshotter.stat(key);
  if (info.kind !== 'active') throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is ${info.kind}: only an active snapshot (stratum mount --rw) can be committed to an image`);
  const imageName = options.image ?? info.labels[IMAGE_LABEL];
  if (imageName === undefined) throw new InvalidArgumentError(`snapshot ${JSON.stringify(key)} does not say which image it was made from (no ${IMAGE_LABEL} label): name the image`);
  const image = await resolveImage(store, imageName);
  const top = chainIds(image.config.rootfs.diff_ids).at(-1);
  if (info.parent !== top) {
    throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is not on the top layer of ${image.name}: its parent is ${info.parent ?? 'none'}, the image's top chainID ${top ?? 'none'}`);
  }

  // A commit killed before has left a view and mounts, one of them on this snapshot's own upper
  // directory: they go before this commit mounts it again.
  await reclaimTemporaries(snapshotter).catch(() => {});
  await reclaimDeadWriterIngests(store);
  const lease = await Lease.create(store.root);
  const undo: Array<() => Promise<unknown>> = [];
  try {
    const epoch = options.epoch;
    const tarOptions = epoch !== undefined ? { epoch } : {};
    // An overlay union's changes are its upper directory: read alone, the commit costs what changed, not the image's size.
    const upper = overlayUpper(await snapshotter.mounts(key));
    const diff = await upperDiffOrTrees((compareTrees) =>
      writeLayerBlob(store, lease, async (out) =>
        upper !== undefined && !compareTrees ? writeOverlayDiff(upper, out, tarOptions) : writeTreeDiff(await parentView(), await mountedSnapshot(), out, tarOptions),
      ),
    );

    async function parentView(): Promise<string | undefined> {
      if (top === undefined) return undefined;
      const viewKey = `commit-view-${randomBytes(6).toString('hex')}`;
      const mounts = await snapshotter.view(viewKey, top, { labels: temporaryLabels() });
      undo.push(() => snapshotter.remove(viewKey));
      const dir = await mountTemporary(snapshotter.root, mounts, `parent view for commit of ${key}`);
      undo.push(() => unmountTemporary(dir));
      return dir;
    }
    // Where the snapshot is mounted already (overlay refuses a second mount of one upper), else a mount of our own.
    async function mountedSnapshot(): Promise<string> {
      const mountedAt = info.labels[MOUNTPOINT_LABEL];
      if (mountedAt !== undefined && (await isMountPoint(mountedAt))) return mountedAt;
      const dir = await mountTemporary(snapshotter.root, await snapshotter.mounts(key), `snapshot ${key} for commit`);
      undo.push(() => unmountTemporary(dir));
      return dir;
    }
    const layer = { ...diff, ...diff.stats };
    const created = (epoch !== undefined ? new Date(epoch * 1000) : new Date()).toISOString();
    const rawConfig = JSON.parse((await store.read(image.configDescriptor.digest)).toString('utf8')) as Record<string, unknown> & {
      rootfs: { type: string; diff_ids: string[] };
      history?: Array<Record<string, unknown>>;
    };
    rawConfig.rootfs = { ...rawConfig.rootfs, diff_ids: [...rawConfig.rootfs.diff_ids, layer.diffId] };
    const step: Record<string, unknown> = { created, created_by: options.createdBy ?? 'stratum commit' };
    if (options.author !== undefined) step.author = options.author;
    if (options.message !== undefined) step.comment = options.message;
    rawConfig.history = [...(rawConfig.history ?? []), step];
    rawConfig.created = created;
    if (options.changes !== undefined && options.changes.length > 0) {
      rawConfig.config = applyChanges((rawConfig.config as Record<string, unknown> | undefined) ?? {}, options.changes);
    }
    if (options.author !== undefined) rawConfig.author = options.author;
    // Leased before they are stored: a GC running meanwhile must not take them before the tag does.
    const putLeased = async (bytes: Buffer) => {
      await lease.add(digestOf(bytes));
      return store.put(bytes);
    };
    const config = await putLeased(Buffer.from(JSON.stringify(rawConfig)));
    const configDescriptor: Descriptor = { mediaType: MediaType.OciConfig, digest: config.digest, size: config.size };
    const layerDescriptor: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: layer.digest, size: layer.size };
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: configDescriptor,
      layers: [...image.manifest.layers.map((l) => ({ ...l, mediaType: OCI_LAYER_TYPE[l.mediaType] ?? l.mediaType })), layerDescriptor],
    };
    const stored = await putLeased(Buffer.from(JSON.stringify(manifest)));
    const manifestDescriptor: Descriptor = { mediaType: MediaType.OciManifest, digest: stored.digest, size: stored.size };
    await store.setTag(target.toString(), manifestDescriptor);
    return {
      name: target.toString(),
      manifest: manifestDescriptor,
      config: configDescriptor,
      layer: { ...layerDescriptor, diffId: layer.diffId },
      entries: layer.entries,
      whiteouts: layer.whiteouts,
    };
  } finally {
    for (const step of undo.reverse()) await step().catch(() => {});
    await lease.release();
  }
}
