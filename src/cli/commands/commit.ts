import { openEngine, parseCommand, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum commit [OPTIONS] KEY NAME[:TAG]

Create a new image from the changes in writable snapshot KEY (made by \`stratum mount --rw KEY
IMAGE DIR\`, on any storage driver of the store): one new gzip layer on top of the image's layers, a config and history entry, an
OCI manifest, tagged NAME in the store. The snapshot stays as it is (mounted, if it was).
Prints the new image's ID (its config digest), as docker commit does.

Options:
  -m, --message TEXT                 History comment
  -a, --author TEXT                  Author (config and history)
      --image NAME                   The image KEY was made from (default: recorded on the snapshot)
      --store DIR                    Content store
      --json                         Print the result as JSON`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, {
    message: { type: 'string', short: 'm' },
    author: { type: 'string', short: 'a' },
    image: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 2) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const flags = values as GlobalFlags;
  const engine = await openEngine(flags);
  try {
    const result = await engine.commitImage(positionals[0]!, positionals[1]!, {
      ...(values.image !== undefined ? { image: values.image } : {}),
      ...(values.message !== undefined ? { message: values.message } : {}),
      ...(values.author !== undefined ? { author: values.author } : {}),
    });
    if (values.json) {
      process.stdout.write(JSON.stringify({ name: result.name, id: result.config.digest, manifest: result.manifest, config: result.config, layer: result.layer, entries: result.entries, whiteouts: result.whiteouts }) + '\n');
    } else {
      process.stdout.write(`${result.config.digest}\n`);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
