import { Lease } from '../content/lease.js';
import type { OciStore } from '../content/store.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from './bundle.js';
import { cosignLayers, KEY_HINT_ANNOTATION, referrersIndex, withEntry, type Artifact } from './artifact.js';
import type { FoundSignature } from './found.js';

/**
 * The tag-entry annotation (index.json) naming the index of an image's signatures in the store.
 * Ending in `.digest`, it is a GC root for as long as the tag is: the signatures live and go
 * with the image, and no extra tag shows up in `images`.
 */
export const SIGNATURES_ANNOTATION = 'dev.stratum.signatures.digest';

const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

/**
 * Stores a signature artifact (a bundle referrer or a cosign `.sig` manifest) with the image
 * whose tags point at `subject`: the blobs, the manifest, and a new signatures index (the old one's
 * entries plus this one) named by every such tag's SIGNATURES_ANNOTATION. A lease holds it all
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
      for (const e of entries) listed = (await signatureIndex(store, e))?.manifests.reduce(withEntry, listed) ?? listed;
      const bytes = referrersIndex(withEntry(listed, artifact.descriptor));
      const { digest } = await store.put(bytes);
      const manifests = index.manifests.map((e) => (entries.includes(e) ? { ...e, annotations: { ...e.annotations, [SIGNATURES_ANNOTATION]: digest } } : e));
      return { index: { ...index, manifests }, result: digest };
    });
  } finally {
    await lease.release();
  }
}

async function signatureIndex(store: OciStore, entry: Descriptor): Promise<ImageIndex | undefined> {
  const digest = entry.annotations?.[SIGNATURES_ANNOTATION];
  if (!isDigest(digest) || !(await store.has(digest))) return undefined;
  return JSON.parse((await store.read(digest)).toString('utf8')) as ImageIndex;
}

/** The signatures stored with the tag `name` (whose descriptor is `entry`), for the digest it names. */
export async function findStoreSignatures(store: OciStore, entry: Descriptor): Promise<FoundSignature[]> {
  const index = await signatureIndex(store, entry);
  const found: FoundSignature[] = [];
  for (const desc of index?.manifests ?? []) {
    if (!(await store.has(desc.digest))) continue;
    const manifest = JSON.parse((await store.read(desc.digest)).toString('utf8')) as ImageManifest;
    if (manifest.artifactType === SIGSTORE_BUNDLE_MEDIA_TYPE) {
      for (const layer of manifest.layers) {
        if (layer.mediaType === SIGSTORE_BUNDLE_MEDIA_TYPE) found.push({ format: 'bundle', where: `store (${desc.digest})`, subject: entry.digest, bundle: await store.read(layer.digest) });
      }
    } else {
      for (const layer of cosignLayers(manifest)) {
        const keyHint = layer.annotations?.[KEY_HINT_ANNOTATION];
        found.push({ format: 'cosign', where: `store (${desc.digest})`, subject: entry.digest, payload: await store.read(layer.digest), signature: layer.signature, ...(keyHint ? { keyHint } : {}) });
      }
    }
  }
  return found;
}
