import { InvalidImageConfigError } from '../errors.js';
import {
  checkDigestField,
  checkObject,
  checkOptionalString,
  checkString,
  describeJson,
  isPlainObject,
  type FieldFailure,
} from './descriptor.js';
import type { ImageConfig, ImageManifest } from './types.js';

const HISTORY_STRING_FIELDS = ['created', 'created_by', 'author', 'comment'] as const;

/**
 * Parses and validates an image config blob (OCI or Docker; they share the fields checked
 * here). `subject` names the blob in errors, e.g. `ubuntu:15.04 config sha256:…`.
 */
export function parseImageConfig(bytes: Uint8Array, subject: string): ImageConfig {
  const fail: FieldFailure = (field, reason) => {
    throw new InvalidImageConfigError(subject, `${field}: ${reason}`);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidImageConfigError(subject, 'body is not valid UTF-8');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new InvalidImageConfigError(subject, `body is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(body)) throw new InvalidImageConfigError(subject, `body must be a JSON object, got ${describeJson(body)}`);

  checkString(body.architecture, 'architecture', fail, { nonEmpty: true });
  checkString(body.os, 'os', fail, { nonEmpty: true });
  checkOptionalString(body.variant, 'variant', fail);
  checkOptionalString(body['os.version'], '["os.version"]', fail);
  checkOptionalString(body.created, 'created', fail);
  checkOptionalString(body.author, 'author', fail);
  // Some old builders write `"config": null`; it means no runtime config.
  if (body.config === null) delete body.config;
  if (body.config !== undefined) checkObject(body.config, 'config', fail);

  const rootfs = checkObject(body.rootfs, 'rootfs', fail);
  if (rootfs.type !== 'layers') fail('rootfs.type', `must be "layers", got ${describeJson(rootfs.type)}`);
  if (!Array.isArray(rootfs.diff_ids)) fail('rootfs.diff_ids', `must be an array, got ${describeJson(rootfs.diff_ids)}`);
  rootfs.diff_ids.forEach((d, i) => checkDigestField(d, `rootfs.diff_ids[${i}]`, fail));

  if (body.history !== undefined) {
    if (!Array.isArray(body.history)) fail('history', `must be an array, got ${describeJson(body.history)}`);
    body.history.forEach((entry, i) => {
      const h = checkObject(entry, `history[${i}]`, fail);
      for (const field of HISTORY_STRING_FIELDS) checkOptionalString(h[field], `history[${i}].${field}`, fail);
      if (h.empty_layer !== undefined && typeof h.empty_layer !== 'boolean') {
        fail(`history[${i}].empty_layer`, `must be a boolean, got ${describeJson(h.empty_layer)}`);
      }
    });
  }
  return body as ImageConfig;
}

/** History steps that made a layer (those not marked `empty_layer: true`). */
export function nonEmptyHistoryCount(config: ImageConfig): number {
  return (config.history ?? []).filter((h) => h.empty_layer !== true).length;
}

/**
 * Cross-checks a config against the manifest that points at it. A diff_ids count that differs
 * from the layer count makes the image unusable and throws; a history that disagrees only
 * spoils `history` output, so it comes back as a list of problems for the caller to warn about.
 */
export function checkConfigMatchesManifest(config: ImageConfig, manifest: ImageManifest, subject: string): string[] {
  const layers = manifest.layers.length;
  const diffIds = config.rootfs.diff_ids.length;
  if (diffIds !== layers) {
    throw new InvalidImageConfigError(subject, `rootfs.diff_ids has ${diffIds} entries but the manifest has ${layers} layers`);
  }
  const problems: string[] = [];
  if (config.history !== undefined) {
    const made = nonEmptyHistoryCount(config);
    if (made !== layers) {
      problems.push(
        `${subject}: history has ${made} entries that are not empty_layer (of ${config.history.length}) but the manifest has ${layers} layers`,
      );
    }
  }
  return problems;
}
