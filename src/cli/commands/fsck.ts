import { openEngine } from '../context.js';
import { humanSize } from '../format.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const engine = await openEngine(inv.globals, { existing: true });
  const json = inv.bool('json');
  const out = inv.stdout;
  try {
    const result = await engine.verify({
      repair: inv.bool('repair'),
      onProblem: (p) => out.line(json ? JSON.stringify(p) : `${p.kind} ${p.subject}: ${p.message}${p.repaired ? ` (repaired: ${p.repaired})` : ''}`),
    });
    const repaired = result.problems.length - result.remaining;
    if (json) out.line(JSON.stringify({ type: 'summary', blobs: result.blobs, bytes: result.bytes, problems: result.problems.length, repaired, remaining: result.remaining }));
    else out.line(`${result.blobs} blobs (${humanSize(result.bytes, 4)}) checked: ${result.problems.length} problems, ${repaired} repaired, ${result.remaining} remaining`);
    return result.remaining > 0 ? 1 : 0;
  } finally {
    await engine.close();
  }
}
