import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../../errors.js';
import { keylessSettings, keylessSigner, keySigner, type ImageSigner } from '../../sign/key.js';
import type { SignatureFormat } from '../../sign/artifact.js';
import { UsageError, withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** Reads a key file named by a flag; a missing or unreadable file is the user's to fix. */
export async function readKeyFile(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Where a signature or an attached artifact went: `stored with the image, pushed to R (via)`. */
export function whereKept(result: { stored: boolean; pushed?: { repository: string; via: string } }): string {
  return [result.stored ? 'stored with the image' : undefined, result.pushed ? `pushed to ${result.pushed.repository} (${result.pushed.via})` : undefined].filter(Boolean).join(', ');
}

/** cosign sign: prints the signature artifact's digest (and where it went). */
export async function run(inv: Invocation): Promise<number> {
  const keyPath = inv.string('key');
  const keyless = inv.bool('keyless') || inv.string('identity-token') !== undefined;
  if ((keyPath === undefined) === !keyless) throw new UsageError('sign: give --key FILE (a local key) or --keyless (Fulcio and Rekor; token from --identity-token or $SIGSTORE_ID_TOKEN), one of them');
  if (keyPath !== undefined && (inv.string('fulcio-url') !== undefined || inv.string('rekor-url') !== undefined)) throw new UsageError('sign: --fulcio-url and --rekor-url are for keyless signing (--keyless)');
  let signer: ImageSigner;
  let rekorURL: string | undefined;
  if (keyPath !== undefined) {
    const password = process.env.STRATUM_KEY_PASSWORD;
    signer = keySigner(await readKeyFile(keyPath, '--key'), password ? { passphrase: password } : {});
  } else {
    const settings = keylessSettings({ fulcioURL: inv.string('fulcio-url'), rekorURL: inv.string('rekor-url'), identityToken: inv.string('identity-token') });
    signer = await keylessSigner({ fulcioURL: settings.fulcioURL, ...(settings.identityToken ? { identityToken: settings.identityToken } : {}) });
    rekorURL = settings.rekorURL;
  }
  const format = (inv.string('format') ?? 'bundle') as SignatureFormat;
  const result = await withEngine(inv.globals, (engine) => engine.sign(inv.arg(0), signer, { format, push: inv.bool('push'), signal: inv.signal, ...(rekorURL ? { rekorURL } : {}) }), { existing: false });
  if (inv.bool('json')) {
    inv.stdout.line(JSON.stringify({ name: result.name, subject: result.subject.digest, format: result.format, signature: result.signature, stored: result.stored, ...(result.pushed ? { pushed: result.pushed } : {}) }));
  } else {
    inv.stderr.line(`Signed ${result.name}@${result.subject.digest} (${result.format}): ${whereKept(result)}`);
    inv.stdout.line(result.signature);
  }
  return 0;
}
