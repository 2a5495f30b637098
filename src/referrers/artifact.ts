import { digestHex, digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';

/** The OCI empty descriptor's blob (`{}`), the config of an artifact manifest. */
export const EMPTY_JSON = Buffer.from('{}');

/** A manifest and the blobs it needs, ready to store or push. */
export interface Artifact {
  mediaType: string;
  manifest: Buffer;
  digest: Digest;
  blobs: Array<{ digest: Digest; mediaType: string; bytes: Buffer }>;
  /** The descriptor that lists it in a referrers index. */
  descriptor: Descriptor;
}

export function descriptorOf(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.length, ...extra };
}

/** What an artifact manifest carries: one blob, about one subject. */
export interface ArtifactSpec {
  artifactType: string;
  /** The artifact's one layer. */
  blob: Buffer;
  /** The layer's media type; default `artifactType`. */
  mediaType?: string;
  /** The manifest's annotations (also copied into its referrers-index descriptor, as the referrers API does). */
  annotations?: Record<string, string>;
}

/** `org.opencontainers.image.created` as the referrers tools write it: seconds, UTC. */
export function createdAnnotation(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * An OCI artifact (image-spec 1.1's guidance): an image manifest with `artifactType`, the empty
 * config, the blob as its one layer, and `subject` = the image it is about, so a registry lists it
 * among that image's referrers. Sigstore bundles, SBOMs and attestations all take this shape.
 */
export function artifactManifest(spec: ArtifactSpec, subject: Descriptor): Artifact {
  const layer = descriptorOf(spec.mediaType ?? spec.artifactType, spec.blob);
  const config = descriptorOf(MediaType.OciEmpty, EMPTY_JSON);
  const annotations = spec.annotations && Object.keys(spec.annotations).length > 0 ? spec.annotations : undefined;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType: spec.artifactType,
    config,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    ...(annotations ? { annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return {
    mediaType: MediaType.OciManifest,
    manifest: bytes,
    digest: digestOf(bytes),
    blobs: [
      { digest: config.digest, mediaType: config.mediaType, bytes: EMPTY_JSON },
      { digest: layer.digest, mediaType: layer.mediaType, bytes: spec.blob },
    ],
    descriptor: descriptorOf(MediaType.OciManifest, bytes, { artifactType: spec.artifactType, ...(annotations ? { annotations } : {}) }),
  };
}

/** The referrers tag schema's tag for a subject: `sha256-<hex>` (cosign's `.sig` adds a suffix). */
export function referrersTag(subject: Digest): string {
  return `sha256-${digestHex(subject)}`;
}

/** An index listing `manifests`, as the referrers API answers and the referrers tag schema stores. */
export function referrersIndex(manifests: Descriptor[]): Buffer {
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  return Buffer.from(JSON.stringify(index));
}

/** `existing` with `entry` added when no entry has its digest. */
export function withEntry(existing: readonly Descriptor[], entry: Descriptor): Descriptor[] {
  return existing.some((d) => d.digest === entry.digest) ? [...existing] : [...existing, entry];
}
