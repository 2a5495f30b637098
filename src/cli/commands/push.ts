import type { PushEvent } from '../../image/push.js';
import { shortDigest } from '../../oci/digest.js';
import { parseReference } from '../../oci/reference.js';
import { openEngine, parseCommand, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum push [OPTIONS] NAME[:TAG] [DESTINATION[:TAG|@DIGEST]]

Upload an image from the store to a registry: the blobs the repository lacks, then the manifest,
byte for byte (its digest does not change). DESTINATION defaults to NAME itself.

Options:
      --store DIR                    Content store (default: $STRATUM_STORE or $XDG_DATA_HOME/stratum)
      --insecure-registry HOST       Allow plain HTTP to HOST (loopback is always allowed)
      --config FILE                  Registry configuration (insecure hosts, concurrency)
      --concurrency N                Blobs uploaded at once (default 3)
  -q, --quiet                        Print only the destination when done
      --json                         One JSON event per line`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { quiet: { type: 'boolean', short: 'q' }, json: { type: 'boolean' } });
  if (positionals.length < 1 || positionals.length > 2) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const flags = values as GlobalFlags;
  const destination = positionals[1] !== undefined ? parseReference(positionals[1]) : undefined;
  const engine = await openEngine(flags);
  const out = process.stdout;
  const layers = new Set<string>();
  const onEvent = (e: PushEvent): void => {
    if (values.json) {
      out.write(JSON.stringify('digest' in e ? { ...e, id: shortDigest(e.digest) } : e) + '\n');
      return;
    }
    if (values.quiet) return;
    if (e.type === 'blobs') {
      for (const b of e.blobs) if (b.kind === 'layer') layers.add(b.digest);
    } else if ((e.type === 'exists' || e.type === 'pushed' || e.type === 'mounted') && layers.has(e.digest)) {
      // docker shows layers only; the config goes up silently.
      const status = e.type === 'exists' ? 'Layer already exists' : e.type === 'mounted' ? `Mounted from ${e.from}` : 'Pushed';
      out.write(`${shortDigest(e.digest)}: ${status}\n`);
    }
  };
  try {
    const target = destination ?? parseReference(positionals[0]!);
    if (!values.json && !values.quiet) out.write(`The push refers to repository [${target.name}]\n`);
    const result = await engine.push(positionals[0]!, destination, { onEvent });
    if (values.json) {
      out.write(JSON.stringify({ type: 'done', source: result.source, destination: result.destination, digest: result.digest, size: result.size, pushed: result.pushed, mounted: result.mounted, existed: result.existed, bytesUploaded: result.bytesUploaded }) + '\n');
    } else if (values.quiet) {
      out.write(`${result.destination}\n`);
    } else {
      const ref = parseReference(result.destination);
      out.write(`${ref.digest ?? ref.tag ?? 'latest'}: digest: ${result.digest} size: ${result.size}\n`);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
