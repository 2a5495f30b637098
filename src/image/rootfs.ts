import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chainIds, type Digest } from '../oci/digest.js';
import type { Provider } from '../content/content.js';
import type { Snapshotter, Mount } from '../snapshotter/snapshotter.js';
import { mountAll, unmountAll } from '../snapshotter/mount.js';
import { mountTemporary, temporaryLabels, unmountTemporary } from '../snapshotter/temporaries.js';
import { unpackLayers, type UnpackEvent } from './unpack.js';
import type { StoredImage } from './image.js';
import { mkdirAll } from '../sys/mkdir-all.js';

import { IMAGE_LABEL, MOUNTPOINT_LABEL } from './labels.js';
export { IMAGE_LABEL, MOUNTPOINT_LABEL };

/** The committed snapshot of the image's top layer, unpacking what is missing first. */
export async function ensureUnpacked(
  store: Provider,
  snapshotter: Snapshotter,
  image: StoredImage,
  onEvent?: (e: UnpackEvent) => void,
): Promise<Digest | undefined> {
  const diffIds = image.config.rootfs.diff_ids;
  const top = chainIds(diffIds).at(-1);
  const result = await unpackLayers({ store, snapshotter, layers: image.manifest.layers, diffIds, subject: image.name, ...(onEvent ? { onEvent } : {}) });
  return result.chainId ?? top;
}

export interface MountedImage {
  key: string;
  target: string;
  mounts: Mount[];
  readonly: boolean;
}

/**
 * Mounts an image at `target`: a writable snapshot named `rwKey` on the image's top chainID, or
 * a read-only view (removed again by unmountImage). The snapshot carries the mountpoint label.
 */
export async function mountImage(
  store: Provider,
  snapshotter: Snapshotter,
  image: StoredImage,
  target: string,
  options: { rwKey?: string; onEvent?: (e: UnpackEvent) => void } = {},
): Promise<MountedImage> {
  const mountpoint = resolve(target);
  const top = await ensureUnpacked(store, snapshotter, image, options.onEvent);
  const readonly = options.rwKey === undefined;
  const key = options.rwKey ?? `view-${randomBytes(6).toString('hex')}`;
  const labels = { [MOUNTPOINT_LABEL]: mountpoint, [IMAGE_LABEL]: image.name };
  const mounts = readonly ? await snapshotter.view(key, top, { labels }) : await snapshotter.prepare(key, top, { labels });
  try {
    await mkdirAll(mountpoint);
    await mountAll(mounts, mountpoint);
  } catch (err) {
    if (readonly) await snapshotter.remove(key).catch(() => {});
    throw err;
  }
  return { key, target: mountpoint, mounts, readonly };
}

/** Unmounts `target` and forgets it: a view is removed, a writable snapshot keeps its data for commit. */
export async function unmountImage(snapshotters: Snapshotter[], target: string): Promise<{ key?: string; removed: boolean }> {
  const mountpoint = resolve(target);
  await unmountAll(mountpoint);
  for (const snapshotter of snapshotters) {
    let found: { name: string; kind: string } | undefined;
    await snapshotter.walk((info) => {
      if (info.labels[MOUNTPOINT_LABEL] === mountpoint && info.kind !== 'committed') found = info;
    });
    if (!found) continue;
    if (found.kind === 'view') {
      await snapshotter.remove(found.name);
      return { key: found.name, removed: true };
    }
    await snapshotter.update({ name: found.name }, `labels.${MOUNTPOINT_LABEL}`);
    return { key: found.name, removed: false };
  }
  return { removed: false };
}

/**
 * Runs fn with the image's merged root filesystem mounted read-only at a temporary directory: a
 * temporary view on a temporary mount, both reclaimed by the next command if this process dies.
 */
export async function withImageRootfs<T>(store: Provider, snapshotter: Snapshotter, image: StoredImage, fn: (dir: string) => Promise<T>): Promise<T> {
  const top = await ensureUnpacked(store, snapshotter, image);
  return withSnapshotView(snapshotter, top, `root filesystem of ${image.name}`, fn);
}

/** Runs fn with committed snapshot `parent` (none: an empty tree) mounted read-only at a temporary directory, as withImageRootfs. */
export async function withSnapshotView<T>(snapshotter: Snapshotter, parent: string | undefined, purpose: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const key = `rootfs-view-${randomBytes(6).toString('hex')}`;
  const mounts = await snapshotter.view(key, parent, { labels: temporaryLabels() });
  try {
    const dir = await mountTemporary(snapshotter.root, mounts, purpose);
    try {
      return await fn(dir);
    } finally {
      await unmountTemporary(dir);
    }
  } finally {
    await snapshotter.remove(key).catch(() => {});
  }
}
