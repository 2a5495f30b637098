import { parseReference } from '../../oci/reference.js';
import { parsePlatform } from '../../oci/platform.js';
import { openEngine, parseCommand, parsePositiveInt, type GlobalFlags } from '../context.js';
import { PullProgress, type ProgressMode } from '../progress.js';

export const usage = `Usage: stratum pull [OPTIONS] NAME[:TAG|@DIGEST]

Download an image into the store, verifying every blob.

Options:
      --platform os/arch[/variant]   Platform to pull from a multi-platform image (default: this host's)
      --store DIR                    Content store (default: $STRATUM_STORE or $XDG_DATA_HOME/stratum)
      --mirror [REGISTRY=]URL        Try this mirror first (repeatable; REGISTRY defaults to docker.io)
      --insecure-registry HOST       Allow plain HTTP to HOST (loopback is always allowed)
      --config FILE                  Registry configuration (mirrors, insecure hosts, concurrency)
      --concurrency N                Layers downloaded at once (default 3)
      --snapshotter NAME             overlay, native, btrfs or zfs (overlay2, vfs): this pull only (default: the store's driver)
      --snapshot-root DIR            Where snapshots live (default: STORE/snapshots/NAME)
      --no-unpack                    Only fetch: do not unpack the layers into snapshots
      --max-layers N                 Refuse images with more layers (default 128; overlay: at most 500)
  -q, --quiet                        Print only the image name when done
      --json                         One JSON event per line`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, {
    platform: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    json: { type: 'boolean' },
    'no-unpack': { type: 'boolean' },
    'max-layers': { type: 'string' },
  });
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const reference = parseReference(positionals[0]!);
  const platform = values.platform ? parsePlatform(values.platform) : undefined;
  const flags = values as GlobalFlags;
  const engine = await openEngine(flags);
  const mode: ProgressMode = values.json ? 'json' : values.quiet ? 'quiet' : process.stdout.isTTY ? 'tty' : 'plain';
  const progress = new PullProgress(process.stdout, mode, { unpack: !values['no-unpack'] });
  let result;
  let before;
  try {
    before = await engine.store.getTag(reference.toString());
    const tagOrDigest = reference.tag ?? reference.digest!;
    progress.header(`${tagOrDigest}: Pulling from ${reference.repository}`);
    result = await engine.pull(reference, {
      ...(platform ? { platform } : {}),
      unpack: !values['no-unpack'],
      ...(values['max-layers'] !== undefined ? { maxLayers: parsePositiveInt(values['max-layers'], '--max-layers') } : {}),
      onEvent: (e) => progress.event(e),
    });
  } finally {
    await engine.close();
  }
  const unchanged = result.upToDate && before?.descriptor.digest === result.manifest.digest;
  const status = unchanged ? `Image is up to date for ${reference.familiar}` : `Downloaded newer image for ${reference.familiar}`;
  progress.footer([`Digest: ${result.digest}`, `Status: ${status}`]);
  if (mode === 'json') {
    process.stdout.write(
      JSON.stringify({ type: 'done', name: result.name, digest: result.digest, manifest: result.manifest.digest, status: unchanged ? 'up-to-date' : 'downloaded', bytesDownloaded: result.bytesDownloaded, ...(result.unpacked ? { chainId: result.unpacked.chainId ?? null, layersExtracted: result.unpacked.extracted, snapshotter: result.snapshotter ?? null } : {}) }) + '\n',
    );
  } else {
    process.stdout.write(`${result.name}\n`);
  }
  return 0;
}

