import { createInterface } from 'node:readline/promises';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { printGcResult } from './gc.js';

/** docker image prune: asks on a terminal unless -f; off a terminal, -f is required (nothing is removed unasked). */
export async function run(inv: Invocation): Promise<number> {
  const all = inv.bool('all');
  if (!inv.bool('force')) {
    const warning = all
      ? 'WARNING! This will remove all images without at least one mount or writable snapshot associated to them.'
      : 'WARNING! This will remove all dangling blobs and snapshots.';
    if (!process.stdin.isTTY) {
      inv.stderr.line(`${warning}\nstratum: not removing anything without confirmation: standard input is not a terminal (use -f)`);
      return 1;
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await rl.question(`${warning}\nAre you sure you want to continue? [y/N] `);
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) return 0;
  }
  const result = await withEngine(inv.globals, (engine) => engine.gc({ all }));
  printGcResult(inv.stdout, inv, result, false);
  return 0;
}
