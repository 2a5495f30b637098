import { parseCommand, withEngine, type GlobalFlags } from '../context.js';
import { humanSize } from '../format.js';

export const usage = `Usage: stratum gc [--dry-run] [--all] [--store DIR]

Delete what nothing needs, in the whole store:
  - what killed stratum processes left: temporary snapshots (extract-*, commit-view-*, …) and
    the mounts they made (never a mount stratum did not record), records of mounts that are gone;
  - unpacked layer snapshots that no image, running pull, mount or other snapshot needs, on
    every storage driver of the store;
  - blobs no tagged image needs, and stale partial downloads.

Options:
      --all                          First untag every image no mount or writable snapshot uses
                                     (docker image prune -a)
      --dry-run                      Print what would be removed; remove nothing`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, { 'dry-run': { type: 'boolean' }, all: { type: 'boolean' } });
  const dryRun = values['dry-run'] === true;
  const result = await withEngine(values as GlobalFlags, (engine) => engine.gc({ dryRun, all: values.all === true }));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const would = dryRun ? 'would remove' : 'removed';
  for (const name of result.untagged) out(`${dryRun ? 'would untag' : 'Untagged:'} ${name}`);
  for (const m of result.staleMounts) out(`forgot mount ${m.target} (no longer mounted)`);
  for (const m of result.reclaimed.mounts) out(`unmounted ${m} (left by a dead process)`);
  for (const key of result.reclaimed.snapshots) out(`removed snapshot ${key} (left by a dead process)`);
  for (const s of result.snapshots) out(`${would} snapshot ${s.key} (${s.snapshotter}, ${humanSize(s.size, 4)})`);
  for (const blob of result.removed) out(`${would} ${blob.digest}`);
  for (const w of result.warnings) process.stderr.write(`stratum: warning: ${w}\n`);
  const bytes = result.bytesFreed + result.snapshots.reduce((sum, s) => sum + s.size, 0);
  out(`${dryRun ? 'Would reclaim' : 'Total reclaimed space'}: ${humanSize(bytes, 4)}`);
  return 0;
}
