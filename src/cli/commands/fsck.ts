import { openEngine, parseCommand, type GlobalFlags } from '../context.js';
import { humanSize } from '../format.js';

export const usage = `Usage: stratum fsck [--repair] [--json] [--store DIR]

Check the store: every blob's content against its digest and its size against every descriptor
that names it; every reference from index.json (manifests, configs, layers present); every
snapshot's parent chain and data, temporaries of dead processes, and mounts. One line per
problem; exit status 1 while problems remain.

Options:
      --repair                       Delete corrupt blobs (the next pull fetches them again), remove
                                     what dead processes left and orphaned snapshot data, forget lost mounts
      --json                         One JSON object per problem, then a summary object
      --store DIR                    Content store
      --snapshot-root DIR            Also check the snapshotter at DIR`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, { repair: { type: 'boolean' }, json: { type: 'boolean' } });
  const flags = values as GlobalFlags;
  const engine = await openEngine(flags);
  const json = values.json === true;
  try {
    const result = await engine.verify({
      repair: values.repair === true,
      onProblem: (p) =>
        process.stdout.write(json ? `${JSON.stringify(p)}\n` : `${p.kind} ${p.subject}: ${p.message}${p.repaired ? ` (repaired: ${p.repaired})` : ''}\n`),
    });
    const repaired = result.problems.length - result.remaining;
    if (json) {
      process.stdout.write(JSON.stringify({ type: 'summary', blobs: result.blobs, bytes: result.bytes, problems: result.problems.length, repaired, remaining: result.remaining }) + '\n');
    } else {
      process.stdout.write(`${result.blobs} blobs (${humanSize(result.bytes, 4)}) checked: ${result.problems.length} problems, ${repaired} repaired, ${result.remaining} remaining\n`);
    }
    return result.remaining > 0 ? 1 : 0;
  } finally {
    await engine.close();
  }
}
