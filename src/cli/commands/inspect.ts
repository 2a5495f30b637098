import { parseCommand, withEngine, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum inspect [--store DIR] IMAGE

Print an image's index entry, manifest and config as JSON, with its ID, repo digests, chain IDs
and, once unpacked, its storage driver's data (overlay: LowerDir, UpperDir, WorkDir, MergedDir).`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, {});
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const image = await withEngine(values as GlobalFlags, (engine) => engine.inspect(positionals[0]!));
  const out = {
    id: image.id,
    name: image.name,
    repoDigests: image.repoDigests,
    descriptor: image.descriptor,
    manifest: image.manifest,
    config: image.config,
    rootfs: { chainIds: image.chainIds },
    graphDriver: { name: image.graphDriver.name, unpacked: image.graphDriver.unpacked, data: image.graphDriver.data },
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  return 0;
}
