import { Readable } from 'node:stream';
import { InvalidManifestError, isStratumError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { withTag, type Reference } from '../oci/reference.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { referrersIndex, referrersTag, withEntry, type Artifact } from './artifact.js';

/** How a referrer was made findable at a registry. */
export type RegistryAttachment = 'referrers-api' | 'referrers-tag' | 'cosign-tag';

/** Pushes an artifact's blobs (those the repository lacks), then its manifest as `reference`. */
export async function pushArtifact(client: RegistryClient, repo: Reference, artifact: Artifact, reference: string, signal?: AbortSignal): Promise<void> {
  for (const blob of artifact.blobs) {
    if (await client.blobExists(repo, blob.digest, signal)) continue;
    await client.pushBlob(repo, { digest: blob.digest, size: blob.bytes.length }, () => Readable.from([blob.bytes]), signal ? { signal } : {});
  }
  await client.pushManifest(repo, reference, artifact.mediaType, artifact.manifest, signal);
}

/** The manifest a tag names, parsed; undefined when the tag does not exist. */
export async function tagged<T>(client: RegistryClient, repo: Reference, tag: string): Promise<{ doc: T; digest: Digest } | undefined> {
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
 * Pushes a referrer artifact (its `subject` set) to `repo` by digest. A registry with the
 * referrers API lists it from then on; one without (distribution 2.8) gets the referrers tag
 * schema: the index tagged `sha256-<hex>` gains its descriptor. (Two writers updating that tag at
 * once can lose one entry: the tag schema has no compare-and-swap; the referrers API has no such race.)
 */
export async function pushReferrer(client: RegistryClient, repo: Reference, subject: Digest, artifact: Artifact, signal?: AbortSignal): Promise<RegistryAttachment> {
  await pushArtifact(client, repo, artifact, artifact.digest, signal);
  const listed = await client.referrers(repo, subject, signal ? { signal } : {});
  if (listed !== undefined) {
    if (listed.some((d) => d.digest === artifact.digest)) return 'referrers-api';
    // A registry that answers the API but did not index the subject (or not yet): the tag schema too.
  }
  const tag = referrersTag(subject);
  const existing = await tagged<ImageIndex>(client, repo, tag);
  const manifests = withEntry(Array.isArray(existing?.doc.manifests) ? existing.doc.manifests : [], artifact.descriptor);
  await client.pushManifest(repo, tag, MediaType.OciIndex, referrersIndex(manifests), signal);
  return 'referrers-tag';
}

/**
 * The referrers `repo` lists for `subject` (optionally of one artifactType): the referrers API's
 * answer, or, where the registry lacks it or lists none, the index tagged `sha256-<hex>`. `where`
 * says which answered.
 */
export async function registryReferrers(client: RegistryClient, repo: Reference, subject: Digest, options: { artifactType?: string; signal?: AbortSignal } = {}): Promise<{ descriptors: Descriptor[]; where: string }> {
  const { artifactType, signal } = options;
  const listed = await client.referrers(repo, subject, { ...(artifactType ? { artifactType } : {}), ...(signal ? { signal } : {}) });
  if (listed !== undefined && listed.length > 0) return { descriptors: listed, where: 'registry referrers API' };
  const index = await tagged<ImageIndex>(client, repo, referrersTag(subject));
  const fromTag = Array.isArray(index?.doc.manifests) ? index.doc.manifests.filter((d) => artifactType === undefined || d.artifactType === artifactType) : [];
  if (fromTag.length > 0 || listed === undefined) return { descriptors: fromTag, where: `registry tag ${referrersTag(subject)}` };
  return { descriptors: listed, where: 'registry referrers API' };
}
