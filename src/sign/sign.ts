import type { KeyObject } from 'node:crypto';
import { InternalError } from '@sigstore/sign';
import type { OciStore } from '../content/store.js';
import { InvalidArgumentError, KeylessUnavailableError, NetworkError, SignatureError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { SOURCE_DIGEST_ANNOTATION } from '../image/annotations.js';
import { bundleArtifact, KEY_HINT_ANNOTATION, simpleSigningPayload, cosignArtifact, type SignatureFormat } from './artifact.js';
import { createImageBundle } from './bundle.js';
import { pickVerified, type FoundSignature, type VerifiedSignature } from './found.js';
import { readPublicKey, type ImageSigner } from './key.js';
import { findStoreSignatures } from './local.js';
import { findRegistrySignatures, pushCosignSignature } from './remote.js';
import { attachToStore, findStored } from '../referrers/local.js';
import { pushReferrer, type RegistryAttachment } from '../referrers/remote.js';

export interface SignContext {
  store: OciStore;
  client: RegistryClient;
}

export interface SignOptions {
  /** `bundle` (default): a Sigstore bundle as an OCI referrer, cosign v3's layout; `cosign`: the classic `sha256-<hex>.sig` tag. */
  format?: SignatureFormat;
  /**
   * Also upload the signature to the image's registry (`true`: the repository of `ref`; a string:
   * that repository). An image that is not in the store is signed at its registry, so this is implied.
   */
  push?: boolean | string;
  /** Keyless only: the Rekor to log the signature in (the bundle then carries the entry). */
  rekorURL?: string;
  /** Keyless only: an RFC 3161 timestamp authority. */
  tsaServerURL?: string;
  signal?: AbortSignal;
}

export interface SignResult {
  /** The image's name (stored tag, or the registry reference). */
  name: string;
  /** What was signed: the manifest (or index) descriptor the name points at. */
  subject: Descriptor;
  format: SignatureFormat;
  /** The digest of the signature artifact's manifest (the bundle referrer, or the `.sig` manifest). */
  signature: Digest;
  /** Kept in the store with the image. */
  stored: boolean;
  /** Where it went at the registry, when pushed. */
  pushed?: { repository: string; via: RegistryAttachment };
}

export interface VerifyImageOptions {
  /** The public key (PEM, or a KeyObject) the signature must verify with. */
  key: string | Buffer | KeyObject;
  /**
   * Where to look: `store` (signatures kept with the stored image), `registry` (what the
   * registry serves for the reference), `auto` (default): the store's when the image is stored
   * (then the registry's for the stored digest when the store holds none), else the registry.
   */
  source?: 'auto' | 'store' | 'registry';
  signal?: AbortSignal;
}

export interface VerifyImageResult extends VerifiedSignature {
  /** The image that verified. */
  name: string;
  /** `store` or `registry`: where the image's digest came from. */
  source: 'store' | 'registry';
}

/**
 * Signs an image's manifest digest with `signer` (see sign() on the Engine). A stored image is
 * signed as stored and its signature kept with it; `push` uploads it too. An image not in the
 * store is resolved at its registry and signed there.
 */
export async function signImage(ctx: SignContext, ref: string, signer: ImageSigner, options: SignOptions = {}): Promise<SignResult> {
  try {
    return await signWith(ctx, ref, signer, options);
  } catch (err) {
    // @sigstore/sign's failures (Fulcio, Rekor, a timestamp authority unreachable or refusing) as a stratum error.
    if (err instanceof InternalError) throw new KeylessUnavailableError(`cannot sign ${ref}${options.rekorURL ? ` (Rekor at ${options.rekorURL})` : ''}: ${err.message} (${err.code})${err.cause ? `: ${(err.cause as Error).message ?? String(err.cause)}` : ''}`, { cause: err });
    throw err;
  }
}

async function signWith(ctx: SignContext, ref: string, signer: ImageSigner, options: SignOptions): Promise<SignResult> {
  const format = options.format ?? 'bundle';
  if (format !== 'bundle' && format !== 'cosign') throw new InvalidArgumentError(`unknown signature format ${JSON.stringify(format)} (bundle or cosign)`);
  const stored = await findStored(ctx.store, ref);
  let name: string;
  let subject: Descriptor;
  let repo: Reference | undefined;
  if (stored) {
    name = stored.name;
    subject = stored.entry;
    if (options.push) repo = parseReference(typeof options.push === 'string' ? options.push : stored.name);
  } else {
    repo = parseReference(ref);
    const resolved = await ctx.client.resolve(repo);
    subject = { mediaType: resolved.descriptor.mediaType, digest: resolved.descriptor.digest, size: resolved.descriptor.size };
    name = repo.toString();
    if (typeof options.push === 'string') repo = parseReference(options.push);
  }
  const identity = (repo ?? parseReference(name)).name;
  const witnesses = { ...(options.rekorURL ? { rekorURL: options.rekorURL } : {}), ...(options.tsaServerURL ? { tsaServerURL: options.tsaServerURL } : {}) };
  const { signal } = options;

  if (format === 'bundle') {
    const bundle = await createImageBundle(signer, { name: identity, digest: subject.digest }, witnesses);
    const artifact = bundleArtifact(bundle, subject);
    if (stored) await attachToStore(ctx.store, subject.digest, artifact);
    const via = repo ? await pushReferrer(ctx.client, repo, subject.digest, artifact, signal) : undefined;
    return { name, subject, format, signature: artifact.digest, stored: stored !== undefined, ...(repo && via ? { pushed: { repository: repo.name, via } } : {}) };
  }

  const payload = simpleSigningPayload(identity, subject.digest);
  const signed = await signer.sign(payload);
  const hint = signed.key.$case === 'publicKey' ? signed.key.hint : undefined;
  const layer = { payload, signature: signed.signature.toString('base64'), ...(hint ? { annotations: { [KEY_HINT_ANNOTATION]: hint } } : {}) };
  let artifact = cosignArtifact([], [layer]);
  if (stored) await attachToStore(ctx.store, subject.digest, artifact);
  if (repo) artifact = (await pushCosignSignature(ctx.client, repo, subject.digest, layer, signal)).artifact;
  return { name, subject, format, signature: artifact.digest, stored: stored !== undefined, ...(repo ? { pushed: { repository: repo.name, via: 'cosign-tag' as const } } : {}) };
}

/**
 * Verifies that an image is signed by `key` (see verifyImage() on the Engine): finds its
 * signatures in both formats, in the store or at the registry, and checks each against the
 * manifest digest. Throws SignatureError (missing, bad-signature, other-digest, other-key).
 */
export async function verifyImageSignature(ctx: SignContext, ref: string, options: VerifyImageOptions): Promise<VerifyImageResult> {
  const key = typeof options.key === 'string' || Buffer.isBuffer(options.key) ? readPublicKey(options.key) : options.key;
  const source = options.source ?? 'auto';
  const stored = source === 'registry' ? undefined : await findStored(ctx.store, ref);
  if (source === 'store' && !stored) throw new SignatureError('missing', ref, 'the image is not in the store');
  const { signal } = options;

  if (stored) {
    const subjectName = `${stored.name}@${stored.entry.digest}`;
    const manifests = new Map<Digest, Buffer>([[stored.entry.digest, await ctx.store.read(stored.entry.digest)]]);
    let found: FoundSignature[] = await findStoreSignatures(ctx.store, stored.entry);
    if (found.length === 0 && source === 'auto') {
      // Signed at the registry: look there by the stored digests (the manifest, and the index it was pulled through).
      const repo = parseReference(stored.name);
      const digests = [stored.entry.digest];
      const from = stored.entry.annotations?.[SOURCE_DIGEST_ANNOTATION];
      if (isDigest(from) && from !== stored.entry.digest) digests.push(from);
      try {
        for (const d of digests) found = found.concat(await findRegistrySignatures(ctx.client, repo, d, signal));
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err;
        throw new SignatureError('missing', subjectName, `no signature in the store, and its registry could not be asked: ${err.message}`);
      }
    }
    return { ...pickVerified(found, key, subjectName, manifests), name: stored.name, source: 'store' };
  }

  const repo = parseReference(ref);
  const resolved = await ctx.client.resolve(repo);
  return { ...(await verifyResolved(ctx.client, repo, resolved.descriptor, resolved.bytes, key, signal)), name: repo.toString(), source: 'registry' };
}

/**
 * Checks the signatures a registry holds for a manifest already fetched (and digest-checked),
 * e.g. by a pull between resolving and fetching layers.
 */
export async function verifyResolved(client: RegistryClient, repo: Reference, descriptor: Descriptor, bytes: Buffer, key: KeyObject | string | Buffer, signal?: AbortSignal): Promise<VerifiedSignature> {
  const publicKey = typeof key === 'string' || Buffer.isBuffer(key) ? readPublicKey(key) : key;
  const found = await findRegistrySignatures(client, repo, descriptor.digest, signal);
  return pickVerified(found, publicKey, `${repo.name}@${descriptor.digest}`, new Map([[descriptor.digest, bytes]]));
}
