import { InvalidDigestError } from '../errors.js';
import { parseDigest } from './digest.js';
import type { Descriptor, Platform } from './types.js';

/**
 * Field checks shared by manifest, index and config parsing. Each takes the JSON value,
 * the path of the field (`layers[2]`) for the message, and `fail`, which throws the
 * caller's own error type.
 */
export type FieldFailure = (field: string, reason: string) => never;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}

export function checkObject(value: unknown, field: string, fail: FieldFailure): Record<string, unknown> {
  if (!isPlainObject(value)) fail(field, `must be an object, got ${describeJson(value)}`);
  return value;
}

export function checkString(value: unknown, field: string, fail: FieldFailure, { nonEmpty = false } = {}): string {
  if (typeof value !== 'string') fail(field, `must be a string, got ${describeJson(value)}`);
  if (nonEmpty && value === '') fail(field, 'must not be empty');
  return value;
}

export function checkOptionalString(value: unknown, field: string, fail: FieldFailure): string | undefined {
  return value === undefined ? undefined : checkString(value, field, fail);
}

export function checkStringArray(value: unknown, field: string, fail: FieldFailure): string[] {
  if (!Array.isArray(value)) fail(field, `must be an array, got ${describeJson(value)}`);
  value.forEach((item, i) => checkString(item, `${field}[${i}]`, fail));
  return value as string[];
}

export function checkAnnotations(value: unknown, field: string, fail: FieldFailure): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const obj = checkObject(value, field, fail);
  for (const [key, v] of Object.entries(obj)) checkString(v, `${field}[${JSON.stringify(key)}]`, fail);
  return obj as Record<string, string>;
}

export function checkDigestField(value: unknown, field: string, fail: FieldFailure): Descriptor['digest'] {
  if (typeof value !== 'string') fail(field, `must be a digest string, got ${describeJson(value)}`);
  try {
    return parseDigest(value);
  } catch (err) {
    if (err instanceof InvalidDigestError) fail(field, err.message);
    throw err;
  }
}

export function checkSize(value: unknown, field: string, fail: FieldFailure): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(field, `must be a non-negative integer, got ${describeJson(value)}`);
  }
  return value;
}

export function checkPlatformField(value: unknown, field: string, fail: FieldFailure): Platform {
  const obj = checkObject(value, field, fail);
  checkString(obj.os, `${field}.os`, fail, { nonEmpty: true });
  checkString(obj.architecture, `${field}.architecture`, fail, { nonEmpty: true });
  checkOptionalString(obj.variant, `${field}.variant`, fail);
  checkOptionalString(obj['os.version'], `${field}["os.version"]`, fail);
  if (obj['os.features'] !== undefined) checkStringArray(obj['os.features'], `${field}["os.features"]`, fail);
  return obj as unknown as Platform;
}

/** Checks an OCI descriptor: mediaType, digest and size are required; urls, annotations, platform optional. */
export function checkDescriptor(value: unknown, field: string, fail: FieldFailure): Descriptor {
  const obj = checkObject(value, field, fail);
  checkString(obj.mediaType, `${field}.mediaType`, fail, { nonEmpty: true });
  checkDigestField(obj.digest, `${field}.digest`, fail);
  checkSize(obj.size, `${field}.size`, fail);
  if (obj.urls !== undefined) checkStringArray(obj.urls, `${field}.urls`, fail);
  checkAnnotations(obj.annotations, `${field}.annotations`, fail);
  if (obj.platform !== undefined) checkPlatformField(obj.platform, `${field}.platform`, fail);
  checkOptionalString(obj.artifactType, `${field}.artifactType`, fail);
  return obj as unknown as Descriptor;
}
