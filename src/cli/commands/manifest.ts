import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** docker manifest inspect: the manifest (or index) as the registry serves it; --raw its exact bytes. */
export async function run(inv: Invocation): Promise<number> {
  const name = inv.arg(0).replace(/^docker:\/\//, '');
  const result = await withEngine(inv.globals, (engine) => engine.inspectRemote(name, { config: false, signal: inv.signal }), { existing: false });
  const raw = result.index?.raw ?? result.raw;
  inv.stdout.write(inv.bool('raw') ? raw.toString('utf8') : `${JSON.stringify(JSON.parse(raw.toString('utf8')), null, 8)}\n`);
  return 0;
}
