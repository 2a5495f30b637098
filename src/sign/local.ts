import type { OciStore } from '../content/store.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { storedReferrers } from '../referrers/local.js';
import { SIGSTORE_BUNDLE_MEDIA_TYPE } from './bundle.js';
import { cosignLayers, KEY_HINT_ANNOTATION } from './artifact.js';
import type { FoundSignature } from './found.js';

/** The signatures stored with the tag whose descriptor is `entry`, for the digest it names. */
export async function findStoreSignatures(store: OciStore, entry: Descriptor): Promise<FoundSignature[]> {
  const found: FoundSignature[] = [];
  for (const desc of await storedReferrers(store, entry)) {
    const manifest = JSON.parse((await store.read(desc.digest)).toString('utf8')) as ImageManifest;
    if (manifest.artifactType === SIGSTORE_BUNDLE_MEDIA_TYPE) {
      for (const layer of manifest.layers) {
        if (layer.mediaType === SIGSTORE_BUNDLE_MEDIA_TYPE) found.push({ format: 'bundle', where: `store (${desc.digest})`, subject: entry.digest, bundle: await store.read(layer.digest) });
      }
    } else if (manifest.artifactType === undefined && manifest.subject === undefined) {
      // A cosign `.sig` manifest (no artifactType, no subject); other attachments sign nothing.
      for (const layer of cosignLayers(manifest)) {
        const keyHint = layer.annotations?.[KEY_HINT_ANNOTATION];
        found.push({ format: 'cosign', where: `store (${desc.digest})`, subject: entry.digest, payload: await store.read(layer.digest), signature: layer.signature, ...(keyHint ? { keyHint } : {}) });
      }
    }
  }
  return found;
}
