import { parsePlatform } from '../../oci/platform.js';
import { UsageError } from '../args.js';
import { openEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { writeOutput } from './export.js';

/** docker save: -o FILE or standard output (never a terminal). */
export async function run(inv: Invocation): Promise<number> {
  const output = inv.string('output') ?? '-';
  if (output === '-' && inv.stdout.isTTY) throw new UsageError('cowardly refusing to save to a terminal: use the -o flag or redirect standard output');
  const format = (inv.string('format') ?? 'docker') as 'docker' | 'oci';
  const platformFlag = inv.string('platform');
  const engine = await openEngine(inv.globals, { existing: true });
  try {
    await writeOutput(inv, output, (out) => engine.save([...inv.positionals], out, { format, ...(platformFlag ? { platform: parsePlatform(platformFlag) } : {}) }));
  } finally {
    await engine.close();
  }
  return 0;
}
