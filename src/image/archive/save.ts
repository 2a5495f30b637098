import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { ArchiveError, DigestMismatchError, SizeMismatchError } from '../../errors.js';
import { ANNOTATION_CONTAINERD_IMAGE_NAME, ANNOTATION_REF_NAME } from '../../content/layout.js';
import type { OciStore } from '../../content/store.js';
import { digestAlgorithm, digestHex, isDigest, type Digest } from '../../oci/digest.js';
import { layerCompression, MediaType } from '../../oci/mediatypes.js';
import { decompressor } from '../../unpack/decompress.js';
import { parseReference, type Reference } from '../../oci/reference.js';
import type { Descriptor, Platform } from '../../oci/types.js';
import { resolveImage, type ListedImage } from '../resolve.js';
import { ArchiveTarWriter } from './tar-out.js';

export type ArchiveFormat = 'docker' | 'oci';

export interface SaveOptions {
  /**
   * `docker` (default): what Docker 25+ `docker save` writes, an OCI image layout plus Docker's
   * manifest.json and repositories (loadable by Docker 20.10 and later). `oci`: an OCI image
   * layout only, as `skopeo copy … oci-archive:` writes.
   */
  format?: ArchiveFormat;
  /** For a name that is an index: the platform saved (default the host's). */
  platform?: Platform;
}

export interface SavedImage {
  /** The names the archive gives it (fully qualified); none when it was named by ID or digest. */
  names: string[];
  /** The image ID (config digest). */
  id: Digest;
  /** The manifest, as stored (its digest is kept). */
  manifest: Descriptor;
}

export interface SaveResult {
  images: SavedImage[];
  /** Blobs written (each once) and the archive's size in bytes. */
  blobs: number;
  bytes: number;
}

interface Planned {
  image: ListedImage;
  refs: Reference[];
}

/** `abcd`, `sha256:abcd…`: an image ID or prefix; `repo@sha256:…`: a digest. Neither names a tag to keep (as docker save). */
function namesATag(input: string): boolean {
  const lower = input.toLowerCase();
  if (isDigest(lower) || /^(?:sha256:)?[0-9a-f]{4,64}$/.test(lower)) return false;
  return !input.includes('@');
}

/** The tag the archive gives a stored name; undefined when it is not a tagged reference Docker could load. */
function tagOf(name: string): Reference | undefined {
  try {
    const ref = parseReference(name);
    return ref.tag !== undefined && ref.digest === undefined ? ref : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves every name first (an unknown one fails before a byte is written), one entry per image, tags merged. */
async function plan(store: OciStore, names: string[], platform: Platform | undefined): Promise<Planned[]> {
  const byManifest = new Map<string, Planned>();
  for (const name of names) {
    const image = await resolveImage(store, name, platform ? { platform } : {});
    const key = image.descriptor.digest;
    let entry = byManifest.get(key);
    if (!entry) byManifest.set(key, (entry = { image, refs: [] }));
    const ref = namesATag(name) ? tagOf(image.name) : undefined;
    if (ref && !entry.refs.some((r) => r.toString() === ref.toString())) entry.refs.push(ref);
  }
  return [...byManifest.values()];
}

const blobPath = (digest: Digest) => `blobs/${digestAlgorithm(digest)}/${digestHex(digest)}`;

function platformOf(image: ListedImage): Platform {
  const { os, architecture, variant } = image.config;
  return { architecture, os, ...(variant ? { variant } : {}) };
}

/**
 * Writes the images `names` resolve to as one tar archive to `out` (which is ended), streaming
 * each blob from the store and writing a blob shared by several images once. Every name is
 * resolved and every blob checked present before anything is written. The stored manifests go
 * into the archive byte for byte, so the image's manifest digest and ID are the same after a
 * load. A failure once writing began destroys `out` with the error (a pipe's reader sees it). In the `docker` format, manifest.json lists the layer blobs as stored (compressed):
 * `docker load` decompresses each layer file and checks its diffID (Docker 20.10 too).
 */
export async function saveImages(store: OciStore, names: string[], out: Writable, options: SaveOptions = {}): Promise<SaveResult> {
  const format = options.format ?? 'docker';
  if (format !== 'docker' && format !== 'oci') throw new ArchiveError(undefined, `unknown archive format ${JSON.stringify(format)} (docker or oci)`);
  if (names.length === 0) throw new ArchiveError(undefined, 'no image to save');
  const planned = await plan(store, names, options.platform);

  // Each blob once: configs, layers, manifests, in the order the images name them.
  const blobs = new Map<Digest, number>();
  for (const { image } of planned) {
    for (const d of [image.configDescriptor, ...image.manifest.layers, image.descriptor]) {
      if (blobs.has(d.digest)) continue;
      const info = await store.info(d.digest);
      if (!info) throw new ArchiveError(blobPath(d.digest), `blob ${d.digest} of ${image.name} is not in the store ${store.root} (a foreign layer, or a damaged store: run fsck)`);
      if (info.size !== d.size) throw new SizeMismatchError(`stored blob ${d.digest} of ${image.name}`, d.size, info.size);
      blobs.set(d.digest, info.size);
    }
  }

  // Docker 20.10 decompresses gzip layer files but not zstd ("invalid tar header"): in the docker
  // format manifest.json names such a layer decompressed (as Docker 25 writes every layer), beside
  // the stored blob the OCI index.json's manifest names. Its size is measured by a first pass.
  const plain = new Map<Digest, { from: Digest; size: number }>();
  const plainOf = new Map<Digest, Digest>();
  if (format === 'docker') {
    for (const { image } of planned) {
      for (const [i, layer] of image.manifest.layers.entries()) {
        if (layerCompression(layer.mediaType) !== 'zstd') continue;
        const diffId = image.config.rootfs.diff_ids[i]!;
        plainOf.set(layer.digest, diffId);
        if (plain.has(diffId) || blobs.has(diffId)) continue;
        plain.set(diffId, { from: layer.digest, size: await decompressedSize(store, layer.digest, diffId) });
      }
    }
  }

  const index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: planned.flatMap(({ image, refs }) => {
      const base = { mediaType: image.descriptor.mediaType, digest: image.descriptor.digest, size: image.descriptor.size, platform: platformOf(image) };
      if (refs.length === 0) return [base];
      // Docker 25 puts the tag alone in ref.name (the OCI spec's reading); skopeo's oci-archive matches ref.name as given, so the `oci` format names it in full.
      return refs.map((ref) => ({
        ...base,
        annotations: { [ANNOTATION_CONTAINERD_IMAGE_NAME]: ref.toString(), [ANNOTATION_REF_NAME]: format === 'docker' ? ref.tag! : ref.toString() },
      }));
    }),
  };

  const tar = new ArchiveTarWriter(out);
  try {
    await tar.file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    await tar.file('index.json', Buffer.from(JSON.stringify(index)));
    if (format === 'docker') {
      const manifest = planned.map(({ image, refs }) => ({
        Config: blobPath(image.configDescriptor.digest),
        RepoTags: refs.map((r) => r.familiar),
        Layers: image.manifest.layers.map((l) => blobPath(plainOf.get(l.digest) ?? l.digest)),
      }));
      await tar.file('manifest.json', Buffer.from(JSON.stringify(manifest)));
      // Docker 25 maps each tag to the top layer's file name (20.10 reads this only from pre-1.10 archives).
      const repositories: Record<string, Record<string, string>> = {};
      for (const { image, refs } of planned) {
        const top = image.manifest.layers.at(-1);
        if (!top) continue;
        for (const ref of refs) (repositories[ref.familiar.slice(0, ref.familiar.length - ref.tag!.length - 1)] ??= {})[ref.tag!] = digestHex(plainOf.get(top.digest) ?? top.digest);
      }
      if (Object.keys(repositories).length > 0) await tar.file('repositories', Buffer.from(JSON.stringify(repositories)));
    }
    await tar.dir('blobs/');
    for (const [digest, size] of blobs) {
      await tar.dir(`blobs/${digestAlgorithm(digest)}/`);
      await tar.blob(blobPath(digest), digest, size, store.open(digest, { dropBehind: true }));
    }
    for (const [diffId, { from, size }] of plain) {
      await tar.blob(blobPath(diffId), diffId, size, store.open(from, { dropBehind: true }).pipe(decompressor('zstd')));
    }
    await tar.end();
  } catch (err) {
    // Something is written already: the reader on the other side must see a failure, not an archive that just ends.
    out.destroy(err as Error);
    throw err;
  }
  return {
    images: planned.map(({ image, refs }) => ({ names: refs.map((r) => r.toString()), id: image.configDescriptor.digest, manifest: image.descriptor })),
    blobs: blobs.size + plain.size,
    bytes: tar.bytes,
  };
}

/** The decompressed size of a stored zstd layer, checked against its diffID on the way. */
async function decompressedSize(store: OciStore, digest: Digest, diffId: Digest): Promise<number> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of store.open(digest, { dropBehind: true }).pipe(decompressor('zstd')) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== diffId) throw new DigestMismatchError(`stored layer ${digest} (decompressed, against its diffID)`, diffId, actual);
  return size;
}
