import { Lease } from '../content/lease.js';
import type { OciStore } from '../content/store.js';
import { isStratumError } from '../errors.js';
import { parsesAs, resolveImage } from '../image/resolve.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { referrersIndex, withEntry, type Artifact } from './artifact.js';

/**
 * The tag-entry annotation (index.json) naming the index of an image's referrers (signatures,
 * attachments) in the store. Ending in `.digest`, it is a GC root for as long as the tag is: the
 * referrers live and go with the image, and no extra tag shows up in `images`. (Its name predates
 * attachments: stores written since signing began keep working.)
 */
export const REFERRERS_ANNOTATION = 'dev.stratum.signatures.digest';

const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

/**
 * Stores a referrer artifact (a bundle, an attachment, a cosign `.sig` manifest) with the image
 * whose tags point at `subject`: the blobs, the manifest, and a new referrers index (the old one's
 * entries plus this one) named by every such tag's REFERRERS_ANNOTATION. A lease holds it all
 * until the tags name it, so a concurrent GC cannot take it.
 */
export async function attachToStore(store: OciStore, subject: Digest, artifact: Artifact): Promise<Digest> {
  const lease = await Lease.create(store.root);
  try {
    for (const blob of [...artifact.blobs, { digest: artifact.digest, bytes: artifact.manifest }]) {
      await lease.add(blob.digest);
      await store.put(blob.bytes, blob.digest);
    }
    return await store.withIndexLock(async (index) => {
      const entries = index.manifests.filter((e) => e.digest === subject && typeof e.annotations?.[ANNOTATION_REF_NAME] === 'string');
      let listed: Descriptor[] = [];
      for (const e of entries) listed = (await referrersOf(store, e))?.manifests.reduce(withEntry, listed) ?? listed;
      const bytes = referrersIndex(withEntry(listed, artifact.descriptor));
      const { digest } = await store.put(bytes);
      const manifests = index.manifests.map((e) => (entries.includes(e) ? { ...e, annotations: { ...e.annotations, [REFERRERS_ANNOTATION]: digest } } : e));
      return { index: { ...index, manifests }, result: digest };
    });
  } finally {
    await lease.release();
  }
}

async function referrersOf(store: OciStore, entry: Descriptor): Promise<ImageIndex | undefined> {
  const digest = entry.annotations?.[REFERRERS_ANNOTATION];
  if (!isDigest(digest) || !(await store.has(digest))) return undefined;
  return JSON.parse((await store.read(digest)).toString('utf8')) as ImageIndex;
}

/** The referrers stored with a tag entry (their manifests present), optionally of one artifactType. */
export async function storedReferrers(store: OciStore, entry: Descriptor, artifactType?: string): Promise<Descriptor[]> {
  const out: Descriptor[] = [];
  for (const desc of (await referrersOf(store, entry))?.manifests ?? []) {
    if (artifactType !== undefined && desc.artifactType !== artifactType) continue;
    if (await store.has(desc.digest)) out.push(desc);
  }
  return out;
}

/** The stored image `ref` names and its tag entry, or undefined when the store does not have it. */
export async function findStored(store: OciStore, ref: string): Promise<{ name: string; entry: Descriptor } | undefined> {
  // A tag first: an index tag needs no platform of this host to be named.
  const byTag = await store.getTag(parsesAs(ref)?.toString() ?? ref);
  if (byTag) return { name: byTag.name, entry: byTag.descriptor };
  let image;
  try {
    image = await resolveImage(store, ref);
  } catch (err) {
    if (isStratumError(err, 'ERR_NOT_FOUND')) return undefined;
    throw err;
  }
  const tagged = await store.getTag(image.name);
  const entry = tagged?.descriptor ?? image.index ?? image.descriptor;
  return { name: image.name, entry };
}
