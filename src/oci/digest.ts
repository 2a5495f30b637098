import { createHash, type Hash } from 'node:crypto';
import { InvalidDigestError } from '../errors.js';

/** A validated content digest such as `sha256:<64 lowercase hex>`. */
export type Digest = string & { readonly __digest: unique symbol };
export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/**
 * Validates a digest string before it is used as a file name or URL part.
 * Only sha256 and sha512 with lowercase hex of the exact length are accepted.
 */
export function parseDigest(value: string): Digest {
  if (typeof value !== 'string') throw new InvalidDigestError(String(value), 'not a string');
  const colon = value.indexOf(':');
  if (colon < 0) throw new InvalidDigestError(value, 'missing "<algorithm>:" prefix');
  const alg = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (alg !== 'sha256' && alg !== 'sha512') throw new InvalidDigestError(value, `unsupported algorithm ${JSON.stringify(alg)}`);
  const want = HEX_LENGTH[alg];
  if (hex.length !== want) throw new InvalidDigestError(value, `${alg} needs ${want} hex characters, got ${hex.length}`);
  if (!/^[0-9a-f]+$/.test(hex)) throw new InvalidDigestError(value, 'encoded part must be lowercase hex');
  return value as Digest;
}

export function isDigest(value: unknown): value is Digest {
  try {
    parseDigest(value as string);
    return true;
  } catch {
    return false;
  }
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** The first 12 hex characters, as docker shows layer and image ids. */
export function shortDigest(digest: Digest | string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** Incremental digester for streamed content. */
export class Digester {
  private readonly hash: Hash;
  private bytes = 0;
  constructor(readonly algorithm: DigestAlgorithm = 'sha256') {
    this.hash = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }
  get size(): number {
    return this.bytes;
  }
  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}` as Digest;
  }
}

/** The digest of the empty gzipped tar that schema1 images use for their throwaway layers. */
export const EMPTY_GZIP_LAYER_DIGEST = 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4' as Digest;

/**
 * chainID(L1) = diffID(L1); chainID(L1..n) = sha256(chainID(L1..n-1) + " " + diffID(Ln)).
 * Returns one chainID per layer.
 */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const diffId of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffId : digestOf(`${prev} ${diffId}`));
  }
  return out;
}
