/**
 * Issue 2's pull benchmark: a cold `stratum pull --no-unpack` against `skopeo copy docker://… oci:…`
 * of the same multi-layer image (bench/big:1, ≈231 MB compressed, 6 layers) from docker-registry
 * on 127.0.0.1, in one run, alternating the two tools (ABAB…) after one discarded warm-up run of
 * each, every run into a fresh empty store that is deleted afterwards.
 *
 *   npm run bench:pull [-- --runs N] [-- --concurrency N]
 *
 * The registry's storage is cached under .bench/ so the image is built and pushed once per machine.
 * Prints a table (median, min, max per tool; ratio stratum/skopeo; stratum's peak RSS against
 * the target) and writes .bench/pull-results.json.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { alternateRuns } from './lib/alternate.js';
import { startBenchRegistry } from './lib/big-image-registry.js';
import { measureCommand, requireGnuTime, settleDisk, type CommandSpec, type Measurement } from './lib/measure.js';
import { summarize, type Summary, mb, row, secs } from './lib/stats.js';

const TARGET_RATIO = 0.9;
/** 150 MB in decimal units, the stricter reading of the target. */
const TARGET_RSS_BYTES = 150e6;
/** The repository root (this file runs as dist/bench/pull.js). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = join(ROOT, '.bench');
const STRATUM_CLI = join(ROOT, 'dist/src/cli/main.js');

interface Tool {
  name: 'stratum' | 'skopeo';
  /** The command for one cold copy into `store` (an empty directory that does not exist yet for skopeo). */
  command(host: string, repoAndTag: string, store: string): CommandSpec;
}

function tools(concurrency: number | undefined): Tool[] {
  return [
    {
      name: 'stratum',
      command: (host, ref, store) => ({
        command: process.execPath,
        args: [STRATUM_CLI, 'pull', '--no-unpack', '--quiet', ...(concurrency ? ['--concurrency', String(concurrency)] : []), '--store', store, `${host}/${ref}`],
        // No user config may change what is measured.
        env: { ...process.env, STRATUM_CONFIG: '', XDG_CONFIG_HOME: join(BENCH_DIR, 'empty-config'), DOCKER_CONFIG: join(BENCH_DIR, 'empty-config') },
      }),
    },
    {
      name: 'skopeo',
      command: (host, ref, store) => ({
        command: 'skopeo',
        args: ['copy', '--src-tls-verify=false', `docker://${host}/${ref}`, `oci:${store}:big`],
      }),
    },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      concurrency: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/pull.js [--runs N (default 3)] [--concurrency N (stratum --concurrency; default: its own)]\n');
    return;
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number ≥ 1, got ${values.runs}`);
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) throw new Error(`--concurrency takes a whole number ≥ 1`);
  requireGnuTime();
  if (!existsSync(STRATUM_CLI)) throw new Error(`${STRATUM_CLI} is missing: build first (npm run build)`);

  await mkdir(BENCH_DIR, { recursive: true });
  const log = (line: string) => process.stderr.write(`bench:pull: ${line}\n`);
  const { registry, image, cacheHit } = await startBenchRegistry(BENCH_DIR, undefined, log);
  const storesDir = join(BENCH_DIR, 'stores');
  try {
    log(`registry ${registry.host}, image ${image.reference} ${image.digest} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB)${cacheHit ? ', cached' : ''}`);
    await rm(storesDir, { recursive: true, force: true });
    await mkdir(storesDir, { recursive: true });
    const list = tools(concurrency);

    const once = async (tool: Tool): Promise<Measurement> => {
      const parent = await mkdtemp(join(storesDir, `${tool.name}-`));
      const store = join(parent, 'store');
      // Dirty pages of the previous run (its store, its deletion) are flushed outside the timing.
      await settleDisk();
      try {
        return await measureCommand(tool.command(registry.host, image.reference, store));
      } finally {
        await rm(parent, { recursive: true, force: true });
      }
    };

    const results = await alternateRuns(list, runs, once, log);

    const wall = (name: string) => summarize(results.get(name)!.map((m) => m.wallSeconds));
    const rss = (name: string) => summarize(results.get(name)!.map((m) => m.peakRssBytes));
    const stratumWall = wall('stratum');
    const skopeoWall = wall('skopeo');
    const stratumRss = rss('stratum');
    const ratio = stratumWall.median / skopeoWall.median;

    const out: string[] = [];
    out.push(`stratum pull vs skopeo copy: ${image.reference} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB compressed), ${runs} alternating runs each after a warm-up`);
    out.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
    out.push('');
    out.push(row(['tool', 'wall median', 'wall min', 'wall max', 'peak RSS median', 'RSS min', 'RSS max']));
    out.push(row(['---', '---', '---', '---', '---', '---', '---']));
    for (const tool of list) {
      const w = wall(tool.name);
      const r = rss(tool.name);
      out.push(row([tool.name, secs(w.median), secs(w.min), secs(w.max), `${mb(r.median)} MB`, `${mb(r.min)} MB`, `${mb(r.max)} MB`]));
    }
    out.push('');
    out.push(`wall-time ratio stratum/skopeo (medians): ${ratio.toFixed(2)}x  (target ≤ ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? 'met' : 'MISSED'})`);
    out.push(`stratum peak RSS (median): ${mb(stratumRss.median)} MB  (target ≤ ${mb(TARGET_RSS_BYTES)} MB: ${stratumRss.median <= TARGET_RSS_BYTES ? 'met' : 'MISSED'}; max ${mb(stratumRss.max)} MB)`);
    process.stdout.write(out.join('\n') + '\n');

    const json = {
      date: new Date().toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
      image: { reference: image.reference, digest: image.digest, layers: image.layers.length, compressedBytes: image.totalCompressedBytes },
      runs,
      stratumConcurrency: concurrency ?? 'default',
      tools: Object.fromEntries(
        list.map((t) => [t.name, { command: describe(t.command('HOST', image.reference, 'STORE')), wallSeconds: omitSamples(wall(t.name)), peakRssBytes: omitSamples(rss(t.name)), runs: results.get(t.name) }]),
      ),
      ratioWall: ratio,
      targets: { ratioWall: TARGET_RATIO, peakRssBytes: TARGET_RSS_BYTES },
      met: { ratioWall: ratio <= TARGET_RATIO, peakRss: stratumRss.median <= TARGET_RSS_BYTES },
    };
    await writeFile(join(BENCH_DIR, 'pull-results.json'), JSON.stringify(json, null, 2) + '\n');
    log(`results written to ${join(BENCH_DIR, 'pull-results.json')}`);
  } finally {
    await rm(storesDir, { recursive: true, force: true });
    await registry.stop();
  }
}

function omitSamples(s: Summary): Omit<Summary, 'samples'> {
  return { median: s.median, min: s.min, max: s.max };
}

function describe(spec: CommandSpec): string {
  const cmd = spec.command === process.execPath ? 'node' : spec.command;
  return [cmd, ...spec.args.map((a) => (a === STRATUM_CLI ? 'dist/src/cli/main.js' : a))].join(' ');
}


main().catch((err: unknown) => {
  process.stderr.write(`bench:pull: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
