import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const { record, removedSnapshot, wasMounted } = await withEngine(inv.globals, (engine) => engine.unmount(inv.arg(0)));
  const what = removedSnapshot ? `, view ${record.key} removed` : `, snapshot ${record.key} kept`;
  inv.stdout.line(`${wasMounted ? 'unmounted' : 'forgot (it was no longer mounted)'} ${record.target}${what}`);
  return 0;
}
