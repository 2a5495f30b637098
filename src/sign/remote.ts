import { DigestMismatchError, SizeMismatchError } from '../errors.js';
import { digestOf, type Digest } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { Artifact } from '../referrers/artifact.js';
import { pushArtifact, registryReferrers, tagged, type RegistryAttachment } from '../referrers/remote.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from './bundle.js';
import { cosignArtifact, cosignLayers, cosignTag, COSIGN_SIGNATURE_ANNOTATION, KEY_HINT_ANNOTATION, type CosignLayer } from './artifact.js';
import type { FoundSignature } from './found.js';

/** Signature blobs (bundles, payloads) are small: anything bigger is refused unread. */
export const MAX_SIGNATURE_BLOB_BYTES = 1024 * 1024;

/** Adds a signature layer to the cosign `sha256-<hex>.sig` manifest of `subject` (creating it), as `cosign sign` does. */
export async function pushCosignSignature(client: RegistryClient, repo: Reference, subject: Digest, layer: CosignLayer, signal?: AbortSignal): Promise<{ artifact: Artifact; attachment: RegistryAttachment }> {
  const tag = cosignTag(subject);
  const existing = await tagged<ImageManifest>(client, repo, tag);
  const kept = existing && Array.isArray(existing.doc.layers) ? existing.doc.layers.filter((l) => l.digest !== digestOf(layer.payload) || l.annotations?.[COSIGN_SIGNATURE_ANNOTATION] !== layer.signature) : [];
  const artifact = cosignArtifact(kept, [layer]);
  await pushArtifact(client, repo, artifact, tag, signal);
  return { artifact, attachment: 'cosign-tag' };
}

/** A small blob, read whole and checked against its descriptor. */
export async function fetchSmallBlob(client: RegistryClient, repo: Reference, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  if (desc.size > MAX_SIGNATURE_BLOB_BYTES) throw new SizeMismatchError(`signature blob ${desc.digest} of ${repo.name} (over the ${MAX_SIGNATURE_BLOB_BYTES}-byte limit)`, MAX_SIGNATURE_BLOB_BYTES, desc.size);
  const res = await client.fetchBlob(repo, desc.digest, signal ? { signal } : {});
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      if (total > desc.size) throw new SizeMismatchError(`signature blob ${desc.digest} of ${repo.name}`, desc.size, total, true);
      chunks.push(chunk as Buffer);
    }
  } finally {
    res.body.destroy();
  }
  const bytes = Buffer.concat(chunks);
  if (bytes.length !== desc.size) throw new SizeMismatchError(`signature blob ${desc.digest} of ${repo.name}`, desc.size, bytes.length);
  const got = digestOf(bytes);
  if (got !== desc.digest) throw new DigestMismatchError(`signature blob of ${repo.name}`, desc.digest, got);
  return bytes;
}

/**
 * Every signature `repo` holds for `subject`: Sigstore bundle artifacts listed by the referrers
 * API or, without it, the referrers tag `sha256-<hex>`; and the layers of cosign's
 * `sha256-<hex>.sig`.
 */
export async function findRegistrySignatures(client: RegistryClient, repo: Reference, subject: Digest, signal?: AbortSignal): Promise<FoundSignature[]> {
  const found: FoundSignature[] = [];
  const { descriptors, where } = await registryReferrers(client, repo, subject, { artifactType: SIGSTORE_BUNDLE_MEDIA_TYPE, ...(signal ? { signal } : {}) });
  for (const desc of descriptors) {
    const artifact = await client.fetchManifest(repo, desc.digest, desc.size);
    const manifest = JSON.parse(artifact.bytes.toString('utf8')) as ImageManifest;
    // The artifact's own subject is not trusted (a referrers tag can be edited by anyone who can
    // push): the signed statement inside the bundle is checked against `subject` instead.
    for (const layer of manifest.layers ?? []) {
      if (layer.mediaType !== SIGSTORE_BUNDLE_MEDIA_TYPE) continue;
      found.push({ format: 'bundle', where: `${where} (${desc.digest})`, subject, bundle: await fetchSmallBlob(client, repo, layer, signal) });
    }
  }
  const sig = await tagged<ImageManifest>(client, repo, cosignTag(subject));
  if (sig && Array.isArray(sig.doc.layers)) {
    for (const layer of cosignLayers(sig.doc)) {
      const keyHint = layer.annotations?.[KEY_HINT_ANNOTATION];
      found.push({ format: 'cosign', where: `registry tag ${cosignTag(subject)}`, subject, payload: await fetchSmallBlob(client, repo, layer, signal), signature: layer.signature, ...(keyHint ? { keyHint } : {}) });
    }
  }
  return found;
}
