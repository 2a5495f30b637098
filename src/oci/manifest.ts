import { InvalidManifestError, UnsupportedMediaTypeError } from '../errors.js';
import {
  checkAnnotations,
  checkDescriptor,
  checkOptionalString,
  describeJson,
  isPlainObject,
  type FieldFailure,
} from './descriptor.js';
import { MediaType, isImageManifestMediaType, isIndexMediaType, isSchema1MediaType } from './mediatypes.js';
import type { ImageIndex, ImageManifest } from './types.js';

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; index: ImageIndex }
  | { kind: 'image'; mediaType: string; manifest: ImageManifest }
  /** Handed on untouched: ./schema1.ts parses and converts it. */
  | { kind: 'schema1'; mediaType: string; bytes: Uint8Array };

/** containerd refuses manifests over 4 MiB; so do we, before parsing anything. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Content-Types that say nothing about the manifest's kind (old registries, static file servers). */
const GENERIC_CONTENT_TYPES = new Set(['', 'application/json', 'text/plain', 'application/octet-stream', 'binary/octet-stream']);

/** Config media types a Docker schema2 image manifest may point at. */
const DOCKER_SCHEMA2_CONFIG_TYPES = new Set<string>([MediaType.DockerConfig, MediaType.OciConfig]);

export function isManifestMediaType(mt: string): boolean {
  return isIndexMediaType(mt) || isImageManifestMediaType(mt) || isSchema1MediaType(mt);
}

/** The media type part of a Content-Type header, lowercased; undefined when absent or generic. */
export function manifestContentType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const mt = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return GENERIC_CONTENT_TYPES.has(mt) ? undefined : mt;
}

/**
 * Parses and validates manifest bytes fetched for `subject` (a reference or digest, used in
 * every error message). The media type comes from the body's `mediaType` when present, else
 * from the Content-Type, else from the body's shape.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, subject: string): ParsedManifest {
  const fail: FieldFailure = (field, reason) => {
    throw new InvalidManifestError(subject, `${field}: ${reason}`);
  };
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new InvalidManifestError(subject, `${bytes.byteLength} bytes is over the ${MAX_MANIFEST_BYTES}-byte manifest size limit`);
  }
  const body = parseJsonObject(bytes, subject);
  const mediaType = decideMediaType(body, manifestContentType(contentType), subject, fail);

  if (isSchema1MediaType(mediaType)) {
    if (body.schemaVersion !== 1) fail('schemaVersion', `must be 1 for ${mediaType}, got ${describeJson(body.schemaVersion)}`);
    return { kind: 'schema1', mediaType, bytes };
  }
  if (isIndexMediaType(mediaType)) return { kind: 'index', mediaType, index: checkIndex(body, fail) };
  if (isImageManifestMediaType(mediaType)) return { kind: 'image', mediaType, manifest: checkImageManifest(body, mediaType, fail) };
  throw new UnsupportedMediaTypeError(subject, mediaType);
}

function parseJsonObject(bytes: Uint8Array, subject: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidManifestError(subject, 'body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidManifestError(subject, `body is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(value)) throw new InvalidManifestError(subject, `body must be a JSON object, got ${describeJson(value)}`);
  return value;
}

function decideMediaType(
  body: Record<string, unknown>,
  contentType: string | undefined,
  subject: string,
  fail: FieldFailure,
): string {
  const declared = body.mediaType;
  if (declared !== undefined) {
    if (typeof declared !== 'string' || declared === '') fail('mediaType', `must be a non-empty string, got ${describeJson(declared)}`);
    if (contentType !== undefined && contentType !== declared && isManifestMediaType(contentType) && isManifestMediaType(declared)) {
      throw new InvalidManifestError(subject, `Content-Type ${contentType} does not match the body's mediaType ${declared}`);
    }
    return declared;
  }
  if (contentType !== undefined) return contentType;
  return mediaTypeByShape(body, subject);
}

/** OCI makes `mediaType` optional; without it and without a Content-Type, the fields tell the kind. */
function mediaTypeByShape(body: Record<string, unknown>, subject: string): string {
  if (body.schemaVersion === 1) {
    return Array.isArray(body.signatures) ? MediaType.DockerSchema1SignedManifest : MediaType.DockerSchema1Manifest;
  }
  const hasManifests = 'manifests' in body;
  const hasImageFields = 'config' in body || 'layers' in body;
  if (hasManifests && !hasImageFields) return MediaType.OciIndex;
  if (hasImageFields && !hasManifests) return MediaType.OciManifest;
  throw new InvalidManifestError(
    subject,
    hasManifests
      ? 'cannot tell an index from an image manifest: no mediaType or Content-Type, and both "manifests" and "config"/"layers" are present'
      : 'cannot tell the manifest kind: no mediaType or Content-Type, and neither "manifests" nor "config"/"layers" is present',
  );
}

function checkCommonFields(body: Record<string, unknown>, fail: FieldFailure): void {
  if (body.schemaVersion !== 2) fail('schemaVersion', `must be 2, got ${describeJson(body.schemaVersion)}`);
  checkOptionalString(body.artifactType, 'artifactType', fail);
  checkAnnotations(body.annotations, 'annotations', fail);
  if (body.subject !== undefined) checkDescriptor(body.subject, 'subject', fail);
}

function checkImageManifest(body: Record<string, unknown>, mediaType: string, fail: FieldFailure): ImageManifest {
  checkCommonFields(body, fail);
  if (body.config === undefined) fail('config', 'is required');
  const config = checkDescriptor(body.config, 'config', fail);
  // OCI allows any config type (artifacts); Docker schema2 is always a container image.
  if (mediaType === MediaType.DockerManifest && !DOCKER_SCHEMA2_CONFIG_TYPES.has(config.mediaType)) {
    fail('config.mediaType', `${JSON.stringify(config.mediaType)} is not an image config type for ${mediaType}`);
  }
  if (body.layers === undefined) fail('layers', 'is required');
  if (!Array.isArray(body.layers)) fail('layers', `must be an array, got ${describeJson(body.layers)}`);
  body.layers.forEach((layer, i) => checkDescriptor(layer, `layers[${i}]`, fail));
  return body as unknown as ImageManifest;
}

function checkIndex(body: Record<string, unknown>, fail: FieldFailure): ImageIndex {
  checkCommonFields(body, fail);
  if (body.manifests === undefined) fail('manifests', 'is required');
  if (!Array.isArray(body.manifests)) fail('manifests', `must be an array, got ${describeJson(body.manifests)}`);
  body.manifests.forEach((entry, i) => checkDescriptor(entry, `manifests[${i}]`, fail));
  return body as unknown as ImageIndex;
}
