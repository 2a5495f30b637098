/**
 * Push benchmark: `stratum push` of a stored image against `skopeo copy oci:… docker://…` of the
 * same image (bench/big:1, ≈231 MB compressed, 6 layers) to docker-registry on 127.0.0.1, in one
 * run, alternating the tools after one discarded warm-up of each. No target is set by an issue;
 * this keeps push honest next to the reference tool.
 *
 *   npm run build && node dist/bench/push.js [--runs N]
 *
 * Every run pushes into a repository that does not exist yet, under a registry name other than
 * the one the image was pulled from (localhost:PORT instead of 127.0.0.1:PORT), so neither tool
 * can mount blobs from a repository it knows: every byte is uploaded. skopeo's blob-info cache
 * (which remembers where blobs were pushed and mounts from there) is deleted before each of its
 * runs, outside the timing. Writes .bench/push-results.json.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { alternateRuns } from './lib/alternate.js';
import { startBenchRegistry } from './lib/big-image-registry.js';
import { measureCommand, requireGnuTime, runQuiet, settleDisk, type CommandSpec, type Measurement } from './lib/measure.js';
import { mb, row, secs, summarize } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = join(ROOT, '.bench');
const STRATUM_CLI = join(ROOT, 'dist/src/cli/main.js');
/** Where skopeo (as root) keeps what it learnt about blob locations. */
const SKOPEO_BLOB_INFO_CACHE = '/var/lib/containers/cache';
const ENV = { ...process.env, STRATUM_CONFIG: '', XDG_CONFIG_HOME: join(BENCH_DIR, 'empty-config'), DOCKER_CONFIG: join(BENCH_DIR, 'empty-config') };

interface Tool {
  name: 'stratum' | 'skopeo';
  command(destination: string): CommandSpec;
  /** Outside the timing, before each run. */
  prepare?(): Promise<void>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/push.js [--runs N (default 3)]\n');
    return;
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number ≥ 1, got ${values.runs}`);
  requireGnuTime();
  if (!existsSync(STRATUM_CLI)) throw new Error(`${STRATUM_CLI} is missing: build first (npm run build)`);

  await mkdir(BENCH_DIR, { recursive: true });
  const log = (line: string) => process.stderr.write(`bench:push: ${line}\n`);
  const { registry, image, cacheHit } = await startBenchRegistry(BENCH_DIR, undefined, log);
  const work = join(BENCH_DIR, 'push-sources');
  try {
    log(`registry ${registry.host}, image ${image.reference} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB)${cacheHit ? ', cached' : ''}`);
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    // The sources, once: stratum's store and skopeo's OCI layout hold the same blobs and manifest.
    const source = `${registry.host}/${image.reference}`;
    const store = join(work, 'store');
    const layout = join(work, 'layout');
    await runQuiet(process.execPath, [STRATUM_CLI, 'pull', '--no-unpack', '--quiet', '--store', store, source]);
    await runQuiet('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${source}`, `oci:${layout}:big`]);
    const target = `localhost:${registry.host.split(':')[1]}`;

    const list: Tool[] = [
      {
        name: 'stratum',
        command: (dest) => ({ command: process.execPath, args: [STRATUM_CLI, 'push', '--quiet', '--store', store, source, dest], env: ENV }),
      },
      {
        name: 'skopeo',
        command: (dest) => ({ command: 'skopeo', args: ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${dest}`] }),
        prepare: () => rm(SKOPEO_BLOB_INFO_CACHE, { recursive: true, force: true }),
      },
    ];
    let serial = 0;
    const once = async (tool: Tool): Promise<Measurement> => {
      await tool.prepare?.();
      await settleDisk();
      return measureCommand(tool.command(`${target}/pushbench/${tool.name}-${Date.now()}-${++serial}:1`));
    };
    const results = await alternateRuns(list, runs, once, log);

    const wall = (name: string) => summarize(results.get(name)!.map((m) => m.wallSeconds));
    const rss = (name: string) => summarize(results.get(name)!.map((m) => m.peakRssBytes));
    const ratio = wall('stratum').median / wall('skopeo').median;
    const out: string[] = [];
    out.push(`stratum push vs skopeo copy oci:→docker://: ${image.reference} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB compressed), ${runs} alternating runs each after a warm-up`);
    out.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
    out.push('');
    out.push(row(['tool', 'wall median', 'wall min', 'wall max', 'peak RSS median']));
    out.push(row(['---', '---', '---', '---', '---']));
    for (const tool of list) out.push(row([tool.name, secs(wall(tool.name).median), secs(wall(tool.name).min), secs(wall(tool.name).max), `${mb(rss(tool.name).median)} MB`]));
    out.push('');
    out.push(`wall-time ratio stratum/skopeo (medians): ${ratio.toFixed(2)}x`);
    process.stdout.write(out.join('\n') + '\n');
    await writeFile(
      join(BENCH_DIR, 'push-results.json'),
      JSON.stringify({ date: new Date().toISOString(), machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version }, image, runs, results: Object.fromEntries(results), ratioWall: ratio }, null, 2) + '\n',
    );
    log(`results written to ${join(BENCH_DIR, 'push-results.json')}`);
  } finally {
    await rm(work, { recursive: true, force: true });
    await registry.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:push: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
