/**
 * Issue 2 and 12's pull benchmark: a cold `stratum pull --no-unpack` against
 * `skopeo copy docker://… oci:…` of the same multi-layer image (bench/big:1, ≈231 MB compressed,
 * 6 layers) from docker-registry on 127.0.0.1, in rows:
 *   tls       the registry over HTTPS with the bench's own CA (the default row, what users meet)
 *   plain     the same storage served over plain HTTP
 *   redirect  an HTTPS front (the fault proxy) answering every blob GET with 307 to the TLS registry
 * Each row alternates the two tools (ABAB…) after one discarded warm-up run of each, every run
 * into a fresh empty store that is deleted afterwards.
 *
 *   npm run bench:pull [-- --runs N] [-- --concurrency N] [-- --only tls,plain,redirect] [-- --floor]
 *
 * --floor adds a third tool to every row, `floor` (bench/lib/pull-floor.ts): a Node process that
 * only moves and hashes the same blobs through stratum's native receive, with no CLI, Engine or
 * store: the least a Node program can take for this copy on this machine.
 *
 * skopeo trusts the CA with --src-cert-dir; stratum through STRATUM_CERTS_D=<dir> holding
 * `<dir>/127.0.0.1:PORT/ca.crt`. A tool that fails in a row is reported as failed there and the
 * other rows still run. The registry's storage and the certificates are cached under .bench/.
 * Prints a table (median, min, max, peak RSS per row and tool; ratio stratum/skopeo) and writes
 * .bench/pull-results.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeCertsDir } from '../test/helpers/certs.js';
import { FaultProxy } from '../test/helpers/fault-proxy.js';
import type { TestRegistry } from '../test/helpers/registry.js';
import { alternateRuns } from './lib/alternate.js';
import { benchCertificates, startBenchRegistry, startTlsBenchRegistry } from './lib/big-image-registry.js';
import { measureCommand, requireGnuTime, settleDisk, type CommandSpec, type Measurement } from './lib/measure.js';
import { summarize, type Summary, mb, row, secs } from './lib/stats.js';

const VARIANTS = ['tls', 'plain', 'redirect'] as const;
type Variant = (typeof VARIANTS)[number];
/** Issue 12's targets, for the TLS row. */
const TARGET_RATIO = 0.8;
/** 150 MB in decimal units, the stricter reading of the target. */
const TARGET_RSS_BYTES = 150e6;
/** The repository root (this file runs as dist/bench/pull.js). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = join(ROOT, '.bench');
const STRATUM_CLI = join(ROOT, 'dist/src/bin/stratum.js');
const FLOOR_JS = join(ROOT, 'dist/bench/lib/pull-floor.js');
const CERTS_D = join(BENCH_DIR, 'certs.d');

/** Where a row pulls from. */
interface Endpoint {
  variant: Variant;
  /** `127.0.0.1:PORT` the tools are given. */
  host: string;
  /** Whether it speaks HTTPS (then CERTS_D/<host>/ca.crt exists). */
  tls: boolean;
}

interface Tool {
  name: 'stratum' | 'skopeo' | 'floor';
  /** The command for one cold copy into `store` (an empty directory that does not exist yet for skopeo). */
  command(endpoint: Endpoint, repoAndTag: string, store: string): CommandSpec;
}

/** One measured run, or the failure that stopped the tool in this row. */
interface Run extends Measurement {
  error?: string;
}

function tools(concurrency: number | undefined, floor: boolean): Tool[] {
  const emptyConfig = join(BENCH_DIR, 'empty-config');
  const list: Tool[] = [
    {
      name: 'stratum',
      command: (endpoint, ref, store) => ({
        command: process.execPath,
        args: [STRATUM_CLI, 'pull', '--no-unpack', '--quiet', ...(concurrency ? ['--concurrency', String(concurrency)] : []), '--store', store, `${endpoint.host}/${ref}`],
        // No user config may change what is measured; the bench CA is trusted through certs.d only.
        env: { ...process.env, STRATUM_CONFIG: '', XDG_CONFIG_HOME: emptyConfig, DOCKER_CONFIG: emptyConfig, STRATUM_CERTS_D: CERTS_D },
      }),
    },
    {
      name: 'skopeo',
      command: (endpoint, ref, store) => ({
        command: 'skopeo',
        args: ['copy', ...(endpoint.tls ? ['--src-cert-dir', join(CERTS_D, endpoint.host)] : ['--src-tls-verify=false']), `docker://${endpoint.host}/${ref}`, `oci:${store}:big`],
      }),
    },
  ];
  if (floor) {
    list.push({
      name: 'floor',
      command: (endpoint, ref, store) => {
        const [repository, tag] = ref.split(':') as [string, string];
        return {
          command: process.execPath,
          args: [FLOOR_JS, ...(endpoint.tls ? ['--ca', join(CERTS_D, endpoint.host, 'ca.crt')] : []), ...(concurrency ? ['--concurrency', String(concurrency)] : []), `${endpoint.tls ? 'https' : 'http'}://${endpoint.host}/v2/${repository}/`, tag, store],
        };
      },
    });
  }
  return list;
}

function parseOptions(): { runs: number; concurrency: number | undefined; only: Variant[]; floor: boolean } | undefined {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      concurrency: { type: 'string' },
      only: { type: 'string', default: VARIANTS.join(',') },
      floor: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/bench/pull.js [--runs N (default 3)] [--concurrency N (stratum --concurrency; default: its own)] [--only tls,plain,redirect] [--floor (add the Node floor, bench/lib/pull-floor.ts)]\n',
    );
    return undefined;
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number ≥ 1, got ${values.runs}`);
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) throw new Error(`--concurrency takes a whole number ≥ 1`);
  const only = values.only.split(',').map((v) => v.trim()).filter(Boolean);
  const unknown = only.filter((v) => !(VARIANTS as readonly string[]).includes(v));
  if (unknown.length > 0 || only.length === 0) throw new Error(`--only takes a comma-separated list of ${VARIANTS.join(', ')}; got ${values.only}`);
  return { runs, concurrency, only: VARIANTS.filter((v) => only.includes(v)), floor: values.floor };
}

interface RowResult {
  endpoint: Endpoint;
  runs: Map<Tool['name'], Run[]>;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  if (!opts) return;
  requireGnuTime();
  for (const file of [STRATUM_CLI, ...(opts.floor ? [FLOOR_JS] : [])]) if (!existsSync(file)) throw new Error(`${file} is missing: build first (npm run build)`);

  await mkdir(BENCH_DIR, { recursive: true });
  const log = (line: string) => process.stderr.write(`bench:pull: ${line}\n`);
  const stops: Array<() => Promise<void>> = [];
  const storesDir = join(BENCH_DIR, 'stores');
  try {
    const { registry: plain, image, cacheHit, storageDir } = await startBenchRegistry(BENCH_DIR, undefined, log);
    stops.push(() => plain.stop());
    log(`registry ${plain.host}, image ${image.reference} ${image.digest} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB)${cacheHit ? ', cached' : ''}`);
    const endpoints = await startEndpoints(opts.only, plain, storageDir, stops, log);

    await rm(storesDir, { recursive: true, force: true });
    await mkdir(storesDir, { recursive: true });
    const list = tools(opts.concurrency, opts.floor);
    const rows: RowResult[] = [];
    for (const endpoint of endpoints) {
      log(`row ${endpoint.variant}: ${endpoint.tls ? 'https' : 'http'}://${endpoint.host}`);
      const failed = new Map<string, string>();
      const once = async (tool: Tool): Promise<Run> => {
        const error = failed.get(tool.name);
        if (error !== undefined) return { wallSeconds: NaN, peakRssBytes: NaN, timeWallSeconds: NaN, error };
        const parent = await mkdtemp(join(storesDir, `${tool.name}-`));
        // Dirty pages of the previous run (its store, its deletion) are flushed outside the timing.
        await settleDisk();
        try {
          return await measureCommand(tool.command(endpoint, image.reference, join(parent, 'store')));
        } catch (err) {
          const message = (err as Error).message;
          failed.set(tool.name, message);
          log(`row ${endpoint.variant}: ${tool.name} failed, skipping its other runs in this row:\n${message}`);
          return { wallSeconds: NaN, peakRssBytes: NaN, timeWallSeconds: NaN, error: message };
        } finally {
          await rm(parent, { recursive: true, force: true });
        }
      };
      const describeRun = (r: Run) => (r.error !== undefined ? 'failed' : `${r.wallSeconds.toFixed(2)} s, ${mb(r.peakRssBytes)} MB`);
      rows.push({ endpoint, runs: await alternateRuns(list, opts.runs, once, (l) => log(`${endpoint.variant}: ${l}`), describeRun) });
    }
    const report = renderReport(rows, list, image, opts.runs);
    process.stdout.write(report.text);
    const json = {
      date: new Date().toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
      image: { reference: image.reference, digest: image.digest, layers: image.layers.length, compressedBytes: image.totalCompressedBytes },
      runs: opts.runs,
      stratumConcurrency: opts.concurrency ?? 'default',
      targets: { tls: { ratioWall: TARGET_RATIO, peakRssBytes: TARGET_RSS_BYTES } },
      rows: report.rows,
    };
    await writeFile(join(BENCH_DIR, 'pull-results.json'), JSON.stringify(json, null, 2) + '\n');
    log(`results written to ${join(BENCH_DIR, 'pull-results.json')}`);
  } finally {
    await rm(storesDir, { recursive: true, force: true });
    for (const stop of stops.reverse()) await stop();
  }
}

/**
 * The endpoints of the chosen rows: the TLS registry (a second docker-registry over the same
 * storage) and the redirecting front are started only when a row needs them; the certs.d
 * directory is rewritten for their ports.
 */
async function startEndpoints(only: Variant[], plain: TestRegistry, storageDir: string, stops: Array<() => Promise<void>>, log: (l: string) => void): Promise<Endpoint[]> {
  const out: Endpoint[] = [];
  let tls: TestRegistry | undefined;
  await rm(CERTS_D, { recursive: true, force: true });
  const certs = only.some((v) => v !== 'plain') ? await benchCertificates(BENCH_DIR) : undefined;
  for (const variant of only) {
    if (variant === 'plain') {
      out.push({ variant, host: plain.host, tls: false });
      continue;
    }
    if (!tls) {
      tls = await startTlsBenchRegistry(storageDir, certs!);
      const started = tls;
      stops.push(() => started.stop());
      await writeCertsDir(CERTS_D, tls.host, { ca: certs!.ca.cert });
      log(`TLS registry ${tls.url} (CA ${certs!.ca.cert})`);
    }
    if (variant === 'tls') {
      out.push({ variant, host: tls.host, tls: true });
      continue;
    }
    const front = await FaultProxy.start(tls.url, { tls: certs!.server });
    stops.push(() => front.stop());
    front.redirectBlobs(tls.url);
    await writeCertsDir(CERTS_D, front.host, { ca: certs!.ca.cert });
    log(`redirecting front ${front.url}: blob GETs → 307 ${tls.url}`);
    out.push({ variant, host: front.host, tls: true });
  }
  return out;
}

function renderReport(rows: RowResult[], list: Tool[], image: { reference: string; layers: unknown[]; totalCompressedBytes: number }, runs: number): { text: string; rows: unknown[] } {
  const out: string[] = [];
  const jsonRows: unknown[] = [];
  out.push(`stratum pull vs skopeo copy: ${image.reference} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB compressed), ${runs} alternating runs each after a warm-up`);
  out.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  out.push('');
  out.push(row(['row', 'tool', 'wall median', 'wall min', 'wall max', 'peak RSS median', 'RSS max', 'ratio to skopeo']));
  out.push(row(['---', '---', '---', '---', '---', '---', '---', '---']));
  const verdicts: string[] = [];
  for (const { endpoint, runs: results } of rows) {
    const ok = (name: Tool['name']) => results.get(name)!.filter((r) => r.error === undefined);
    const error = (name: Tool['name']) => results.get(name)!.find((r) => r.error !== undefined)?.error;
    const summaries = new Map(list.map((t) => [t.name, ok(t.name).length > 0 && !error(t.name) ? { wall: summarize(ok(t.name).map((r) => r.wallSeconds)), rss: summarize(ok(t.name).map((r) => r.peakRssBytes)) } : undefined]));
    const s = summaries.get('stratum');
    const k = summaries.get('skopeo');
    const toSkopeo = (name: Tool['name']) => {
      const m = summaries.get(name);
      return m && k ? m.wall.median / k.wall.median : undefined;
    };
    const ratio = toSkopeo('stratum');
    for (const tool of list) {
      const m = summaries.get(tool.name);
      const cells = m
        ? [secs(m.wall.median), secs(m.wall.min), secs(m.wall.max), `${mb(m.rss.median)} MB`, `${mb(m.rss.max)} MB`]
        : [`failed: ${firstLine(error(tool.name))}`, '', '', '', ''];
      const toolRatio = tool.name === 'skopeo' ? undefined : toSkopeo(tool.name);
      out.push(row([endpoint.variant, tool.name, ...cells, toolRatio !== undefined ? `${toolRatio.toFixed(2)}x` : '']));
    }
    if (endpoint.variant === 'tls') {
      verdicts.push(
        ratio === undefined
          ? `tls row: no ratio (a tool failed) — targets ≤ ${TARGET_RATIO}x skopeo, peak RSS ≤ ${mb(TARGET_RSS_BYTES)} MB: NOT MEASURED`
          : `tls row: ratio ${ratio.toFixed(2)}x (target ≤ ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? 'met' : 'MISSED'}); stratum peak RSS ${mb(s!.rss.median)} MB (target ≤ ${mb(TARGET_RSS_BYTES)} MB: ${s!.rss.median <= TARGET_RSS_BYTES ? 'met' : 'MISSED'})`,
      );
    }
    jsonRows.push({
      variant: endpoint.variant,
      tls: endpoint.tls,
      ratioWall: ratio ?? null,
      ...(summaries.has('floor') ? { ratioFloorWall: toSkopeo('floor') ?? null } : {}),
      tools: Object.fromEntries(
        list.map((t) => {
          const m = summaries.get(t.name);
          return [t.name, { command: describe(t.command({ ...endpoint, host: 'HOST' }, image.reference, 'STORE')), error: error(t.name) ?? null, wallSeconds: m ? omitSamples(m.wall) : null, peakRssBytes: m ? omitSamples(m.rss) : null, runs: results.get(t.name) }];
        }),
      ),
    });
  }
  out.push('', ...verdicts);
  return { text: out.join('\n') + '\n', rows: jsonRows };
}

function firstLine(text: string | undefined): string {
  // GNU time's own lines ("Command exited with…", "%e %M") say nothing about the failure.
  const lines = (text ?? '').split('\n').map((l) => l.trim()).filter((l) => l && !/^Command exited with|^[\d.]+ \d+$/.test(l));
  // The measured command's own last words say more than the "failed (exit 1)" header.
  return (lines.at(-1) ?? 'unknown error').slice(0, 160);
}

function omitSamples(s: Summary): Omit<Summary, 'samples'> {
  return { median: s.median, min: s.min, max: s.max };
}

function describe(spec: CommandSpec): string {
  const cmd = spec.command === process.execPath ? 'node' : spec.command;
  return [cmd, ...spec.args.map((a) => (a === STRATUM_CLI ? 'dist/src/bin/stratum.js' : a === FLOOR_JS ? 'dist/bench/lib/pull-floor.js' : a))].join(' ');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:pull: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
