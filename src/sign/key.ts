import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { Signer } from '@sigstore/sign';
import { InvalidArgumentError } from '../errors.js';

/**
 * Anything that signs: given the bytes to sign, the signature and the key (or certificate) that
 * verifies it. @sigstore/sign's Signer interface, so a KMS, an HSM or Fulcio fits as well as
 * keySigner's local key.
 */
export type ImageSigner = Signer;

/**
 * The key hint stratum writes into bundles and looks for when verifying: the lowercase hex SHA-256
 * of the key's DER SubjectPublicKeyInfo (the key ID sigstore-python and cosign's bundles use).
 */
export function publicKeyHint(key: KeyObject | string | Buffer): string {
  const object = typeof key === 'string' || Buffer.isBuffer(key) ? readPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(object.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** A public key from PEM (SPKI "PUBLIC KEY", or the public half of a private key). */
export function readPublicKey(pem: string | Buffer): KeyObject {
  try {
    return createPublicKey(pem);
  } catch (err) {
    throw new InvalidArgumentError(`not a PEM public key: ${(err as Error).message}`);
  }
}

/**
 * A Signer over a local ECDSA P-256 private key in PEM (PKCS#8 or SEC1; `passphrase` for an
 * encrypted one): ECDSA with SHA-256, DER signatures, the public key and its hint (publicKeyHint)
 * as key material, as `cosign sign --key` uses such a key.
 */
export function keySigner(pem: string | Buffer, options: { passphrase?: string } = {}): ImageSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey(options.passphrase !== undefined ? { key: pem, passphrase: options.passphrase } : pem);
  } catch (err) {
    throw new InvalidArgumentError(`not a usable PEM private key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InvalidArgumentError(`signing key must be ECDSA P-256 (got ${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''})`);
  }
  const publicKey = createPublicKey(key);
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const hint = publicKeyHint(publicKey);
  return {
    async sign(data: Buffer) {
      return { signature: cryptoSign('sha256', data, key), key: { $case: 'publicKey', publicKey: publicPem, hint } };
    },
  };
}

/** Where keyless signing gets its certificate, and the identity it proves. */
export interface KeylessOptions {
  /** Fulcio's URL; default https://fulcio.sigstore.dev (DEFAULT_FULCIO_URL). */
  fulcioURL?: string;
  /** An OIDC identity token (or a function that gets one), e.g. a CI's workload token. */
  identityToken: string | (() => Promise<string>);
  /** Per-request timeout in ms; default @sigstore/sign's. */
  timeoutMs?: number;
}

/**
 * A keyless Signer (@sigstore/sign's FulcioSigner): an ephemeral key whose certificate Fulcio
 * issues for the identity token. Needs the network; pair it with a Rekor URL in sign()'s
 * options. Verification by key (verifyImage) does not accept such bundles: they need a Sigstore
 * trust root, which an offline machine does not have.
 */
export async function keylessSigner(options: KeylessOptions): Promise<ImageSigner> {
  const { FulcioSigner, DEFAULT_FULCIO_URL } = await import('@sigstore/sign');
  const token = options.identityToken;
  return new FulcioSigner({
    fulcioBaseURL: options.fulcioURL ?? DEFAULT_FULCIO_URL,
    identityProvider: { getToken: typeof token === 'string' ? async () => token : token },
    ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
  });
}
