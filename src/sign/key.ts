import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { Signer } from '@sigstore/sign';
import { InvalidArgumentError, KeylessUnavailableError } from '../errors.js';

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

/** Fulcio and Rekor of the public-good Sigstore instance: keyless signing's defaults. */
export const DEFAULT_FULCIO_URL = 'https://fulcio.sigstore.dev';
export const DEFAULT_REKOR_URL = 'https://rekor.sigstore.dev';

/** Where keyless signing gets its certificate, and the identity it proves. */
export interface KeylessOptions {
  /** Fulcio's URL; default $STRATUM_FULCIO_URL, else DEFAULT_FULCIO_URL. */
  fulcioURL?: string;
  /** An OIDC identity token (or a function that gets one), e.g. a CI's workload token; default $SIGSTORE_ID_TOKEN. */
  identityToken?: string | (() => Promise<string>);
  /** Per-request timeout in ms; default @sigstore/sign's. */
  timeoutMs?: number;
}

/** The keyless settings given, completed from the environment (`$STRATUM_FULCIO_URL`, `$STRATUM_REKOR_URL`, `$SIGSTORE_ID_TOKEN`) and the defaults. */
export function keylessSettings(given: { fulcioURL?: string | undefined; rekorURL?: string | undefined; identityToken?: string | undefined } = {}, env: NodeJS.ProcessEnv = process.env): { fulcioURL: string; rekorURL: string; identityToken?: string } {
  const token = given.identityToken ?? (env.SIGSTORE_ID_TOKEN || undefined);
  return {
    fulcioURL: given.fulcioURL ?? (env.STRATUM_FULCIO_URL || DEFAULT_FULCIO_URL),
    rekorURL: given.rekorURL ?? (env.STRATUM_REKOR_URL || DEFAULT_REKOR_URL),
    ...(token ? { identityToken: token } : {}),
  };
}

/**
 * A keyless Signer (@sigstore/sign's FulcioSigner): an ephemeral key whose certificate Fulcio
 * issues for the identity token. Needs the network; pair it with a Rekor URL in sign()'s
 * options. A Fulcio that cannot be reached or refuses is a KeylessUnavailableError naming its
 * URL. Verification by key (verifyImage) does not accept such bundles: they need a Sigstore
 * trust root, which an offline machine does not have.
 */
export async function keylessSigner(options: KeylessOptions = {}): Promise<ImageSigner> {
  const { FulcioSigner } = await import('@sigstore/sign');
  const settings = keylessSettings({ ...(options.fulcioURL ? { fulcioURL: options.fulcioURL } : {}) });
  const token = options.identityToken ?? settings.identityToken;
  if (token === undefined) throw new KeylessUnavailableError('keyless signing needs an OIDC identity token (--identity-token, or $SIGSTORE_ID_TOKEN)');
  const fulcio = new FulcioSigner({
    fulcioBaseURL: settings.fulcioURL,
    identityProvider: { getToken: typeof token === 'string' ? async () => token : token },
    ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
  });
  return {
    async sign(data: Buffer) {
      try {
        return await fulcio.sign(data);
      } catch (err) {
        const cause = (err as { cause?: { message?: string } }).cause?.message;
        throw new KeylessUnavailableError(`keyless signing needs Fulcio at ${settings.fulcioURL} (network access and a valid identity token): ${(err as Error).message}${cause ? `: ${cause}` : ''}`, { cause: err });
      }
    },
  };
}
