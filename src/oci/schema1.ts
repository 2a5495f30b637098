import { createHash, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { InvalidArgumentError, InvalidManifestError } from '../errors.js';
import { digestOf, EMPTY_GZIP_LAYER_DIGEST, parseDigest, type Digest } from './digest.js';
import { MediaType } from './mediatypes.js';
import type { Descriptor, HistoryEntry, ImageConfig, ImageManifest } from './types.js';

/**
 * Docker image manifest v2, schema 1 (docker/distribution manifest/schema1): `fsLayers` and
 * `history` are newest-first and pair up by index; each history entry's v1Compatibility is the
 * JSON config of that build step. Signed manifests are libtrust "pretty JWS": the payload JSON
 * with a `signatures` key spliced in before its closing brace.
 */
export interface Schema1Manifest {
  schemaVersion: 1;
  name: string;
  tag: string;
  architecture: string;
  fsLayers: { blobSum: Digest }[];
  history: { v1Compatibility: string }[];
}

/** The fields of a v1Compatibility entry that stratum reads; the rest is carried along as-is. */
export interface V1Compatibility {
  id: string;
  parent?: string;
  created?: string;
  author?: string;
  comment?: string;
  throwaway?: boolean;
  Size?: number;
  architecture?: string;
  os?: string;
  container_config?: { Cmd?: string[] | null; [k: string]: unknown };
  config?: Record<string, unknown>;
  [extra: string]: unknown;
}

/** One schema1 build step, oldest first. */
export interface Schema1Layer {
  blobSum: Digest;
  /** A throwaway step (or the empty gzip blob in older images): no filesystem change, no diff_id. */
  empty: boolean;
  v1: V1Compatibility;
}

/** A libtrust JWS signature block as it appears in the `signatures` array. */
interface JwsSignature {
  header: { jwk?: Record<string, unknown>; alg: string; x5c?: string[] };
  signature: string;
  protected: string;
}

const MAX_SCHEMA1_BYTES = 8 * 1024 * 1024;

/**
 * Parses and validates a schema1 manifest, signed or not. A signed manifest is read from its
 * payload (what its digest covers), not from the raw bytes, so bytes outside the signed part
 * cannot change what stratum sees.
 */
export function parseSchema1(bytes: Uint8Array, subject: string): Schema1Manifest {
  const payload = schema1Payload(bytes, subject);
  const doc = parseJson(payload, subject, 'manifest');
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InvalidManifestError(subject, 'schema1 manifest is not a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion !== 1) throw new InvalidManifestError(subject, `schemaVersion must be 1, got ${JSON.stringify(m.schemaVersion)}`);
  for (const field of ['name', 'tag', 'architecture'] as const) {
    if (typeof m[field] !== 'string' || m[field] === '') throw new InvalidManifestError(subject, `${field} must be a non-empty string`);
  }
  if (!Array.isArray(m.fsLayers) || m.fsLayers.length === 0) throw new InvalidManifestError(subject, 'fsLayers must be a non-empty array');
  if (!Array.isArray(m.history) || m.history.length === 0) throw new InvalidManifestError(subject, 'history must be a non-empty array');
  if (m.fsLayers.length !== m.history.length) {
    throw new InvalidManifestError(subject, `fsLayers has ${m.fsLayers.length} entries but history has ${m.history.length}`);
  }
  const fsLayers = m.fsLayers.map((l: unknown, i: number) => {
    const blobSum = (l as { blobSum?: unknown } | null)?.blobSum;
    if (typeof blobSum !== 'string') throw new InvalidManifestError(subject, `fsLayers[${i}].blobSum must be a string`);
    try {
      return { blobSum: parseDigest(blobSum) };
    } catch (err) {
      throw new InvalidManifestError(subject, `fsLayers[${i}].blobSum: ${(err as Error).message}`);
    }
  });
  const history = m.history.map((h: unknown, i: number) => {
    const v1 = (h as { v1Compatibility?: unknown } | null)?.v1Compatibility;
    if (typeof v1 !== 'string') throw new InvalidManifestError(subject, `history[${i}].v1Compatibility must be a string`);
    parseV1Compatibility(v1, subject, i);
    return { v1Compatibility: v1 };
  });
  return {
    schemaVersion: 1,
    name: m.name as string,
    tag: m.tag as string,
    architecture: m.architecture as string,
    fsLayers,
    history,
  };
}

function parseV1Compatibility(text: string, subject: string, index: number): V1Compatibility {
  const v = parseJson(Buffer.from(text), subject, `history[${index}].v1Compatibility`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InvalidManifestError(subject, `history[${index}].v1Compatibility is not a JSON object`);
  }
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'string' || o.id === '') throw new InvalidManifestError(subject, `history[${index}].v1Compatibility has no id`);
  if (o.throwaway !== undefined && typeof o.throwaway !== 'boolean') {
    throw new InvalidManifestError(subject, `history[${index}].v1Compatibility.throwaway must be a boolean`);
  }
  const cmd = (o.container_config as { Cmd?: unknown } | undefined)?.Cmd;
  if (cmd !== undefined && cmd !== null && !(Array.isArray(cmd) && cmd.every((c) => typeof c === 'string'))) {
    throw new InvalidManifestError(subject, `history[${index}].v1Compatibility.container_config.Cmd must be an array of strings`);
  }
  return o as V1Compatibility;
}

function parseJson(bytes: Uint8Array, subject: string, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new InvalidManifestError(subject, `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * The signed part of a schema1 manifest (libtrust ParsePrettySignature): for a manifest with
 * signatures, bytes[0:formatLength] + base64url-decoded formatTail from the protected headers,
 * which must all agree; for an unsigned one, the bytes themselves.
 */
export function schema1Payload(bytes: Uint8Array, subject = 'schema1 manifest'): Buffer {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length > MAX_SCHEMA1_BYTES) throw new InvalidManifestError(subject, `manifest is ${buf.length} bytes, over the ${MAX_SCHEMA1_BYTES} byte limit`);
  const doc = parseJson(buf, subject, 'manifest');
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InvalidManifestError(subject, 'schema1 manifest is not a JSON object');
  const signatures = (doc as { signatures?: unknown }).signatures;
  if (signatures === undefined) return buf;
  if (!Array.isArray(signatures) || signatures.length === 0) throw new InvalidManifestError(subject, 'signatures must be a non-empty array');
  let formatLength: number | undefined;
  let formatTail: string | undefined;
  signatures.forEach((sig: unknown, i: number) => {
    const prot = (sig as { protected?: unknown } | null)?.protected;
    if (typeof prot !== 'string') throw new InvalidManifestError(subject, `signatures[${i}].protected must be a string`);
    const header = parseJson(base64urlDecode(prot, subject, `signatures[${i}].protected`), subject, `signatures[${i}].protected`) as Record<string, unknown> | null;
    const len = header?.formatLength;
    const tail = header?.formatTail;
    if (typeof len !== 'number' || !Number.isInteger(len) || len < 0) throw new InvalidManifestError(subject, `signatures[${i}].protected.formatLength is missing or not an integer`);
    if (typeof tail !== 'string') throw new InvalidManifestError(subject, `signatures[${i}].protected.formatTail is missing`);
    if (formatLength === undefined) {
      formatLength = len;
      formatTail = tail;
    } else if (formatLength !== len || formatTail !== tail) {
      throw new InvalidManifestError(subject, `signatures[${i}].protected disagrees with signatures[0] on formatLength/formatTail`);
    }
  });
  if (formatLength! > buf.length) throw new InvalidManifestError(subject, `signatures[0].protected.formatLength ${formatLength} exceeds the manifest's ${buf.length} bytes`);
  return Buffer.concat([buf.subarray(0, formatLength), base64urlDecode(formatTail!, subject, 'signatures[0].protected.formatTail')]);
}

/** The digest a registry addresses a schema1 manifest by: sha256 of schema1Payload(bytes). */
export function schema1PayloadDigest(bytes: Uint8Array, subject = 'schema1 manifest'): Digest {
  return digestOf(schema1Payload(bytes, subject));
}

/** True when the manifest carries a `signatures` array (prettyjws). */
export function isSignedSchema1(bytes: Uint8Array): boolean {
  try {
    const doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as { signatures?: unknown };
    return Array.isArray(doc?.signatures) && doc.signatures.length > 0;
  } catch {
    return false;
  }
}

/**
 * Checks every JWS signature of a signed schema1 manifest against its embedded JWK (ES256 only,
 * what docker and distribution produce), as distribution's schema1.Verify does on PUT.
 * Throws InvalidManifestError naming the failing signature.
 */
export function verifySchema1Signatures(bytes: Uint8Array, subject = 'schema1 manifest'): void {
  const payload = schema1Payload(bytes, subject);
  const doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as { signatures?: JwsSignature[] };
  if (!Array.isArray(doc.signatures)) throw new InvalidManifestError(subject, 'manifest is not signed');
  const encodedPayload = payload.toString('base64url');
  doc.signatures.forEach((sig, i) => {
    const where = `signatures[${i}]`;
    const jwk = sig?.header?.jwk;
    if (!jwk || jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new InvalidManifestError(subject, `${where}: only EC P-256 JWK keys are supported`);
    if (sig.header.alg !== 'ES256') throw new InvalidManifestError(subject, `${where}: alg ${JSON.stringify(sig.header.alg)} is not ES256`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x as string, y: jwk.y as string }, format: 'jwk' });
    } catch (err) {
      throw new InvalidManifestError(subject, `${where}.header.jwk is not a valid P-256 key: ${(err as Error).message}`);
    }
    if (jwk.kid !== undefined && jwk.kid !== libtrustKeyId(key)) throw new InvalidManifestError(subject, `${where}.header.jwk.kid does not match the key`);
    const raw = base64urlDecode(String(sig.signature), subject, `${where}.signature`);
    if (raw.length !== 64) throw new InvalidManifestError(subject, `${where}.signature is ${raw.length} bytes, ES256 needs 64`);
    const input = Buffer.from(`${sig.protected}.${encodedPayload}`);
    if (!cryptoVerify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, raw)) {
      throw new InvalidManifestError(subject, `${where} does not verify against the payload`);
    }
  });
}

/**
 * Signs a schema1 manifest the way docker/distribution's schema1.Sign did with libtrust:
 * payload = JSON with 3-space indent (Go's HTML-safe escaping), one ES256 signature whose
 * protected header records formatLength/formatTail/time, spliced in as the last key.
 * Any `signatures` key on the input is dropped first.
 */
export function signSchema1(manifest: object, privateKey: KeyObject, opts: { time?: Date } = {}): Buffer {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InvalidArgumentError('signSchema1 needs an EC P-256 private key');
  }
  const { signatures: _dropped, ...unsigned } = manifest as Record<string, unknown>;
  const payload = Buffer.from(goJsonIndent(unsigned, '', '   '));
  // libtrust NewJSONSignature: the format tail is the closing brace and the whitespace before it.
  const closeIndex = lastNonSpace(payload, payload.length);
  const formatLength = lastNonSpace(payload, closeIndex) + 1;
  const formatTail = payload.subarray(formatLength);
  const time = (opts.time ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  // Go marshals a map with sorted keys and no spaces.
  const protectedHeader = Buffer.from(JSON.stringify({ formatLength, formatTail: formatTail.toString('base64url'), time })).toString('base64url');
  const signingInput = Buffer.from(`${protectedHeader}.${payload.toString('base64url')}`);
  const signature = cryptoSign('sha256', signingInput, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const pub = createPublicKey(privateKey).export({ format: 'jwk' });
  const block: JwsSignature = {
    header: { jwk: { crv: 'P-256', kid: libtrustKeyId(privateKey), kty: 'EC', x: pub.x, y: pub.y }, alg: 'ES256' },
    signature: signature.toString('base64url'),
    protected: protectedHeader,
  };
  const indent = '   ';
  return Buffer.concat([
    payload.subarray(0, formatLength),
    Buffer.from(`,\n${indent}"signatures": ${goJsonIndent([block], indent, indent)}\n}`),
  ]);
}

function lastNonSpace(buf: Buffer, before: number): number {
  let i = before - 1;
  while (i >= 0 && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i--;
  if (i < 0) throw new InvalidArgumentError('schema1 payload is empty');
  return i;
}

/** Go's json.MarshalIndent output for plain JSON values: same layout, and <, >, & escaped. */
function goJsonIndent(value: unknown, prefix: string, indent: string): string {
  const text = JSON.stringify(value, null, indent)
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return prefix === '' ? text : text.replace(/\n/g, `\n${prefix}`);
}

/**
 * libtrust's key id (keyIDFromCryptoKey): sha256 of the DER (PKIX SubjectPublicKeyInfo) public
 * key, the first 240 bits in base32, in 12 groups of 4 joined by ':'. distribution rejects a
 * JWK whose kid does not match its key.
 */
export function libtrustKeyId(key: KeyObject): string {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  const der = pub.export({ format: 'der', type: 'spki' });
  const hash = createHash('sha256').update(der).digest();
  return base32(hash.subarray(0, 30)).match(/.{4}/g)!.join(':');
}

function base32(data: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const byte of data) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(acc << (5 - bits)) & 31];
  return out;
}

function base64urlDecode(s: string, subject: string, what: string): Buffer {
  // Buffer's decoder skips invalid characters silently; a JWS field must be strict.
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new InvalidManifestError(subject, `${what} is not valid base64url`);
  return Buffer.from(s, 'base64url');
}

/** Build steps oldest first, each with its blobSum and whether it is an empty (throwaway) layer. */
export function schema1Layers(m: Schema1Manifest): Schema1Layer[] {
  const out: Schema1Layer[] = [];
  for (let i = m.history.length - 1; i >= 0; i--) {
    const v1 = JSON.parse(m.history[i]!.v1Compatibility) as V1Compatibility;
    const blobSum = m.fsLayers[i]!.blobSum;
    out.push({ blobSum, empty: v1.throwaway === true || blobSum === EMPTY_GZIP_LAYER_DIGEST, v1 });
  }
  return out;
}

/**
 * The blobs a pull fetches, oldest first, each once: every distinct blobSum, the empty gzip
 * layer included once (docker shows it as `a3ed95caeb02: Pull complete`), so the stored
 * original manifest's references are all present.
 */
export function schema1Blobs(m: Schema1Manifest): Digest[] {
  return [...new Set(schema1Layers(m).map((l) => l.blobSum))];
}

/** The blobs whose uncompressed digests (diff_ids) conversion needs: distinct non-empty blobSums, oldest first. */
export function schema1NonEmptyBlobs(m: Schema1Manifest): Digest[] {
  return [...new Set(schema1Layers(m).filter((l) => !l.empty).map((l) => l.blobSum))];
}

/** v1Compatibility keys that describe the v1 layer graph, not the image (docker's MakeConfigFromV1Config drops them too). */
const V1_ONLY_KEYS = ['id', 'parent', 'Size', 'size', 'parent_id', 'layer_id', 'throwaway', 'container'];

export interface ConvertedSchema1 {
  config: ImageConfig;
  configBytes: Buffer;
  manifest: ImageManifest;
  manifestBytes: Buffer;
}

/**
 * Converts a schema1 manifest to an OCI image config + manifest, as containerd's schema1
 * converter does: the newest v1Compatibility becomes the config, every step becomes a history
 * entry (empty ones flagged empty_layer), and each non-empty step contributes its layer and
 * diff_id, oldest first. `diffIds` and `layerSizes` are keyed by blobSum; `layerMediaType`
 * says whether each fetched blob turned out gzip or plain tar.
 */
export function convertSchema1(
  m: Schema1Manifest,
  diffIds: Map<Digest, Digest>,
  layerSizes: Map<Digest, number>,
  layerMediaType: (blobSum: Digest) => string,
  subject = `schema1 manifest ${m.name}:${m.tag}`,
): ConvertedSchema1 {
  const steps = schema1Layers(m);
  const history: HistoryEntry[] = [];
  const diff_ids: Digest[] = [];
  const layers: Descriptor[] = [];
  for (const step of steps) {
    const entry: HistoryEntry = {};
    if (typeof step.v1.created === 'string') entry.created = step.v1.created;
    if (typeof step.v1.author === 'string' && step.v1.author !== '') entry.author = step.v1.author;
    const cmd = step.v1.container_config?.Cmd;
    if (Array.isArray(cmd) && cmd.length > 0) entry.created_by = cmd.join(' ');
    if (typeof step.v1.comment === 'string' && step.v1.comment !== '') entry.comment = step.v1.comment;
    if (step.empty) {
      entry.empty_layer = true;
    } else {
      const diffId = diffIds.get(step.blobSum);
      if (diffId === undefined) throw new InvalidArgumentError(`${subject}: no diff_id for layer ${step.blobSum}`);
      const size = layerSizes.get(step.blobSum);
      if (size === undefined) throw new InvalidArgumentError(`${subject}: no size for layer ${step.blobSum}`);
      diff_ids.push(parseDigest(diffId));
      layers.push({ mediaType: layerMediaType(step.blobSum), digest: step.blobSum, size });
    }
    history.push(entry);
  }

  const newest = steps[steps.length - 1]!.v1;
  const base: Record<string, unknown> = { ...newest };
  for (const key of V1_ONLY_KEYS) delete base[key];
  const config: ImageConfig = {
    ...base,
    architecture: typeof newest.architecture === 'string' && newest.architecture !== '' ? newest.architecture : m.architecture,
    os: typeof newest.os === 'string' && newest.os !== '' ? newest.os : 'linux',
    rootfs: { type: 'layers', diff_ids },
    history,
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: digestOf(configBytes), size: configBytes.length },
    layers,
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { config, configBytes, manifest, manifestBytes };
}
