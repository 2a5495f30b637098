/**
 * Issue 13's drivers benchmark: Docker's storage-driver comparison with measured numbers. For each
 * stratum backend that works here and for Docker 20.10 itself (a private dockerd per run with
 * overlay2, vfs or btrfs), in one run, alternating the drivers' order from run to run:
 *   - cold pull + unpack of bench/small:1 (~50 MB) and bench/big-drivers:1 (~230 MB) from a
 *     docker-registry on 127.0.0.1;
 *   - "container start" without a runtime: a writable snapshot prepared and mounted, one file read
 *     (Docker: `docker create` + `docker start` of a tiny static program), cold and ×10 warm;
 *   - 1000 small files written into the writable layer; one file read 1000 times; one byte
 *     appended to a 100 MiB file of the image (the copy-up);
 *   - the disk used by those 10 writable snapshots; commit of a 100 MB change; removal.
 * Prints one table (each stratum backend's ratio to Docker's driver of the same family) and writes
 * every run to .bench/drivers-results.json.
 *
 *   npm run bench:drivers [-- --runs N] [-- --only overlay,docker overlay2,...] [-- --image small|big|both]
 *
 * See bench/README.md (`bench:drivers`) for what each row measures and how it is kept fair.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SNAPSHOTTER_NAMES } from '../src/snapshotter/names.js';
import { DRIVER_EXTRAS } from '../test/fixtures/big-image.js';
import { startFilePool, type FilePool } from '../test/helpers/zfs.js';
import { DRIVER_IMAGES, startBenchRegistry, type BenchRegistry } from './lib/big-image-registry.js';
import { DOCKER, DOCKERD, dockerMissing, startBenchDockerd, type BenchDockerd } from './lib/dockerd.js';
import { ratios, renderTable, type Column, type Failures, type Metric, type Samples } from './lib/drivers-table.js';
import { GNU_TIME, measureCommand, requireGnuTime, runCapture, runQuiet, settleDisk, type CommandSpec } from './lib/measure.js';
import { resetPageCache, withSharedLibraries } from './lib/page-cache.js';
import { benchRegistryStorage } from './lib/registry-blobs.js';
import { createScratchFs, type ScratchFs } from './lib/scratch-fs.js';
import { mb } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = join(ROOT, '.bench');
const RUNS_DIR = join(BENCH_DIR, 'drivers-runs');
const STRATUM_CLI = join(ROOT, 'dist/src/bin/stratum.js');
const CHANGE_FILE = join(BENCH_DIR, 'change-100m.bin');
const CHANGE_BYTES = 100e6;
const WARM_STARTS = 10;
/**
 * How long each timed step waits at most for the disks to go idle after a sync (settleDisk): on a
 * shared machine other work may never let them, and 30 s per step would make a run take hours.
 */
const SETTLE_MS = 3000;
/**
 * Every command a run starts is killed after this long (coreutils `timeout`) and its step shows as
 * failed: a FUSE daemon that stops answering (zfs-fuse is one per machine, shared with whatever
 * else runs here) must not hang the benchmark.
 */
const STEP_TIMEOUT_S = 600;
const ZFS_PROBE_TIMEOUT_S = 30;

type ImageName = keyof typeof DRIVER_IMAGES;
type Host = 'ext4' | 'btrfs' | 'zfs';

/** One column: a stratum backend (its snapshotter on a host filesystem) or a Docker storage driver. */
interface DriverSpec {
  name: string;
  kind: 'stratum' | 'docker';
  /** stratum's --snapshotter, or dockerd's storage-driver. */
  driver: string;
  /** The filesystem the store (or Docker's data root) lives on. */
  host: Host;
  anchor?: string;
  anchorNote?: string;
}

const NO_DEVMAPPER = 'none (devicemapper: no device-mapper in this kernel)';
/** Adding a backend is one line here; one stratum does not have yet shows as n/a with the reason. */
const DRIVERS: readonly DriverSpec[] = [
  { name: 'overlay', kind: 'stratum', driver: 'overlay', host: 'ext4', anchor: 'docker overlay2' },
  { name: 'fuse-overlayfs', kind: 'stratum', driver: 'fuse-overlayfs', host: 'ext4', anchor: 'docker overlay2' },
  { name: 'erofs', kind: 'stratum', driver: 'erofs', host: 'ext4', anchor: 'docker overlay2' },
  { name: 'native', kind: 'stratum', driver: 'native', host: 'ext4', anchor: 'docker vfs' },
  { name: 'btrfs', kind: 'stratum', driver: 'btrfs', host: 'btrfs', anchor: 'docker btrfs' },
  { name: 'zfs', kind: 'stratum', driver: 'zfs', host: 'zfs', anchor: 'docker btrfs', anchorNote: 'docker btrfs (nearest: Docker zfs needs kernel ZFS)' },
  { name: 'blockfile', kind: 'stratum', driver: 'blockfile', host: 'ext4', anchorNote: NO_DEVMAPPER },
  { name: 'blockfile@btrfs', kind: 'stratum', driver: 'blockfile', host: 'btrfs', anchorNote: NO_DEVMAPPER },
  { name: 'docker overlay2', kind: 'docker', driver: 'overlay2', host: 'ext4' },
  { name: 'docker vfs', kind: 'docker', driver: 'vfs', host: 'ext4' },
  { name: 'docker btrfs', kind: 'docker', driver: 'btrfs', host: 'btrfs' },
];

function metricsFor(images: readonly ImageName[]): Metric[] {
  return [
    ...images.map((i) => ({ id: `pull-${i}`, label: `cold pull + unpack, ${i} image`, unit: 'seconds' as const })),
    { id: 'start-cold', label: 'start: writable snapshot + mount + read a file, cold', unit: 'seconds' },
    { id: 'start-warm', label: `start, warm (median of ${WARM_STARTS})`, unit: 'seconds' },
    { id: 'write-1000', label: 'write 1000 small files + sync', unit: 'seconds' },
    { id: 'read-1000', label: 'read one file 1000 times', unit: 'seconds' },
    { id: 'append-1b', label: 'append 1 byte to a 100 MiB image file + sync (copy-up)', unit: 'seconds' },
    { id: 'disk-10', label: `disk used by ${WARM_STARTS} writable snapshots`, unit: 'bytes' },
    { id: 'commit-100m', label: 'commit a 100 MB change (image)', unit: 'seconds' },
    { id: 'remove', label: 'remove the snapshot with that change', unit: 'seconds' },
    { id: 'commit-snapshot', label: 'snapshotter commit of a 100 MB change (no layer tar)', unit: 'seconds' },
  ];
}

/** Single-quotes a word for bash. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const bash = (script: string): CommandSpec => ({ command: 'timeout', args: ['-k', '10', String(STEP_TIMEOUT_S), 'bash', '-c', `set -e -o pipefail; ${script}`] });
/** An untimed setup command, under the same timeout. */
const quiet = (command: string, args: string[], seconds = STEP_TIMEOUT_S) => runQuiet('timeout', ['-k', '10', String(seconds), command, ...args]);
/** The last meaningful line of an error, for a table note. */
const reasonOf = (err: unknown) =>
  ((err as Error).message ?? String(err))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-1)[0]
    ?.slice(0, 240) ?? 'failed';

/** Where a run puts its state: a directory on each host filesystem. */
interface Hosts {
  ext4?: ScratchFs;
  btrfs?: ScratchFs;
  zfs?: FilePool;
}

/** Bytes in use on the filesystem holding `dir`: statfs after sync, read until two readings a second apart agree (zfs-fuse and btrfs account late). */
async function usedBytes(host: Host, dir: string, pool?: FilePool): Promise<number> {
  const once = async () => {
    await quiet('sync', [], 120);
    if (host === 'zfs' && pool) return Number((await runCapture('timeout', ['-k', '10', '60', 'zfs', 'get', '-Hpo', 'value', 'used', pool.pool])).trim());
    const s = await statfs(dir);
    return (s.blocks - s.bfree) * s.bsize;
  };
  let last = await once();
  for (let i = 0; i < 15; i++) {
    await sleep(1000);
    const now = await once();
    if (now === last) return now;
    last = now;
  }
  return last;
}

interface Recorder {
  sample(metric: string, value: number): void;
  fail(metric: string, err: unknown): void;
}

interface Context {
  registry: BenchRegistry['registry'];
  images: readonly ImageName[];
  opsImage: ImageName;
  refs: Record<ImageName, string>;
  hosts: Hosts;
  warm: string[];
  log: (line: string) => void;
}

/** A directory for run `tag` of a column on its host filesystem. */
async function runDir(ctx: Context, spec: DriverSpec, tag: string): Promise<string> {
  const base = spec.host === 'zfs' ? ctx.hosts.zfs!.mnt : ctx.hosts[spec.host]!.dir;
  const dir = join(base, `${spec.name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${tag}`);
  // A child process, not fs.mkdir: a FUSE call that never returns would hold a libuv thread for good.
  await quiet('mkdir', ['-p', dir], 60);
  return dir;
}

/** Runs one timed step; a failure is recorded for `metric` and rethrown when `fatal` (later steps need it). */
async function timed(rec: Recorder, metric: string, spec: CommandSpec, fatal = false): Promise<boolean> {
  try {
    await settleDisk(SETTLE_MS);
    const m = await measureCommand(spec);
    rec.sample(metric, m.wallSeconds);
    return true;
  } catch (err) {
    rec.fail(metric, err);
    if (fatal) throw err;
    return false;
  }
}

/** One run of a stratum backend: a fresh store on its host, every measurement in order. */
async function stratumRun(ctx: Context, spec: DriverSpec, tag: string, rec: Recorder): Promise<void> {
  const dir = await runDir(ctx, spec, tag);
  const store = join(dir, 'store');
  const env = { ...process.env, STRATUM_CONFIG: '', XDG_CONFIG_HOME: join(BENCH_DIR, 'empty-config'), DOCKER_CONFIG: join(BENCH_DIR, 'empty-config') };
  const cliWords = [process.execPath, STRATUM_CLI, '--store', store, '--snapshotter', spec.driver];
  const cli = (args: string[]) => [...cliWords, ...args].map(q).join(' ');
  const mounted: string[] = [];
  const ref = ctx.refs[ctx.opsImage];
  const target = (i: number) => join(dir, `c${i}`);
  const start = (i: number): CommandSpec => ({
    ...bash(`${cli(['mount', '--rw', `c${i}`, ref, target(i)])} >/dev/null && cat ${q(join(target(i), DRIVER_EXTRAS.readFile))} >/dev/null`),
    env,
  });
  try {
    for (const image of ctx.images) {
      await resetPageCache(ctx.warm);
      await timed(rec, `pull-${image}`, { ...bash(`${cli(['pull', '--quiet', ctx.refs[image]])} >/dev/null`), env }, image === ctx.opsImage);
    }
    await resetPageCache(ctx.warm);
    mounted.push(target(0));
    await timed(rec, 'start-cold', start(0), true);
    const before = await usedBytes(spec.host, dir, ctx.hosts.zfs);
    for (let i = 1; i <= WARM_STARTS; i++) {
      mounted.push(target(i));
      await timed(rec, 'start-warm', start(i), true);
    }
    rec.sample('disk-10', (await usedBytes(spec.host, dir, ctx.hosts.zfs)) - before);
    await fileOps(rec, target(0));
    await quiet('cp', [CHANGE_FILE, join(target(1), 'change.bin')]);
    if (await timed(rec, 'commit-100m', { ...bash(`${cli(['commit', 'c1', `bench/committed:${tag}`])} >/dev/null`), env })) {
      // One command, as `docker rm -f`: --force undoes the snapshot's mount first.
      await timed(rec, 'remove', { ...bash(`${cli(['snapshot', 'rm', '--force', 'c1'])} >/dev/null`), env });
    }
    // The snapshotter's own commit (containerd's Commit: active → committed, no diff, no tar),
    // which Docker does not expose: `docker commit` always writes a layer.
    await quiet('cp', [CHANGE_FILE, join(target(2), 'change.bin')]);
    await timed(rec, 'commit-snapshot', { ...bash(`${cli(['snapshot', 'commit', 'c2-committed', 'c2'])} >/dev/null`), env });
  } finally {
    // Mounts go (fuse daemons end with them); the stores stay on the scratch filesystems until the end.
    for (const t of mounted) spawnSync('timeout', ['-k', '10', '120', process.execPath, STRATUM_CLI, '--store', store, 'unmount', t], { env, stdio: 'ignore' });
    if (spec.host === 'zfs') await quiet('bash', ['-c', `zfs list -H -o name,mountpoint | awk -v d=${q(dir)} 'index($2, d) == 1 {print $1}' | sort -r | xargs -r -n1 zfs destroy -r -f`], 120).catch(() => {});
  }
}

/** The file operations, on a mounted writable root `root` (stratum's mount or a container's /proc/PID/root). */
async function fileOps(rec: Recorder, root: string): Promise<void> {
  const line = 'x'.repeat(99);
  await timed(rec, 'write-1000', bash(`mkdir ${q(join(root, 'w'))}; for ((i = 0; i < 1000; i++)); do echo ${line} > ${q(join(root, 'w'))}/f$i; done; sync -f ${q(join(root, 'w'))}`));
  await timed(rec, 'read-1000', bash(`for ((i = 0; i < 1000; i++)); do read -r l < ${q(join(root, DRIVER_EXTRAS.readFile))}; done`));
  await timed(rec, 'append-1b', bash(`printf x >> ${q(join(root, DRIVER_EXTRAS.bigFile))}; sync -f ${q(join(root, DRIVER_EXTRAS.bigFile))}`));
}

/** One run of a Docker driver: a fresh private dockerd (its start untimed) with its data root on the host filesystem. */
async function dockerRun(ctx: Context, spec: DriverSpec, tag: string, rec: Recorder): Promise<void> {
  const dir = await runDir(ctx, spec, tag);
  const daemon: BenchDockerd = await startBenchDockerd(join(dir, 'data-root'), spec.driver, ctx.registry.host);
  try {
    const info = await daemon.storageInfo();
    if (!info.startsWith(`${spec.driver} `)) throw new Error(`dockerd runs ${info}, not ${spec.driver}`);
    const env = daemon.env;
    const ref = ctx.refs[ctx.opsImage];
    const idFile = (i: number) => join(dir, `c${i}.id`);
    const start = (i: number): CommandSpec => ({
      ...bash(`id=$(${q(DOCKER)} create --network none ${q(ref)} /${DRIVER_EXTRAS.pause}); ${q(DOCKER)} start "$id" >/dev/null; echo "$id" > ${q(idFile(i))}`),
      env,
    });
    const rootOf = async (i: number) => {
      const id = (await readFile(idFile(i), 'utf8')).trim();
      const pid = (await daemon.docker(['inspect', '-f', '{{.State.Pid}}', id])).trim();
      if (!/^[1-9]\d*$/.test(pid)) throw new Error(`container ${id} is not running (pid ${pid})`);
      return { id, root: `/proc/${pid}/root` };
    };
    for (const image of ctx.images) {
      await resetPageCache(ctx.warm);
      await timed(rec, `pull-${image}`, { ...bash(`${q(DOCKER)} pull -q ${q(ctx.refs[image])} >/dev/null`), env }, image === ctx.opsImage);
    }
    await resetPageCache(ctx.warm);
    await timed(rec, 'start-cold', start(0), true);
    const before = await usedBytes(spec.host, dir);
    for (let i = 1; i <= WARM_STARTS; i++) await timed(rec, 'start-warm', start(i), true);
    rec.sample('disk-10', (await usedBytes(spec.host, dir)) - before);
    await fileOps(rec, (await rootOf(0)).root);
    const c1 = await rootOf(1);
    await quiet('cp', [CHANGE_FILE, join(c1.root, 'change.bin')]);
    // --pause=false: stratum does not freeze anything either (and the freezer cgroup is not needed).
    if (await timed(rec, 'commit-100m', { ...bash(`${q(DOCKER)} commit --pause=false ${c1.id} bench/committed:${tag} >/dev/null`), env })) {
      await timed(rec, 'remove', { ...bash(`${q(DOCKER)} rm -f ${c1.id} >/dev/null`), env });
    }
    rec.fail('commit-snapshot', new Error('Docker has no snapshot-only commit (docker commit always writes a layer tar)'));
  } finally {
    await daemon.stop();
  }
}

/** Why a column cannot run here at all (checked once, before the runs), or undefined. */
function unavailable(spec: DriverSpec, hostProblems: Partial<Record<Host, string>>): string | undefined {
  if (hostProblems[spec.host]) return hostProblems[spec.host];
  if (spec.kind === 'stratum') {
    if (!(SNAPSHOTTER_NAMES as readonly string[]).includes(spec.driver)) return `stratum has no ${spec.driver} backend in this build (backends: ${SNAPSHOTTER_NAMES.join(', ')})`;
    if (!existsSync(STRATUM_CLI)) return `${STRATUM_CLI} is missing (npm run build)`;
    return undefined;
  }
  return dockerMissing();
}

/**
 * Unmounts everything mounted below `dir`, deepest first: what a backend keeps mounted for its
 * active snapshots (blockfile keeps each one's filesystem mounted in the store after `stratum
 * unmount` of the target), so the scratch filesystem can go. Loop devices of `mount -o loop` clear
 * themselves.
 */
async function unmountBelow(dir: string): Promise<void> {
  const points = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.startsWith(`${dir}/`))
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .sort((a, b) => b.length - a.length);
  for (const p of points) await quiet('umount', [p], 120).catch(() => quiet('umount', ['-l', p], 60).catch(() => {}));
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)).unref())]).finally(() => clearTimeout(timer));
}

async function makeChangeFile(): Promise<void> {
  if (existsSync(CHANGE_FILE)) return;
  const out = createWriteStream(`${CHANGE_FILE}.tmp`);
  for (let left = CHANGE_BYTES; left > 0; left -= 1 << 20) {
    if (!out.write(randomBytes(Math.min(left, 1 << 20)))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  await runQuiet('mv', [`${CHANGE_FILE}.tmp`, CHANGE_FILE]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '1' },
      only: { type: 'string' },
      image: { type: 'string', default: 'both' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      `usage: node dist/bench/drivers.js [--runs N (default 1)] [--only NAME,... (of: ${DRIVERS.map((d) => d.name).join(', ')})] [--image small|big|both (default both)]\n`,
    );
    return;
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number ≥ 1, got ${values.runs}`);
  const images: ImageName[] = values.image === 'both' ? ['small', 'big'] : values.image === 'small' || values.image === 'big' ? [values.image] : [];
  if (images.length === 0) throw new Error(`--image takes small, big or both, got ${values.image}`);
  // The per-container rows run on the small image when both are pulled (they measure the writable layer, not the image size).
  const opsImage = images[0]!;
  const only = values.only === undefined ? undefined : new Set(values.only.split(',').map((s) => s.trim()));
  if (only) for (const name of only) if (!DRIVERS.some((d) => d.name === name)) throw new Error(`--only: no driver named ${JSON.stringify(name)} (${DRIVERS.map((d) => d.name).join(', ')})`);
  const selected = DRIVERS.filter((d) => !only || only.has(d.name));
  if (process.getuid?.() !== 0) throw new Error('run as root: mounts, loop devices, zfs-fuse and dockerd need it');
  requireGnuTime();

  await mkdir(BENCH_DIR, { recursive: true });
  const log = (line: string) => process.stderr.write(`bench:drivers: ${line}\n`);
  const registries: BenchRegistry[] = [];
  const hosts: Hosts = {};
  const hostProblems: Partial<Record<Host, string>> = {};
  let tornDown: Promise<void> | undefined;
  const teardown = () =>
    (tornDown ??= (async () => {
      if (hosts.zfs) await withTimeout(hosts.zfs.stop(), 120_000, `zfs-fuse did not destroy pool ${hosts.zfs.pool} within 120 s (left behind)`).catch((err: unknown) => log(`zfs pool: ${reasonOf(err)}`));
      for (const fs of [hosts.ext4, hosts.btrfs]) if (fs) await unmountBelow(fs.dir);
      for (const fs of [hosts.ext4, hosts.btrfs]) await fs?.remove().catch((err: unknown) => log(`removing ${fs.dir}: ${reasonOf(err)}`));
      for (const r of registries) await r.registry.stop();
    })());
  // Interrupted: the scratch filesystems, loop devices and registries go all the same (a running
  // dockerd or stratum mount on them makes the unmount fail, which is said).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void teardown().finally(() => process.exit(130));
    });
  }
  try {
    const refs = {} as Record<ImageName, string>;
    const imageInfo: Record<string, unknown> = {};
    // One registry per image (each its own cached storage); all on 127.0.0.1.
    for (const name of images) {
      const { reference, options } = DRIVER_IMAGES[name];
      const r = await startBenchRegistry(BENCH_DIR, options, log, reference);
      registries.push(r);
      refs[name] = `${r.registry.host}/${r.image.reference}`;
      imageInfo[name] = { reference: r.image.reference, digest: r.image.digest, layers: r.image.layers.length, compressedBytes: r.image.totalCompressedBytes };
      log(`${name}: ${refs[name]} ${r.image.digest} (${r.image.layers.length} layers, ${mb(r.image.totalCompressedBytes)} MB)${r.cacheHit ? ', cached' : ''}`);
    }
    // dockerd is told one insecure registry; Docker treats 127.0.0.0/8 as insecure anyway.
    const registry = registries[0]!.registry;
    await makeChangeFile();

    await rm(RUNS_DIR, { recursive: true, force: true });
    await mkdir(RUNS_DIR, { recursive: true });
    const needs = new Set(selected.map((d) => d.host));
    if (needs.has('ext4')) hosts.ext4 = await createScratchFs(join(RUNS_DIR, 'ext4'), 24, 'ext4');
    if (needs.has('btrfs'))
      hosts.btrfs = await createScratchFs(join(RUNS_DIR, 'btrfs'), 16, 'btrfs').catch((err: unknown) => {
        hostProblems.btrfs = `no loop btrfs: ${reasonOf(err)}`;
        return undefined;
      });
    if (needs.has('zfs')) {
      const pool = await withTimeout(startFilePool(8192), 120_000, 'zfs-fuse did not make a pool within 120 s').catch((err: unknown) => `no zfs-fuse pool: ${reasonOf(err)}`);
      if (typeof pool === 'string') hostProblems.zfs = pool;
      else {
        hosts.zfs = pool;
        // zfs-fuse is one daemon per machine, shared with other work: check it answers on our pool.
        const probe = await quiet('mkdir', ['-p', join(pool.mnt, 'probe')], ZFS_PROBE_TIMEOUT_S).then(
          () => quiet('zfs', ['list', '-H', pool.pool], ZFS_PROBE_TIMEOUT_S),
        ).then(
          () => undefined,
          (err: unknown) => `zfs-fuse (the machine's one daemon, shared) did not answer a mkdir or zfs list on a new pool within ${ZFS_PROBE_TIMEOUT_S} s: ${reasonOf(err)}`,
        );
        if (probe) hostProblems.zfs = probe;
      }
    }
    const columns: Column[] = selected.map((d) => {
      const why = unavailable(d, hostProblems);
      return { name: d.name, ...(d.anchor && selected.some((s) => s.name === d.anchor) ? { anchor: d.anchor } : {}), ...(d.anchorNote ? { anchorNote: d.anchorNote } : {}), ...(why ? { unavailable: why } : {}) };
    });
    for (const c of columns) if (c.unavailable) log(`${c.name}: n/a (${c.unavailable})`);
    const runnable = selected.filter((d) => !columns.find((c) => c.name === d.name)!.unavailable);

    const warm = [
      ...images.map((i) => benchRegistryStorage(BENCH_DIR, DRIVER_IMAGES[i].options, DRIVER_IMAGES[i].reference)),
      join(ROOT, 'dist'),
      join(ROOT, 'node_modules'),
      join(ROOT, 'build', 'Release'),
      ...(await withSharedLibraries(
        [process.execPath, GNU_TIME, DOCKER, DOCKERD, '/usr/bin/containerd', '/usr/bin/containerd-shim-runc-v2', '/usr/sbin/runc', '/usr/bin/fuse-overlayfs', '/usr/sbin/zfs', '/usr/bin/bash', '/usr/bin/cat', '/usr/bin/cp', '/usr/bin/sync', '/usr/sbin/mkfs.ext4', '/usr/bin/mount', '/usr/bin/umount'].filter((f) => existsSync(f)),
      )),
    ];
    const ctx: Context = { registry, images, opsImage, refs, hosts, warm, log };
    const metrics = metricsFor(images);
    const samples: Samples = {};
    const failures: Failures = {};
    const all: Array<{ run: number; driver: string; metric: string; value: number }> = [];
    const loadBefore = loadavg();
    if (loadBefore[0]! > 1) log(`WARNING: load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before the runs: the numbers will be noisy`);

    for (let r = 1; r <= runs; r++) {
      // Alternating order: each run starts one driver further along, so a drift of the machine touches all alike.
      const order = runnable.map((_, i) => runnable[(i + r - 1) % runnable.length]!);
      for (const spec of order) {
        const rec: Recorder = {
          sample(metric, value) {
            ((samples[spec.name] ??= {})[metric] ??= []).push(value);
            all.push({ run: r, driver: spec.name, metric, value });
            log(`run ${r}/${runs} ${spec.name} ${metric}: ${metrics.find((m) => m.id === metric)?.unit === 'bytes' ? `${mb(value)} MB` : `${value.toFixed(3)} s`}`);
          },
          fail(metric, err) {
            (failures[spec.name] ??= {})[metric] = reasonOf(err);
            log(`run ${r}/${runs} ${spec.name} ${metric}: FAILED ${reasonOf(err)}`);
          },
        };
        try {
          await (spec.kind === 'stratum' ? stratumRun : dockerRun)(ctx, spec, `r${r}`, rec);
        } catch (err) {
          // A step the rest depends on failed: the cells not measured say after what.
          for (const m of metrics) if (!samples[spec.name]?.[m.id] && !failures[spec.name]?.[m.id]) (failures[spec.name] ??= {})[m.id] = `not reached: ${reasonOf(err)}`;
          log(`run ${r}/${runs} ${spec.name}: stopped: ${reasonOf(err)}`);
        }
      }
    }
    const loadAfter = loadavg();

    const out: string[] = [];
    out.push(`storage drivers, ${runs} run(s) each, alternating order; per-container rows on the ${opsImage} image (${refs[opsImage]})`);
    out.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, kernel ${(await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim()}`);
    out.push(`load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
    out.push('');
    out.push(...renderTable(columns, metrics, samples, failures));
    process.stdout.write(out.join('\n') + '\n');

    const json = {
      date: new Date().toISOString(),
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version, loadBefore, loadAfter },
      images: imageInfo,
      opsImage,
      runs,
      drivers: selected.map((d) => ({ ...d, ...(columns.find((c) => c.name === d.name)!.unavailable ? { unavailable: columns.find((c) => c.name === d.name)!.unavailable } : {}) })),
      metrics,
      samples: all,
      failures,
      ratios: ratios(columns, metrics, samples),
      table: out,
    };
    await writeFile(join(BENCH_DIR, 'drivers-results.json'), JSON.stringify(json, null, 2) + '\n');
    log(`results written to ${join(BENCH_DIR, 'drivers-results.json')}`);
  } finally {
    await teardown();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:drivers: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
