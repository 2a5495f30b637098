import { Readable } from 'node:stream';
import { DigestMismatchError, InvalidManifestError, isStratumError, SizeMismatchError } from '../errors.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { withTag, type Reference } from '../oci/reference.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from './bundle.js';
import { cosignLayers, cosignTag, KEY_HINT_ANNOTATION, referrersIndex, referrersTag, withEntry, type Artifact, type CosignLayer } from './artifact.js';
import { cosignArtifact } from './artifact.js';
import type { FoundSignature } from './found.js';

/** Signature blobs (bundles, payloads) are small: anything bigger is refused unread. */
export const MAX_SIGNATURE_BLOB_BYTES = 1024 * 1024;

/** How a signature was made findable at a registry. */
export type RegistryAttachment = 'referrers-api' | 'referrers-tag' | 'cosign-tag';

async function pushArtifact(client: RegistryClient, repo: Reference, artifact: Artifact, reference: string, signal?: AbortSignal): Promise<void> {
  for (const blob of artifact.blobs) {
    if (await client.blobExists(repo, blob.digest, signal)) continue;
    await client.pushBlob(repo, { digest: blob.digest, size: blob.bytes.length }, () => Readable.from([blob.bytes]), signal ? { signal } : {});
  }
  await client.pushManifest(repo, reference, artifact.mediaType, artifact.manifest, signal);
}

/** The manifest a tag names, parsed; undefined when the tag does not exist. */
async function tagged<T>(client: RegistryClient, repo: Reference, tag: string): Promise<{ doc: T; digest: Digest } | undefined> {
  try {
    const resolved = await client.resolve(withTag(repo, tag));
    return { doc: JSON.parse(resolved.bytes.toString('utf8')) as T, digest: resolved.descriptor.digest };
  } catch (err) {
    if (isStratumError(err, 'ERR_NOT_FOUND')) return undefined;
    if (err instanceof SyntaxError) throw new InvalidManifestError(`${repo.name}:${tag}`, 'not JSON');
    throw err;
  }
}

/**
 * Pushes a bundle artifact (its `subject` set) to `repo` by digest. A registry with the referrers
 * API lists it from then on; one without (distribution 2.8) gets the referrers tag schema: the
 * index tagged `sha256-<hex>` gains its descriptor. (Two signers updating that tag at once can
 * lose one entry: the tag schema has no compare-and-swap; the referrers API has no such race.)
 */
export async function pushBundleArtifact(client: RegistryClient, repo: Reference, subject: Digest, artifact: Artifact, signal?: AbortSignal): Promise<RegistryAttachment> {
  await pushArtifact(client, repo, artifact, artifact.digest, signal);
  const listed = await client.referrers(repo, subject, signal ? { signal } : {});
  if (listed !== undefined) {
    if (listed.some((d) => d.digest === artifact.digest)) return 'referrers-api';
    // A registry that answers the API but did not index the subject (or not yet): the tag schema too.
  }
  const tag = referrersTag(subject);
  const existing = await tagged<ImageIndex>(client, repo, tag);
  const manifests = withEntry(Array.isArray(existing?.doc.manifests) ? existing.doc.manifests : [], artifact.descriptor);
  const index = referrersIndex(manifests);
  await client.pushManifest(repo, tag, MediaType.OciIndex, index, signal);
  return 'referrers-tag';
}

/** Adds a signature layer to the cosign `sha256-<hex>.sig` manifest of `subject` (creating it), as `cosign sign` does. */
export async function pushCosignSignature(client: RegistryClient, repo: Reference, subject: Digest, layer: CosignLayer, signal?: AbortSignal): Promise<{ artifact: Artifact; attachment: RegistryAttachment }> {
  const tag = cosignTag(subject);
  const existing = await tagged<ImageManifest>(client, repo, tag);
  const kept = existing && Array.isArray(existing.doc.layers) ? existing.doc.layers.filter((l) => l.digest !== digestOf(layer.payload) || l.annotations?.['dev.cosignproject.cosign/signature'] !== layer.signature) : [];
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
  let descriptors = await client.referrers(repo, subject, { artifactType: SIGSTORE_BUNDLE_MEDIA_TYPE, ...(signal ? { signal } : {}) });
  let where = 'registry referrers API';
  if (descriptors === undefined || descriptors.length === 0) {
    const index = await tagged<ImageIndex>(client, repo, referrersTag(subject));
    const fromTag = Array.isArray(index?.doc.manifests) ? index.doc.manifests.filter((d) => d.artifactType === SIGSTORE_BUNDLE_MEDIA_TYPE) : [];
    if (fromTag.length > 0 || descriptors === undefined) {
      descriptors = fromTag;
      where = `registry tag ${referrersTag(subject)}`;
    }
  }
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
