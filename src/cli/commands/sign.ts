import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../../errors.js';
import { keylessSigner, keySigner, type ImageSigner } from '../../sign/key.js';
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

/** cosign sign: prints the signature artifact's digest (and where it went). */
export async function run(inv: Invocation): Promise<number> {
  const keyPath = inv.string('key');
  const token = inv.string('identity-token');
  if ((keyPath === undefined) === (token === undefined)) throw new UsageError('sign: give --key FILE (a local key) or --identity-token TOKEN (keyless), one of them');
  if (keyPath !== undefined && (inv.string('fulcio-url') !== undefined || inv.string('rekor-url') !== undefined)) throw new UsageError('sign: --fulcio-url and --rekor-url are for keyless signing (--identity-token)');
  let signer: ImageSigner;
  let rekorURL: string | undefined;
  if (keyPath !== undefined) {
    const password = process.env.STRATUM_KEY_PASSWORD;
    signer = keySigner(await readKeyFile(keyPath, '--key'), password ? { passphrase: password } : {});
  } else {
    const fulcioURL = inv.string('fulcio-url');
    signer = await keylessSigner({ identityToken: token!, ...(fulcioURL ? { fulcioURL } : {}) });
    rekorURL = inv.string('rekor-url') ?? 'https://rekor.sigstore.dev';
  }
  const format = (inv.string('format') ?? 'bundle') as SignatureFormat;
  const result = await withEngine(inv.globals, (engine) => engine.sign(inv.arg(0), signer, { format, push: inv.bool('push'), signal: inv.signal, ...(rekorURL ? { rekorURL } : {}) }), { existing: false });
  if (inv.bool('json')) {
    inv.stdout.line(JSON.stringify({ name: result.name, subject: result.subject.digest, format: result.format, signature: result.signature, stored: result.stored, ...(result.pushed ? { pushed: result.pushed } : {}) }));
  } else {
    const where = [result.stored ? 'stored with the image' : undefined, result.pushed ? `pushed to ${result.pushed.repository} (${result.pushed.via})` : undefined].filter(Boolean).join(', ');
    inv.stderr.line(`Signed ${result.name}@${result.subject.digest} (${result.format}): ${where}`);
    inv.stdout.line(result.signature);
  }
  return 0;
}
