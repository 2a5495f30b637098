import type { EngineGcResult } from '../../engine/engine.js';
import { withEngine } from '../context.js';
import { humanSize } from '../format.js';
import type { Invocation, Output } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const dryRun = inv.bool('dry-run');
  const result = await withEngine(inv.globals, (engine) => engine.gc({ dryRun, all: inv.bool('all') }));
  printGcResult(inv.stdout, inv, result, dryRun);
  return 0;
}

/** gc's report, docker prune's wording: also `image prune`'s. */
export function printGcResult(out: Output, inv: Invocation, result: EngineGcResult, dryRun: boolean): void {
  const would = dryRun ? 'would remove' : 'removed';
  for (const name of result.untagged) out.line(`${dryRun ? 'would untag' : 'Untagged:'} ${name}`);
  for (const m of result.staleMounts) out.line(`forgot mount ${m.target} (no longer mounted)`);
  for (const m of result.reclaimed.mounts) out.line(`unmounted ${m} (left by a dead process)`);
  for (const key of result.reclaimed.snapshots) out.line(`removed snapshot ${key} (left by a dead process)`);
  for (const s of result.snapshots) out.line(`${would} snapshot ${s.key} (${s.snapshotter}, ${humanSize(s.size, 4)})`);
  for (const blob of result.removed) out.line(`${would} ${blob.digest}`);
  for (const w of result.warnings) inv.warn(w);
  const bytes = result.bytesFreed + result.snapshots.reduce((sum, s) => sum + s.size, 0);
  out.line(`${dryRun ? 'Would reclaim' : 'Total reclaimed space'}: ${humanSize(bytes, 4)}`);
}
