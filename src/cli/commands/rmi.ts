import { NotFoundError } from '../../errors.js';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** Removes each name in turn, as docker rmi does: one failure does not stop the others; status 1 if any failed. */
export async function run(inv: Invocation): Promise<number> {
  const force = inv.bool('force');
  let failed = 0;
  await withEngine(inv.globals, async (engine) => {
    for (const input of inv.positionals) {
      try {
        for (const name of await engine.removeImage(input, { force })) inv.stdout.line(`Untagged: ${name}`);
      } catch (err) {
        if (force && err instanceof NotFoundError) continue;
        if (inv.positionals.length === 1) throw err;
        failed++;
        inv.stderr.line(`stratum: error: ${(err as Error).message}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ''}`);
      }
    }
  });
  return failed > 0 ? 1 : 0;
}
