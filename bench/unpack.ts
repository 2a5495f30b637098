/**
 * Issue 3's unpack benchmark: a cold pull that ends with the image unpacked, of the same
 * multi-layer image (bench/big:1: ≈231 MB compressed, 6 layers, one of 12,000 small files) from
 * docker-registry on 127.0.0.1, by
 *   - stratum: `stratum pull --snapshotter overlay` (unpacks by default),
 *   - stratum-erofs: `stratum pull --snapshotter erofs` (each layer written as one EROFS image),
 *   - containerd 1.6: `ctr image pull --snapshotter overlayfs` against a private daemon,
 *   - skopeo copy + `umoci raw unpack` (two commands, timed together),
 *   - the floor: sequential `gzip -dc LAYER | tar -x` of the same layer blobs into one dir
 *     (no download, no digest checks, no whiteouts: what unpacking cannot beat),
 * in one run, alternating the tools after one discarded warm-up of each, every run into fresh
 * state that is deleted afterwards.
 *
 *   npm run build && node dist/bench/unpack.js [--runs N] [--baseline CHECKOUT]... [--only TOOL,...]
 *
 * --baseline adds `stratum@baseline`, the same pull run from another built checkout (a worktree of
 * an older commit), alternated with the others: a before/after in one set, same machine state.
 * Given more than once (a bisection), each is `stratum@<checkout's folder name>`.
 *
 * Prints a table and the ratios stratum/containerd and stratum/floor (and stratum-erofs's, against
 * issue 13's targets) against the targets, and
 * writes .bench/unpack-results.json.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { alternateRuns } from './lib/alternate.js';
import { startBenchRegistry, type CachedBigImage } from './lib/big-image-registry.js';
import { CTR, requireContainerd, startContainerd, type PrivateContainerd } from './lib/containerd.js';
import { GNU_TIME, measureCommand, requireGnuTime, settleDisk, type CommandSpec } from './lib/measure.js';
import { createScratchFs, type ScratchFs } from './lib/scratch-fs.js';
import { resetPageCache, withSharedLibraries } from './lib/page-cache.js';
import { benchRegistryStorage, registryBlobPath } from './lib/registry-blobs.js';
import { summarize, type Summary, mb, row, secs } from './lib/stats.js';

const TARGET_RATIO_CONTAINERD = 0.8;
const TARGET_RATIO_FLOOR = 1.2;
/** 150 MB in decimal units, the stricter reading of the target. */
const TARGET_RSS_BYTES = 150e6;
/** Issue 13: cold pull + unpack into EROFS layers against containerd 1.6 overlayfs and the tar floor. */
const TARGET_EROFS_RATIO_CONTAINERD = 0.5;
const TARGET_EROFS_RATIO_FLOOR = 0.6;
/** The repository root (this file runs as dist/bench/unpack.js). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = join(ROOT, '.bench');
const RUNS_DIR = join(BENCH_DIR, 'unpack-runs');
const STRATUM_CLI = join(ROOT, 'dist/src/bin/stratum.js');
const NAMESPACE = 'bench';

type ToolName = 'stratum' | 'stratum-erofs' | `stratum@${string}` | 'containerd' | 'skopeo+umoci' | 'tar-floor';

interface Baseline {
  name: `stratum@${string}`;
  /** The built checkout's root. */
  root: string;
  cli: string;
}

interface Run {
  wallSeconds: number;
  /** Peak RSS of the measured command (GNU time %M: the largest process of its tree). */
  peakRssBytes: number;
  /** containerd only: the daemon's VmHWM (a fresh daemon per run, so the peak of this run). */
  daemonPeakRssBytes?: number;
}

interface Prepared {
  spec: CommandSpec;
  /** After the timed command: checks it did the work and returns extra figures. */
  finish(): Promise<Partial<Run>>;
  /** Removes everything the run made (outside the timing). */
  cleanup(): Promise<void>;
}

interface Tool {
  name: ToolName;
  /** Sets up one cold run in `dir` (fresh, empty). */
  prepare(dir: string): Promise<Prepared>;
  /** The command line as documented in the results. */
  describe: string;
}

/** Counts regular files under dir (outside the timing) so a tool that did nothing is caught. */
function countFiles(dir: string): number {
  const r = spawnSync('find', [dir, '-type', 'f'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`find ${dir} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).length;
}

function expectFiles(tool: string, dir: string, image: CachedBigImage): void {
  const want = image.options.smallFilesLayer + 2 * (image.layers.length - 1);
  const got = countFiles(dir);
  if (got !== want) throw new Error(`${tool}: ${dir} holds ${got} files, expected ${want}`);
}

/**
 * Run directories live on a fresh scratch ext4 (see createScratchFs) and are deleted only with it,
 * after the last run: on ext4 the first files created after a large deletion cost seconds of extra
 * kernel time (measured here: the same 12k-file extraction took 0.3 s, or 3.7-9.8 s right after an
 * rm -rf), which would land on whichever tool runs next.
 */
const pendingRemovals: string[] = [];
async function removeAtEnd(dir: string): Promise<void> {
  pendingRemovals.push(dir);
}

function stratumTool(name: ToolName, cli: string, ref: string, image: CachedBigImage, snapshotter: 'overlay' | 'erofs' = 'overlay'): Tool {
  return {
      name,
      describe: `node ${name.startsWith('stratum@') ? cli : 'dist/src/bin/stratum.js'} pull --quiet --snapshotter ${snapshotter} --store STORE HOST/${image.reference}`,
      async prepare(dir) {
        const store = join(dir, 'store');
        return {
          spec: {
            command: process.execPath,
            args: [cli, 'pull', '--quiet', '--snapshotter', snapshotter, '--store', store, ref],
            // No user config may change what is measured.
            env: { ...process.env, STRATUM_CONFIG: '', XDG_CONFIG_HOME: join(BENCH_DIR, 'empty-config'), DOCKER_CONFIG: join(BENCH_DIR, 'empty-config') },
          },
          // The store holds the blobs and the unpacked snapshots: at least the image's files (erofs: one image per layer).
          finish: async () => {
            if (snapshotter === 'erofs') {
              const images = spawnSync('find', [join(store, 'snapshots', 'erofs'), '-name', 'layer.erofs'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
              if (images.length !== image.layers.length) throw new Error(`${name}: ${store} holds ${images.length} layer images, expected ${image.layers.length}`);
              return {};
            }
            const want = image.options.smallFilesLayer + 2 * (image.layers.length - 1);
            const got = countFiles(store);
            if (got < want) throw new Error(`${name}: ${store} holds ${got} files, expected the image's ${want} unpacked files at least`);
            return {};
          },
          cleanup: () => removeAtEnd(dir),
        };
      },
  };
}

function tools(host: string, image: CachedBigImage, baselines: Baseline[]): Tool[] {
  const ref = `${host}/${image.reference}`;
  const storage = benchRegistryStorage(BENCH_DIR, image.options);
  const blobs = image.layers.map((l) => registryBlobPath(storage, l.digest));
  for (const b of blobs) if (!existsSync(b)) throw new Error(`layer blob ${b} missing from the registry's storage`);
  return [
    stratumTool('stratum', STRATUM_CLI, ref, image),
    stratumTool('stratum-erofs', STRATUM_CLI, ref, image, 'erofs'),
    ...baselines.map((b) => stratumTool(b.name, b.cli, ref, image)),
    {
      name: 'containerd',
      describe: `ctr -a SOCK -n ${NAMESPACE} image pull --plain-http --snapshotter overlayfs HOST/${image.reference} (private containerd 1.6, fresh root per run)`,
      async prepare(dir) {
        const daemon: PrivateContainerd = await startContainerd(dir);
        return {
          spec: { command: CTR, args: ['-a', daemon.socket, '-n', NAMESPACE, 'image', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref] },
          async finish() {
            const daemonPeakRssBytes = await daemon.peakRssBytes();
            const r = spawnSync(CTR, ['-a', daemon.socket, '-n', NAMESPACE, 'snapshots', '--snapshotter', 'overlayfs', 'ls'], { encoding: 'utf8' });
            const committed = r.stdout.split('\n').filter((l) => /\bCommitted\s*$/.test(l)).length;
            if (committed !== image.layers.length) throw new Error(`containerd: ${committed} committed snapshots, expected ${image.layers.length}:\n${r.stdout}${r.stderr}`);
            return { daemonPeakRssBytes };
          },
          async cleanup() {
            await daemon.stop();
            await removeAtEnd(dir);
          },
        };
      },
    },
    {
      name: 'skopeo+umoci',
      describe: `skopeo copy --src-tls-verify=false docker://HOST/${image.reference} oci:DIR/layout:big && umoci raw unpack --image DIR/layout:big DIR/rootfs`,
      async prepare(dir) {
        const layout = join(dir, 'layout');
        const rootfs = join(dir, 'rootfs');
        return {
          spec: {
            command: 'bash',
            args: [
              '-c',
              'set -e; skopeo copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:big"; umoci raw unpack --image "$2:big" "$3" >/dev/null',
              'bash',
              ref,
              layout,
              rootfs,
            ],
          },
          finish: async () => (expectFiles('skopeo+umoci', rootfs, image), {}),
          cleanup: () => removeAtEnd(dir),
        };
      },
    },
    {
      name: 'tar-floor',
      describe: 'for each layer blob, oldest first: gzip -dc BLOB | tar -x -C DIR (blobs read from the registry storage)',
      async prepare(dir) {
        const rootfs = join(dir, 'rootfs');
        await mkdir(rootfs);
        return {
          spec: { command: 'bash', args: ['-c', 'set -e -o pipefail; d="$1"; shift; for f in "$@"; do gzip -dc "$f" | tar -x -C "$d"; done', 'bash', rootfs, ...blobs] },
          finish: async () => (expectFiles('tar-floor', rootfs, image), {}),
          cleanup: () => removeAtEnd(dir),
        };
      },
    },
  ];
}

/** Why stratum cannot be measured yet, or undefined when its pull unpacks. */
function stratumUnavailable(cli: string = STRATUM_CLI): string | undefined {
  if (!existsSync(cli)) return `${cli} is missing (npm run build)`;
  const r = spawnSync(process.execPath, [cli, 'pull', '--help'], { encoding: 'utf8' });
  if (r.status !== 0) return `stratum pull --help failed: ${(r.stderr || r.stdout).trim().split('\n')[0]}`;
  if (!/--snapshotter/.test(r.stdout + r.stderr)) return 'stratum pull has no --snapshotter option yet (unpack not integrated)';
  return undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      baseline: { type: 'string', multiple: true },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/unpack.js [--runs N (default 3)] [--baseline CHECKOUT (a built checkout to run as stratum@baseline; repeatable: stratum@FOLDER each)] [--only TOOL,... (e.g. stratum,stratum@baseline,tar-floor)]\n');
    return;
  }
  const baselineRoots = values.baseline ?? [];
  const baselines: Baseline[] = baselineRoots.map((root) => ({
    name: baselineRoots.length === 1 ? 'stratum@baseline' : `stratum@${basename(resolve(root))}`,
    root,
    // Builds before the bundle (session 11) have only the module tree's entry.
    cli: existsSync(join(root, 'dist/src/bin/stratum.js')) ? join(root, 'dist/src/bin/stratum.js') : join(root, 'dist/src/cli/main.js'),
  }));
  if (new Set(baselines.map((b) => b.name)).size !== baselines.length) throw new Error('--baseline: two checkouts share a folder name');
  const only = values.only === undefined ? undefined : new Set(values.only.split(','));
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number ≥ 1, got ${values.runs}`);
  if (process.getuid?.() !== 0) throw new Error('run as root: containerd, umoci and tar must set real owners');
  requireGnuTime();
  requireContainerd();

  await mkdir(BENCH_DIR, { recursive: true });
  const log = (line: string) => process.stderr.write(`bench:unpack: ${line}\n`);
  const { registry, image, cacheHit } = await startBenchRegistry(BENCH_DIR, undefined, log);
  let scratch: ScratchFs | undefined;
  try {
    log(`registry ${registry.host}, image ${image.reference} ${image.digest} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB)${cacheHit ? ', cached' : ''}`);
    await rm(RUNS_DIR, { recursive: true, force: true });
    scratch = await createScratchFs(RUNS_DIR, 16);
    // Anything else busy on the machine (the cores and the disk are shared) skews every number.
    const loadBefore = loadavg();
    if (loadBefore[0]! > 1) log(`WARNING: load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before the runs: the numbers will be noisy`);
    const skipped = new Map<ToolName, string>();
    const why = stratumUnavailable();
    if (why) skipped.set('stratum', why);
    for (const b of baselines) {
      const baselineWhy = stratumUnavailable(b.cli);
      if (baselineWhy) skipped.set(b.name, baselineWhy);
    }
    const all = tools(registry.host, image, baselines).filter((t) => !only || only.has(t.name));
    if (only) for (const name of only) if (!all.some((t) => t.name === name)) throw new Error(`--only: no tool named ${name}`);
    const list = all.filter((t) => !skipped.has(t.name));
    for (const [name, reason] of skipped) log(`${name}: n/a (${reason})`);

    // What every run reads besides its own output: the registry's blobs and every tool's files.
    const warm = [
      benchRegistryStorage(BENCH_DIR, image.options),
      join(ROOT, 'dist'),
      join(ROOT, 'node_modules'),
      join(ROOT, 'build', 'Release'),
      ...baselines.flatMap((b) => ['dist', 'node_modules', 'build/Release'].map((d) => join(b.root, d))),
      ...(await withSharedLibraries([process.execPath, GNU_TIME, CTR, '/usr/bin/containerd', '/usr/bin/containerd-shim-runc-v2', '/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry', '/usr/bin/bash', '/usr/bin/gzip', '/usr/bin/tar'].filter((f) => existsSync(f)))),
    ];
    const once = async (tool: Tool): Promise<Run> => {
      await resetPageCache(warm);
      const dir = await mkdtemp(join(RUNS_DIR, `${tool.name.replace('+', '-')}-`));
      const prepared = await tool.prepare(dir).catch(async (err: unknown) => {
        await rm(dir, { recursive: true, force: true });
        throw err;
      });
      try {
        // Dirty pages of the previous run (its files, its deletion) are flushed, and the disk left to go idle, outside the timing.
        await settleDisk();
        const m = await measureCommand(prepared.spec);
        const extra = await prepared.finish();
        return { wallSeconds: m.wallSeconds, peakRssBytes: m.peakRssBytes, ...extra };
      } finally {
        await prepared.cleanup();
      }
    };

    const results = await alternateRuns(list, runs, once, log, (r) => `${r.wallSeconds.toFixed(2)} s, ${mb(r.peakRssBytes)} MB${r.daemonPeakRssBytes ? ` (daemon ${mb(r.daemonPeakRssBytes)} MB)` : ''}`);

    const wall = (name: ToolName) => (results.has(name) ? summarize(results.get(name)!.map((r) => r.wallSeconds)) : undefined);
    const rss = (name: ToolName) => (results.has(name) ? summarize(results.get(name)!.map((r) => r.peakRssBytes)) : undefined);
    const daemonRss = results.has('containerd') ? summarize(results.get('containerd')!.map((r) => r.daemonPeakRssBytes ?? 0)) : undefined;
    const ratio = (a: ToolName, b: ToolName) => {
      const wa = wall(a);
      const wb = wall(b);
      return wa && wb ? wa.median / wb.median : undefined;
    };
    const stratumVsContainerd = ratio('stratum', 'containerd');
    const stratumVsFloor = ratio('stratum', 'tar-floor');
    const stratumRss = rss('stratum');
    const erofsVsContainerd = ratio('stratum-erofs', 'containerd');
    const erofsVsFloor = ratio('stratum-erofs', 'tar-floor');

    const out: string[] = [];
    out.push(`cold pull + unpack of ${image.reference} (${image.layers.length} layers, ${mb(image.totalCompressedBytes)} MB compressed, ${image.options.smallFilesLayer} small files in one layer), ${runs} alternating runs each after a warm-up`);
    const loadAfter = loadavg();
    out.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
    out.push(`load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
    out.push('');
    out.push(row(['tool', 'wall median', 'wall min', 'wall max', 'peak RSS median']));
    out.push(row(['---', '---', '---', '---', '---']));
    for (const tool of all) {
      const w = wall(tool.name);
      const r = rss(tool.name);
      if (!w || !r) {
        out.push(row([tool.name, 'n/a', 'n/a', 'n/a', 'n/a']));
        continue;
      }
      const rssText = tool.name === 'containerd' && daemonRss ? `ctr ${mb(r.median)} MB + daemon ${mb(daemonRss.median)} MB` : `${mb(r.median)} MB`;
      out.push(row([tool.name, secs(w.median), secs(w.min), secs(w.max), rssText]));
    }
    out.push('');
    const verdict = (v: number | undefined, target: number) => (v === undefined ? 'n/a' : `${v.toFixed(2)}x  (target ≤ ${target}x: ${v <= target ? 'met' : 'MISSED'})`);
    out.push(`stratum/containerd (wall medians): ${verdict(stratumVsContainerd, TARGET_RATIO_CONTAINERD)}`);
    out.push(`stratum/tar-floor (wall medians): ${verdict(stratumVsFloor, TARGET_RATIO_FLOOR)}`);
    out.push(
      `stratum peak RSS (median): ${stratumRss ? `${mb(stratumRss.median)} MB  (target ≤ ${mb(TARGET_RSS_BYTES)} MB: ${stratumRss.median <= TARGET_RSS_BYTES ? 'met' : 'MISSED'})` : 'n/a'}`,
    );
    // Issue 13's goal for EROFS layers written straight from the tar.
    out.push(`stratum-erofs/containerd (wall medians): ${verdict(erofsVsContainerd, TARGET_EROFS_RATIO_CONTAINERD)}`);
    out.push(`stratum-erofs/tar-floor (wall medians): ${verdict(erofsVsFloor, TARGET_EROFS_RATIO_FLOOR)}`);
    const informative = (['containerd', 'skopeo+umoci', ...baselines.map((b) => b.name)] as const).map((n) => {
      const r = ratio(n, 'tar-floor');
      return `${n}/tar-floor ${r === undefined ? 'n/a' : `${r.toFixed(2)}x`}`;
    });
    out.push(`for reference: ${informative.join(', ')}`);
    for (const [name, reason] of skipped) out.push(`${name}: n/a — ${reason}`);
    process.stdout.write(out.join('\n') + '\n');

    const json = {
      date: new Date().toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version, loadBefore, loadAfter },
      image: { reference: image.reference, digest: image.digest, layers: image.layers.length, compressedBytes: image.totalCompressedBytes, smallFiles: image.options.smallFilesLayer },
      runs,
      tools: Object.fromEntries(
        all.map((t) => [
          t.name,
          results.has(t.name)
            ? {
                command: t.describe,
                wallSeconds: omitSamples(wall(t.name)!),
                peakRssBytes: omitSamples(rss(t.name)!),
                ...(t.name === 'containerd' && daemonRss ? { daemonPeakRssBytes: omitSamples(daemonRss) } : {}),
                runs: results.get(t.name),
              }
            : { command: t.describe, unavailable: skipped.get(t.name) },
        ]),
      ),
      ratios: { stratumVsContainerd: stratumVsContainerd ?? null, stratumVsFloor: stratumVsFloor ?? null, erofsVsContainerd: erofsVsContainerd ?? null, erofsVsFloor: erofsVsFloor ?? null },
      targets: { stratumVsContainerd: TARGET_RATIO_CONTAINERD, stratumVsFloor: TARGET_RATIO_FLOOR, peakRssBytes: TARGET_RSS_BYTES },
      met:
        stratumVsContainerd === undefined
          ? null
          : {
              stratumVsContainerd: stratumVsContainerd <= TARGET_RATIO_CONTAINERD,
              stratumVsFloor: stratumVsFloor! <= TARGET_RATIO_FLOOR,
              peakRss: stratumRss!.median <= TARGET_RSS_BYTES,
            },
    };
    await writeFile(join(BENCH_DIR, 'unpack-results.json'), JSON.stringify(json, null, 2) + '\n');
    log(`results written to ${join(BENCH_DIR, 'unpack-results.json')}`);
  } finally {
    // The runs' trees go with the scratch filesystem.
    pendingRemovals.splice(0);
    await scratch?.remove();
    await registry.stop();
  }
}

function omitSamples(s: Summary): Omit<Summary, 'samples'> {
  return { median: s.median, min: s.min, max: s.max };
}


main().catch((err: unknown) => {
  process.stderr.write(`bench:unpack: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
