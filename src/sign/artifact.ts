import { digestOf, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import type { KeyObject } from 'node:crypto';
import { SIGSTORE_BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, verifyRaw, type SignatureCheck } from './bundle.js';
import { publicKeyHint } from './key.js';
import { artifactManifest, createdAnnotation, descriptorOf, referrersTag, type Artifact } from '../referrers/artifact.js';

/** Where a signature is kept: a Sigstore bundle referrer (cosign v3), or the classic cosign `.sig` tag. */
export type SignatureFormat = 'bundle' | 'cosign';

/** The media type of cosign's simple-signing payload layer. */
export const COSIGN_SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The layer annotation holding the base64 signature of the payload. */
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** stratum's own layer annotation: the signing key's hint (publicKeyHint), so "other key" can be told from "altered". */
export const KEY_HINT_ANNOTATION = 'dev.stratum.signature.key-hint';

/**
 * The OCI artifact cosign v3 stores a bundle in: an image manifest with artifactType = the bundle
 * media type, the empty config, the bundle as its one layer, and `subject` = the signed image, so
 * the registry lists it among the image's referrers.
 */
export function bundleArtifact(bundle: Buffer, subject: Descriptor, created = new Date()): Artifact {
  const annotations = {
    'dev.sigstore.bundle.content': 'dsse-envelope',
    'dev.sigstore.bundle.predicateType': COSIGN_SIGN_PREDICATE,
    'org.opencontainers.image.created': createdAnnotation(created),
  };
  return artifactManifest({ artifactType: SIGSTORE_BUNDLE_MEDIA_TYPE, blob: bundle, annotations }, subject);
}

/** cosign's classic signature tag: `sha256-<hex>.sig`. */
export function cosignTag(subject: Digest): string {
  return `${referrersTag(subject)}.sig`;
}

/** cosign's simple-signing payload for an image: what the classic format signs. */
export function simpleSigningPayload(dockerReference: string, digest: Digest): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
      optional: null,
    }),
  );
}

/** One signature layer of a cosign `.sig` manifest. */
export interface CosignLayer {
  payload: Buffer;
  /** base64, as in the annotation. */
  signature: string;
  annotations?: Record<string, string>;
}

/**
 * The manifest cosign tags `sha256-<hex>.sig`: one simple-signing payload layer per signature
 * (`existing` layers first, as another signer left them; then `added`), the signature in its
 * annotation, a config listing the layers as diff_ids (as cosign writes it). `blobs` holds only
 * what `added` brings and the config.
 */
export function cosignArtifact(existing: readonly Descriptor[], added: readonly CosignLayer[]): Artifact {
  const addedDescs = added.map((l) => descriptorOf(COSIGN_SIMPLE_SIGNING_MEDIA_TYPE, l.payload, { annotations: { ...l.annotations, [COSIGN_SIGNATURE_ANNOTATION]: l.signature } }));
  const layerDescs = [...existing, ...addedDescs];
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: layerDescs.map((d) => d.digest) },
      config: {},
    }),
  );
  const configDesc = descriptorOf(MediaType.OciConfig, config);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: layerDescs };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return {
    mediaType: MediaType.OciManifest,
    manifest: bytes,
    digest: digestOf(bytes),
    blobs: [{ digest: configDesc.digest, mediaType: configDesc.mediaType, bytes: config }, ...added.map((l, i) => ({ digest: addedDescs[i]!.digest, mediaType: COSIGN_SIMPLE_SIGNING_MEDIA_TYPE, bytes: l.payload }))],
    descriptor: descriptorOf(MediaType.OciManifest, bytes, { annotations: { 'dev.stratum.signature.format': 'cosign' } }),
  };
}

/** The signature layers of a cosign `.sig` manifest (layers of other media types, or without a signature, are skipped). */
export function cosignLayers(manifest: ImageManifest): Array<Descriptor & { signature: string }> {
  return manifest.layers.flatMap((l) => {
    const sig = l.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    return l.mediaType === COSIGN_SIMPLE_SIGNING_MEDIA_TYPE && typeof sig === 'string' ? [{ ...l, signature: sig }] : [];
  });
}

/**
 * Checks one cosign signature layer: the payload's signature under `key`, then that the payload
 * names `expected` as its docker-manifest-digest.
 */
export function checkCosignLayer(payload: Buffer, signatureBase64: string, keyHint: string | undefined, key: KeyObject, expected: Digest): SignatureCheck {
  if (!verifyRaw(payload, Buffer.from(signatureBase64, 'base64'), key)) {
    const wantHint = publicKeyHint(key);
    if (keyHint !== undefined && keyHint !== wantHint) return { ok: false, reason: 'other-key', message: `signed by another key (hint ${keyHint}, the given key's is ${wantHint})` };
    return { ok: false, reason: 'bad-signature', message: 'the cosign signature does not verify with the given key (altered, or made by another key: the classic format does not name its key)' };
  }
  let signed: unknown;
  try {
    signed = (JSON.parse(payload.toString('utf8')) as { critical?: { image?: { 'docker-manifest-digest'?: unknown } } }).critical?.image?.['docker-manifest-digest'];
  } catch {
    return { ok: false, reason: 'bad-signature', message: 'the signed cosign payload is not JSON' };
  }
  if (signed !== expected) return { ok: false, reason: 'other-digest', message: `the cosign payload signs ${String(signed)}, not ${expected}` };
  return { ok: true };
}
