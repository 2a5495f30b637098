import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** docker tag: silent on success. */
export async function run(inv: Invocation): Promise<number> {
  await withEngine(inv.globals, (engine) => engine.tag(inv.arg(0), inv.arg(1)));
  return 0;
}
