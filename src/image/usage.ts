import type { Digest } from '../oci/digest.js';
import type { OciStore } from '../content/store.js';
import { collectGarbage } from '../content/gc.js';
import { imageSize } from './image.js';
import { listImages, type ListedImage } from './resolve.js';

export interface ImageUsage {
  image: ListedImage;
  /** Layer bytes of the image. */
  size: number;
  /** Layer bytes this image shares with at least one other tagged image. */
  sharedSize: number;
  uniqueSize: number;
}

export interface LayerUsage {
  digest: Digest;
  size: number;
  /** Names of the tagged images that use this layer. */
  usedBy: string[];
}

export interface StoreUsage {
  images: ImageUsage[];
  layers: LayerUsage[];
  /** Bytes of all committed blobs in the store. */
  blobBytes: number;
  blobCount: number;
  /** Unreferenced blobs GC would delete, and their bytes. */
  reclaimableBytes: number;
  reclaimableBlobs: number;
  /** Bytes of partial downloads stale enough for GC to delete. */
  reclaimableIngestBytes: number;
  /** Partial downloads waiting to be resumed, and their bytes. */
  ingestCount: number;
  ingestBytes: number;
  /** Tags that could not be read (missing or damaged blobs); the rest are counted. */
  warnings: Array<{ name: string; message: string }>;
}

/** What `stratum df` reports: per image size, shared and unique bytes, and what GC could reclaim. */
export async function storeUsage(store: OciStore): Promise<StoreUsage> {
  const { images, warnings } = await listImages(store);
  const users = new Map<Digest, { size: number; names: string[] }>();
  for (const image of images) {
    for (const layer of image.manifest.layers) {
      const entry = users.get(layer.digest) ?? { size: layer.size, names: [] };
      if (!entry.names.includes(image.name)) entry.names.push(image.name);
      users.set(layer.digest, entry);
    }
  }
  const imageUsage = images.map((image) => {
    const size = imageSize(image);
    const sharedSize = [...new Set(image.manifest.layers.map((l) => l.digest))]
      .filter((d) => users.get(d)!.names.length > 1)
      .reduce((sum, d) => sum + users.get(d)!.size, 0);
    return { image, size, sharedSize, uniqueSize: size - sharedSize };
  });
  const disk = await store.diskUsage();
  const gc = await collectGarbage(store, { dryRun: true });
  return {
    images: imageUsage,
    layers: [...users].map(([digest, u]) => ({ digest, size: u.size, usedBy: u.names })),
    blobBytes: disk.bytes,
    blobCount: disk.blobs,
    reclaimableBytes: gc.removed.reduce((sum, b) => sum + b.size, 0),
    reclaimableIngestBytes: gc.removedIngests.reduce((sum, i) => sum + i.bytes, 0),
    reclaimableBlobs: gc.removed.length,
    ingestCount: disk.ingests,
    ingestBytes: disk.ingestBytes,
    warnings,
  };
}
