import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const server = inv.positionals[0] ?? 'docker.io';
  const result = await withEngine(inv.globals, (engine) => engine.logout(server), { existing: false });
  inv.stdout.line(result.removed ? `Removing login credentials for ${result.serverUrl}` : `Not logged in to ${result.serverUrl}`);
  return 0;
}
