import type { KeyObject } from 'node:crypto';
import { SignatureError, type SignatureFailure } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { checkImageBundle, type SignatureCheck } from './bundle.js';
import { checkCosignLayer, type SignatureFormat } from './artifact.js';

/** A signature found for a subject digest, in either format, and where it was found. */
export type FoundSignature =
  | { format: 'bundle'; where: string; subject: Digest; bundle: Buffer }
  | { format: 'cosign'; where: string; subject: Digest; payload: Buffer; signature: string; keyHint?: string };

/** A signature that verified: its format and where it was found. */
export interface VerifiedSignature {
  format: SignatureFormat;
  /** Where it was found: `store`, `registry referrers API`, `registry tag sha256-….sig`… */
  where: string;
  /** The digest it signs. */
  subject: Digest;
}

const PRIORITY: Record<Exclude<SignatureFailure, 'missing'>, number> = { 'bad-signature': 3, 'other-digest': 2, 'other-key': 1 };

/**
 * The first of `found` that verifies under `key` for its subject digest; otherwise a
 * SignatureError: `missing` when none was found, else the most telling reason among them.
 * `manifests` gives the bytes of subject manifests (message-signature bundles sign them whole).
 */
export function pickVerified(found: readonly FoundSignature[], key: KeyObject, subjectName: string, manifests: ReadonlyMap<Digest, Buffer> = new Map()): VerifiedSignature {
  if (found.length === 0) throw new SignatureError('missing', subjectName, 'no signature found (neither a Sigstore bundle referrer nor a cosign .sig tag)');
  const failures: Array<{ check: Extract<SignatureCheck, { ok: false }>; sig: FoundSignature }> = [];
  for (const sig of found) {
    const check = sig.format === 'bundle' ? checkImageBundle(sig.bundle, key, sig.subject, manifests.get(sig.subject)) : checkCosignLayer(sig.payload, sig.signature, sig.keyHint, key, sig.subject);
    if (check.ok) return { format: sig.format, where: sig.where, subject: sig.subject };
    failures.push({ check, sig });
  }
  failures.sort((a, b) => PRIORITY[b.check.reason] - PRIORITY[a.check.reason]);
  const worst = failures[0]!;
  const details = failures.map((f) => `${f.sig.format} signature (${f.sig.where}): ${f.check.message}`);
  const others = failures.length > 1 ? ` (${failures.length} signatures checked, none verified)` : '';
  throw new SignatureError(worst.check.reason, subjectName, `${worst.check.message} [${worst.sig.format}, ${worst.sig.where}]${others}`, details);
}
