import { parsePlatform } from '../../oci/platform.js';
import { openEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const [ref, target] = inv.positionals as [string, string];
  const rw = inv.string('rw');
  const engine = await openEngine(inv.globals, { existing: true });
  try {
    const platformFlag = inv.string('platform');
    const mounted = await engine.mount(ref, target, { ...(rw !== undefined ? { rw } : {}), ...(platformFlag ? { platform: parsePlatform(platformFlag) } : {}) });
    inv.stdout.line(`${mounted.target} (${mounted.readonly ? 'read-only view' : 'writable'} ${mounted.key}, ${mounted.snapshotter})`);
  } finally {
    await engine.close();
  }
  return 0;
}
