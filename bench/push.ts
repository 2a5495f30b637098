/**
 * Push benchmark: `stratum push` of a stored image against `skopeo copy oci:… docker://…` of the
 * same image (bench/big:1, ≈231 MB compressed, 6 layers) to docker-registry on 127.0.0.1, in one
 * run, alternating the tools after one discarded warm-up of each. No target is set by an issue;
 * this keeps push honest next to the reference tool.
 *
 *   npm run build && node dist/bench/push.js [--runs N]
 *
 * Two rows, each run pushing into a repository that does not exist yet, under a registry name
 * other than the one the image was pulled from (localhost:PORT instead of 127.0.0.1:PORT):
 * - cold: neither tool knows a repository there holding the blobs, so every byte is uploaded.
 *   What each tool remembers about blob locations (skopeo's blob-info cache, stratum's
 *   STORE/sources.log) is put back to its state before the first push, outside the timing.
 * - warm: the image was pushed once to another repository of that registry (outside the timing)
 *   and both tools keep what they learnt, so each blob can be mounted across repositories.
 * Writes .bench/push-results.json.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { alternateRuns } from './lib/alternate.js';
import { startBenchRegistry } from './lib/big-image-registry.js';
import { measureCommand, requireGnuTime, runQuiet, settleDisk, type CommandSpec, type Measurement } from './lib/measure.js';
import { mb, row, secs, summarize } from './lib/stats.js';
import { SOURCES_LOG } from '../src/content/sources.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = join(ROOT, '.bench');
const STRATUM_CLI = join(ROOT, 'dist/src/bin/stratum.js');
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

    const sourcesLog = join(store, SOURCES_LOG);
    const pulledSources = existsSync(sourcesLog) ? await readFile(sourcesLog) : Buffer.alloc(0);
    const stratum = (dest: string): CommandSpec => ({ command: process.execPath, args: [STRATUM_CLI, 'push', '--quiet', '--store', store, source, dest], env: ENV });
    const skopeo = (dest: string): CommandSpec => ({ command: 'skopeo', args: ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${dest}`] });
    const forgetStratum = () => writeFile(sourcesLog, pulledSources);
    const forgetSkopeo = () => rm(SKOPEO_BLOB_INFO_CACHE, { recursive: true, force: true });
    const cold: Tool[] = [
      { name: 'stratum', command: stratum, prepare: forgetStratum },
      { name: 'skopeo', command: skopeo, prepare: forgetSkopeo },
    ];
    const warm: Tool[] = [
      { name: 'stratum', command: stratum },
      { name: 'skopeo', command: skopeo },
    ];
    let serial = 0;
    const measure = async (scenario: string, list: Tool[]) => {
      log(`${scenario} pushes`);
      const once = async (tool: Tool): Promise<Measurement> => {
        await tool.prepare?.();
        await settleDisk();
        return measureCommand(tool.command(`${target}/pushbench/${scenario}-${tool.name}-${Date.now()}-${++serial}:1`));
      };
      return alternateRuns(list, runs, once, log);
    };
    const coldResults = await measure('cold', cold);
    // The warm rows' seed: each tool pushes the image once to the registry, remembering where it went.
    await forgetStratum();
    await forgetSkopeo();
    await measureCommand(stratum(`${target}/pushbench/seed-stratum:1`));
    await measureCommand(skopeo(`${target}/pushbench/seed-skopeo:1`));
    const warmResults = await measure('warm', warm);

    const wall = (results: Map<string, Measurement[]>, name: string) => summarize(results.get(name)!.map((m) => m.wallSeconds));
    const rss = (results: Map<string, Measurement[]>, name: string) => summarize(results.get(name)!.map((m) => m.peakRssBytes));
    const ratio = (results: Map<string, Measurement[]>) => wall(results, 'stratum').median / wall(results, 'skopeo').median;
    const out: string[] = [];
    out.push(`stratum push vs skopeo copy oci:→docker://: ${image.reference} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB compressed), ${runs} alternating runs each after a warm-up`);
    out.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
    out.push('');
    out.push(row(['push', 'tool', 'wall median', 'wall min', 'wall max', 'peak RSS median']));
    out.push(row(['---', '---', '---', '---', '---', '---']));
    for (const [scenario, results] of [['cold', coldResults], ['warm', warmResults]] as const) {
      for (const tool of cold) {
        const w = wall(results, tool.name);
        out.push(row([scenario, tool.name, secs(w.median), secs(w.min), secs(w.max), `${mb(rss(results, tool.name).median)} MB`]));
      }
    }
    out.push('');
    out.push(`wall-time ratio stratum/skopeo (medians): cold ${ratio(coldResults).toFixed(2)}x, warm ${ratio(warmResults).toFixed(2)}x`);
    process.stdout.write(out.join('\n') + '\n');
    await writeFile(
      join(BENCH_DIR, 'push-results.json'),
      JSON.stringify(
        {
          date: new Date().toISOString(),
          machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
          image,
          runs,
          cold: { results: Object.fromEntries(coldResults), ratioWall: ratio(coldResults) },
          warm: { results: Object.fromEntries(warmResults), ratioWall: ratio(warmResults) },
        },
        null,
        2,
      ) + '\n',
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
