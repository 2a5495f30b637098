import { withEngine } from '../context.js';
import { UsageError } from '../context.js';
import type { Invocation } from '../invocation.js';
import { readKeyFile } from './sign.js';

/** cosign verify: exit 0 with what verified, 1 with the reason (a SignatureError's code) when nothing did. */
export async function run(inv: Invocation): Promise<number> {
  const keyPath = inv.string('key');
  if (keyPath === undefined) throw new UsageError('verify: --key FILE (a PEM public key) is required');
  const key = await readKeyFile(keyPath, '--key');
  const source = (inv.string('source') ?? 'auto') as 'auto' | 'store' | 'registry';
  const result = await withEngine(inv.globals, (engine) => engine.verifyImage(inv.arg(0), { key, source, signal: inv.signal }), { existing: false });
  if (inv.bool('json')) inv.stdout.line(JSON.stringify(result));
  else inv.stdout.line(`Verified ${result.name}@${result.subject}: ${result.format} signature (${result.where})`);
  return 0;
}
