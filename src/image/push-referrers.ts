import type { OciStore } from '../content/store.js';
import type { Digest } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { Artifact } from '../referrers/artifact.js';
import { storedReferrers } from '../referrers/local.js';
import { pushReferrer, type RegistryAttachment } from '../referrers/remote.js';
import { cosignLayers } from '../sign/artifact.js';
import { pushCosignSignature } from '../sign/remote.js';

/** A referrer a push carried along with its image. */
export interface PushedReferrer {
  digest: Digest;
  artifactType?: string;
  via: RegistryAttachment;
}

/** A stored artifact (its manifest and blobs read from the store) ready to push again. */
async function storedArtifact(store: OciStore, desc: Descriptor, manifest: ImageManifest, bytes: Buffer): Promise<Artifact> {
  const blobs = [];
  for (const d of [manifest.config, ...manifest.layers]) blobs.push({ digest: d.digest, mediaType: d.mediaType, bytes: await store.read(d.digest) });
  return { mediaType: desc.mediaType, manifest: bytes, digest: desc.digest, blobs, descriptor: desc };
}

/**
 * Pushes the referrers stored with the tag entry `entry` (signature bundles, attachments, cosign
 * `.sig` signatures) to `dest`, after the image `pushed` (the manifest digest now at `dest`).
 * Nothing goes when the stored entry is not what was pushed (a platform's manifest pushed from a
 * stored index: its referrers name the index).
 */
export async function pushStoredReferrers(store: OciStore, client: RegistryClient, entry: Descriptor, pushed: Digest, dest: Reference, signal?: AbortSignal): Promise<PushedReferrer[]> {
  if (entry.digest !== pushed) return [];
  const out: PushedReferrer[] = [];
  for (const desc of await storedReferrers(store, entry)) {
    const bytes = await store.read(desc.digest);
    const manifest = JSON.parse(bytes.toString('utf8')) as ImageManifest;
    if (manifest.subject !== undefined) {
      const via = await pushReferrer(client, dest, pushed, await storedArtifact(store, desc, manifest, bytes), signal);
      out.push({ digest: desc.digest, ...(desc.artifactType ? { artifactType: desc.artifactType } : {}), via });
      continue;
    }
    // A cosign `.sig` manifest: its layers join whatever `.sig` the registry has for the image.
    let last: Digest | undefined;
    for (const layer of cosignLayers(manifest)) {
      const { artifact } = await pushCosignSignature(client, dest, pushed, { payload: await store.read(layer.digest), signature: layer.signature, ...(layer.annotations ? { annotations: layer.annotations } : {}) }, signal);
      last = artifact.digest;
    }
    if (last) out.push({ digest: last, via: 'cosign-tag' });
  }
  return out;
}
