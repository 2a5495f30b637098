import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { DSSEBundleBuilder, RekorWitness, TSAWitness, type Witness } from '@sigstore/sign';
import { bundleFromJSON, bundleToJSON, type Bundle } from '@sigstore/bundle';
import { Verifier, toSignedEntity, type TrustMaterial } from '@sigstore/verify';
import { digestHex, type Digest } from '../oci/digest.js';
import type { ImageSigner } from './key.js';
import { publicKeyHint } from './key.js';

/** Media type of a Sigstore bundle, and the artifactType of the OCI artifact that carries one. */
export const SIGSTORE_BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
/** The in-toto predicate cosign v3 signs an image with (an empty predicate: the statement's subject is the claim). */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';

/** Transparency-log and timestamp witnesses for keyless signing; none for offline key signing. */
export interface WitnessOptions {
  /** Upload the signature to this Rekor (e.g. https://rekor.sigstore.dev). */
  rekorURL?: string;
  /** Ask this RFC 3161 timestamp authority for a timestamp. */
  tsaServerURL?: string;
}

/**
 * A Sigstore bundle (v0.3, DSSE envelope) that signs the image manifest `digest`: an in-toto
 * statement whose subject is `name` with that sha256, predicate type COSIGN_SIGN_PREDICATE, as
 * `cosign sign --new-bundle-format` writes it. With no witnesses nothing leaves this process.
 */
export async function createImageBundle(signer: ImageSigner, subject: { name: string; digest: Digest }, witnesses: WitnessOptions = {}): Promise<Buffer> {
  const statement = {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: subject.name, digest: { sha256: digestHex(subject.digest) } }],
    predicateType: COSIGN_SIGN_PREDICATE,
    predicate: {},
  };
  const list: Witness[] = [];
  if (witnesses.rekorURL) list.push(new RekorWitness({ rekorBaseURL: witnesses.rekorURL }));
  if (witnesses.tsaServerURL) list.push(new TSAWitness({ tsaBaseURL: witnesses.tsaServerURL }));
  const bundle = await new DSSEBundleBuilder({ signer, witnesses: list }).create({ data: Buffer.from(JSON.stringify(statement)), type: IN_TOTO_PAYLOAD_TYPE });
  return Buffer.from(JSON.stringify(bundleToJSON(bundle)));
}

/** The outcome of checking one signature: ok, or why not (SignatureFailure's names). */
export type SignatureCheck = { ok: true } | { ok: false; reason: 'bad-signature' | 'other-digest' | 'other-key'; message: string };

/**
 * Checks a serialized Sigstore bundle against a public key and the manifest digest it must sign.
 * A DSSE bundle must carry an in-toto statement with that digest among its subjects; a
 * message-signature bundle must sign exactly the manifest (its message digest is the manifest's
 * sha256; `manifest` gives the bytes). Offline: the key is the only trust root, no transparency
 * log or timestamp is required (all thresholds 0).
 */
export function checkImageBundle(bytes: Buffer, key: KeyObject, expected: Digest, manifest?: Buffer): SignatureCheck {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(JSON.parse(bytes.toString('utf8')));
  } catch (err) {
    return { ok: false, reason: 'bad-signature', message: `not a valid Sigstore bundle: ${(err as Error).message}` };
  }
  const wantHint = publicKeyHint(key);
  const material = bundle.verificationMaterial.content;
  if (material.$case !== 'publicKey') return { ok: false, reason: 'other-key', message: `signed with a certificate (${material.$case}), not the given key` };
  const hint = material.publicKey.hint;
  const otherKey = hint !== '' && hint !== wantHint;

  const expectedHex = digestHex(expected);
  if (bundle.content.$case === 'messageSignature') {
    const md = bundle.content.messageSignature.messageDigest;
    const signed = md ? Buffer.from(md.digest).toString('hex') : undefined;
    if (signed !== undefined && signed !== expectedHex) return { ok: false, reason: 'other-digest', message: `the bundle signs sha256:${signed}, not ${expected}` };
    if (manifest === undefined) return { ok: false, reason: 'bad-signature', message: 'a message-signature bundle needs the manifest bytes to verify' };
  }

  const trust: TrustMaterial = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: () => ({ publicKey: key, validFor: () => true }),
  };
  try {
    new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundle, manifest));
  } catch (err) {
    const why = (err as Error).message;
    return otherKey
      ? { ok: false, reason: 'other-key', message: `signed by another key (hint ${hint}, the given key's is ${wantHint})` }
      : { ok: false, reason: 'bad-signature', message: `the signature does not verify with the given key: ${why}` };
  }

  if (bundle.content.$case === 'dsseEnvelope') {
    const envelope = bundle.content.dsseEnvelope;
    if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) return { ok: false, reason: 'bad-signature', message: `the envelope's payload type is ${envelope.payloadType}, not an in-toto statement` };
    let subjects: unknown;
    try {
      subjects = (JSON.parse(Buffer.from(envelope.payload).toString('utf8')) as { subject?: unknown }).subject;
    } catch {
      return { ok: false, reason: 'bad-signature', message: 'the signed statement is not JSON' };
    }
    const digests = Array.isArray(subjects) ? subjects.map((s) => (s as { digest?: { sha256?: unknown } } | null)?.digest?.sha256).filter((d): d is string => typeof d === 'string') : [];
    if (!digests.includes(expectedHex)) return { ok: false, reason: 'other-digest', message: `the statement signs ${digests.map((d) => `sha256:${d}`).join(', ') || 'no digest'}, not ${expected}` };
  }
  return { ok: true };
}

/** Verifies a DER ECDSA/RSA signature over `data` (SHA-256), as cosign's classic format signs its payload. */
export function verifyRaw(data: Buffer, signature: Buffer, key: KeyObject): boolean {
  try {
    return cryptoVerify('sha256', data, key, signature);
  } catch {
    return false;
  }
}
