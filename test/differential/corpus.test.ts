/**
 * The differential corpus (issue 8 §2): layers written by every real writer on Debian, pulled
 * by stratum from a real registry on every backend, each feature's subtree compared entry by
 * entry with containerd 1.6's overlay view (and `umoci raw unpack`; where they disagree,
 * containerd wins and the test name says so). Prints writer × feature × backend → equal /
 * differs / refused, and writes it as markdown to $STRATUM_CORPUS_TABLE when set.
 *
 * CI runs the bounded slice; STRATUM_CORPUS=full adds the big cases (a 9 GiB sparse file).
 * Features share one image per writer (each under c/<feature>); root features get their own. An
 * image that anyone refuses is split into one image per feature, so one refusal names its feature.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { fuseOverlayfsMissing } from '../../src/snapshotter/fuse-overlayfs/fuse-overlayfs.js';
import type { SnapshotterName } from '../../src/snapshotter/index.js';
import { pushOciLayout } from '../fixtures/push.js';
import { deleteSubvolumesUnder, mountLoopBtrfs, type LoopBtrfs } from '../helpers/btrfs.js';
import { blockfileUnavailable } from '../../src/snapshotter/blockfile/blockfile.js';
import { erofsUnavailable } from '../../src/snapshotter/erofs/erofs.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { removeDir, TempDirs } from '../helpers/tmp.js';
import { snapshotTree, type SnapshotOptions, type TreeEntry } from '../helpers/tree.js';
import { umociUnpack } from '../helpers/tools.js';
import { startFilePool, type FilePool } from '../helpers/zfs.js';
import { compareFeature, detail, featureEntries, markdownTable, outcomeOf, type Outcome, type Row } from './compare.js';
import { BASE_LAYER, features, placed, type Feature, type RawEntry } from './features.js';
import { buildahMissing, buildContext, dockerBuilder, DOCKER_FEATURES, dockerfile, dockerMissing, exportRootfs, startBuildah, startDockerd, type Builder, type PrivateDockerd } from './docker.js';
import { knownDefect } from './known-defects.js';
import { applyRecipe } from './recipe.js';
import { ContainerdOracle, failure, stratumRootfs, umociRootfs, type Rootfs } from './rootfs.js';
import { CORPUS_TAG, WriterError, writers, type LayerSource, type Writer } from './writers.js';

const FULL = process.env.STRATUM_CORPUS === 'full';
/**
 * zfs-fuse serves every pool of the machine from one daemon, and here a FUSE request of the
 * corpus stalled for minutes while another test's pool was busy, taking the run with it (a
 * process blocked in a FUSE call cannot time out); another time every zfs case passed and then
 * `zpool destroy` hung in `umount -l` of a snapshot dataset. So the CI slice leaves zfs out,
 * loudly; the full run and STRATUM_CORPUS_ZFS=1 include it.
 */
const ZFS = FULL || process.env.STRATUM_CORPUS_ZFS === '1';
const ZFS_OFF = 'left out of the CI slice (set STRATUM_CORPUS_ZFS=1 or STRATUM_CORPUS=full): a stalled zfs-fuse request cannot time out';
const FEATURES = features(FULL);
/** STRATUM_CORPUS_BACKENDS=a,b runs only those backends (to chase one backend's failure). */
const ONLY_BACKENDS = process.env.STRATUM_CORPUS_BACKENDS?.split(',').filter(Boolean);
/** STRATUM_CORPUS_WRITERS=a,b runs only those writers (to chase one failure). */
const ONLY = process.env.STRATUM_CORPUS_WRITERS?.split(',').filter(Boolean);
const WRITERS = writers().filter((w) => !ONLY || ONLY.includes(w.id));
const DOCKER_WRITER = 'docker-20.10';
const tmp = new TempDirs();

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: real owners, devices, security.capability, mounts';
  for (const bin of ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

interface Backend {
  name: SnapshotterName;
  store: string;
  prepareRoot?: (root: string) => Promise<unknown>;
  secondsOnly?: boolean;
}

let registry: TestRegistry | undefined;
let containerd: ContainerdOracle | undefined;
let containerdMissing: string | undefined;
let btrfs: LoopBtrfs | undefined;
let zfs: FilePool | undefined;
const backends: Backend[] = [];
/** Backends that could not run here, with the reason. */
const skippedBackends: string[] = [];
const rows: Row[] = [];
const started = Date.now();

before(async () => {
  if (MISSING) return;
  registry = await startRegistry();
  try {
    containerd = await ContainerdOracle.start(await tmp.make('containerd'));
  } catch (err) {
    containerdMissing = `containerd 1.6 could not start: ${failure(err)}`;
  }
  backends.push({ name: 'overlay', store: await tmp.make('store-overlay') }, { name: 'native', store: await tmp.make('store-native') });
  // The overlay layout and whiteouts read by the fuse-overlayfs daemon instead of the kernel.
  const noFuse = await fuseOverlayfsMissing();
  if (noFuse) skippedBackends.push(`fuse-overlayfs: ${noFuse}`);
  else backends.push({ name: 'fuse-overlayfs', store: await tmp.make('store-fuse-overlayfs') });
  // the full run's 9 GiB sparse file lands whole on backends that do not keep holes
  const loopMiB = FULL ? 32 * 1024 : 1024;
  const fs = await mountLoopBtrfs(loopMiB);
  if (typeof fs === 'string') skippedBackends.push(`btrfs: ${fs}`);
  else {
    btrfs = fs;
    backends.push({ name: 'btrfs', store: join(fs.mnt, 'store') });
  }
  // blockfile: a loop-mounted ext4 file per snapshot, copied (no reflinks) on the temp dir's filesystem.
  const noBlockfile = await blockfileUnavailable();
  if (noBlockfile !== undefined) skippedBackends.push(`blockfile: ${noBlockfile}`);
  else backends.push({ name: 'blockfile', store: await tmp.make('store-blockfile') });
  // erofs: each layer one EROFS image written from the tar (fsck.erofs on each), stacked by overlay.
  const noErofs = await erofsUnavailable();
  if (noErofs !== undefined) skippedBackends.push(`erofs: ${noErofs}`);
  else backends.push({ name: 'erofs', store: await tmp.make('store-erofs') });
  const pool = ZFS && (!ONLY_BACKENDS || ONLY_BACKENDS.includes('zfs')) ? await startFilePool(loopMiB) : ZFS_OFF;
  if (typeof pool === 'string') skippedBackends.push(`zfs: ${pool}`);
  else {
    zfs = pool;
    const store = join(pool.mnt, 'store');
    await mkdir(store, { recursive: true });
    backends.push({ name: 'zfs', store, prepareRoot: (root) => pool.datasetAt(root), secondsOnly: true });
  }
  if (ONLY_BACKENDS) {
    for (const b of backends.filter((b) => !ONLY_BACKENDS.includes(b.name))) skippedBackends.push(`${b.name}: not in STRATUM_CORPUS_BACKENDS`);
    backends.splice(0, backends.length, ...backends.filter((b) => ONLY_BACKENDS.includes(b.name)));
  }
});

after(async () => {
  await containerd?.stop();
  await registry?.stop();
  if (btrfs) {
    await deleteSubvolumesUnder(btrfs.mnt);
    await btrfs.unmount();
  }
  await zfs?.stop();
  await tmp.cleanup();
});

const layerTime = (i: number) => 1_704_067_200 + i * 3600 + 0.25;

function applies(writer: Writer, f: Feature): boolean {
  if (f.paxGlobal && !writer.paxGlobal) return false;
  if (f.applier && !FULL && !APPLIER_WRITERS.has(writer.id)) return false;
  if (writer.only && !writer.only.includes(f.id)) return false;
  if (writer.ciOnly && !FULL && !writer.ciOnly.includes(f.id)) return false;
  if (f.writers && !f.writers.test(writer.id)) return false;
  return writer.raw ? f.raw !== undefined : f.layers !== undefined;
}

/** The images a writer's features go into: one per group, one per root or PAX-global feature. */
function imageGroups(mine: readonly Feature[]): Feature[][] {
  const groups = new Map<string, Feature[]>();
  for (const f of mine) {
    const key = f.group === 'alone' ? `alone:${f.id}` : f.group;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  return [...groups.values()];
}

/** The layers of an image holding `group` (base layer first), staged (or listed) under `work`. */
async function layerSources(writer: Writer, group: readonly Feature[], work: string): Promise<LayerSource[]> {
  const count = 1 + Math.max(...group.map((f) => (writer.raw ? f.raw! : f.layers!).length));
  const sources: LayerSource[] = [];
  for (let i = 0; i < count; i++) {
    if (writer.raw) {
      const entries: RawEntry[] =
        i === 0
          ? [
              { name: 'base', type: 'dir' },
              { name: 'base/README', type: 'file', content: 'the shared base layer\n' },
              { name: 'c', type: 'dir' },
            ]
          : group.flatMap((f) => {
              const layer = f.raw![i - 1];
              if (!layer) return [];
              const dir = `c/${f.id}`;
              return [{ name: 'c', type: 'dir' as const }, { name: dir, type: 'dir' as const }, ...layer.map((e) => ({ ...e, name: `${dir}/${e.name}` }))];
            });
      sources.push({ raw: entries, mtime: Math.floor(layerTime(i)) });
      continue;
    }
    const stage = join(work, 'stage', String(i));
    await mkdir(stage, { recursive: true });
    const ops = i === 0 ? BASE_LAYER : group.flatMap((f) => (f.layers![i - 1] ? placed(f, f.layers![i - 1]!) : []));
    await applyRecipe(stage, ops, layerTime(i));
    sources.push({ staged: stage, paxGlobal: group.some((f) => f.paxGlobal) });
  }
  return sources;
}

type TreeOrError = { tree: TreeEntry[] } | { error: string };

/** Seconds spent per phase (writer, push, each oracle and backend), printed with the table. */
const phaseSeconds = new Map<string, number>();
async function timed<T>(phase: string, work: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await work();
  } finally {
    phaseSeconds.set(phase, (phaseSeconds.get(phase) ?? 0) + (performance.now() - t0) / 1000);
  }
}

/** Runs `make`, snapshots the rootfs it gives, releases it. */
async function treeOf(phase: string, make: () => Promise<Rootfs>, opts: SnapshotOptions = {}): Promise<TreeOrError> {
  return timed(phase, () => treeOfUntimed(make, opts));
}
async function treeOfUntimed(make: () => Promise<Rootfs>, opts: SnapshotOptions): Promise<TreeOrError> {
  let rootfs: Rootfs | undefined;
  try {
    rootfs = await make();
    return { tree: await snapshotTree(rootfs.dir, opts) };
  } catch (err) {
    return { error: failure(err) };
  } finally {
    await rootfs?.release().catch(() => {});
  }
}

interface FeatureResult {
  feature: Feature;
  oracle: string;
  oracles: string;
  cells: Record<string, Outcome>;
}

let imageSeq = 0;

/**
 * An overlay view may list a whiteout device that lookup then says does not exist: in a
 * directory of an upper layer that overlayfs does not merge with a lower one (made in place of a
 * lower file or symlink), readdir shows the device. Such names are left out, on every view.
 */
const VIEW: SnapshotOptions = { skipVanished: true };

/**
 * The CI slice runs btrfs and blockfile for these representative writers only, and zfs
 * (when STRATUM_CORPUS_ZFS=1) only for the first of them, on its shared image. The full run runs
 * every backend for every writer.
 */
const REPRESENTATIVE_WRITERS = new Set(['gnutar-posix', 'bsdtar-pax', 'python-raw', DOCKER_WRITER]);
/** In the CI slice applier features run with these writers only. */
const APPLIER_WRITERS = new Set(['gnutar-posix', 'python-raw']);
const ZFS_WRITER = 'gnutar-posix';

function backendsFor(writer: Writer, group: readonly Feature[]): Backend[] {
  if (FULL) return backends;
  return backends.filter((b) => {
    if (b.name === 'overlay' || b.name === 'fuse-overlayfs' || b.name === 'native' || b.name === 'erofs') return true;
    if (b.name === 'zfs') return writer.id === ZFS_WRITER && group.every((f) => f.group === 'main');
    return REPRESENTATIVE_WRITERS.has(writer.id);
  });
}

/** Writes `group`'s layers with `writer` into `work` and pushes the image: its reference, or the writer's refusal. */
async function publish(writer: Writer, group: readonly Feature[], work: string): Promise<{ ref: string } | { refused: string }> {
  try {
    await timed('write', async () => writer.image(await layerSources(writer, group, work), work));
  } catch (err) {
    if (!(err instanceof WriterError)) throw err;
    return { refused: err.message };
  }
  const repo = `corpus/${writer.id}-${group.length === 1 ? group[0]!.id : group[0]!.group}-${++imageSeq}`;
  await timed('push', () => pushOciLayout(join(work, 'layout'), CORPUS_TAG, registry!, `${repo}:${CORPUS_TAG}`, 'oci'));
  return { ref: `${registry!.host}/${repo}:${CORPUS_TAG}` };
}

interface OracleTrees {
  /** When the oracles began unpacking (ns since the epoch). */
  since: bigint;
  umoci: TreeOrError;
  ctrd: TreeOrError;
}

/**
 * Builds, pushes and unpacks one image holding `group` on `bks`, and compares each feature.
 * When containerd refuses it, it is split into one image per feature; when only some backends
 * refuse it, only those backends unpack the per-feature images. Each image is compared with the
 * oracles' trees of that same image: a writer may put the clock into its layers (GNU tar writes
 * the current time for an mtime its format cannot hold).
 */
async function runGroup(writer: Writer, group: readonly Feature[], bks: readonly Backend[]): Promise<FeatureResult[]> {
  const work = await tmp.make(`${writer.id}-${group.length === 1 ? group[0]!.id : group[0]!.group}`);
  try {
    const pub = await publish(writer, group, work);
    if ('refused' in pub) {
      if (group.length > 1) return leaveOutRefused(writer, group, bks);
      const o: Outcome = { kind: 'writer refused', error: pub.refused };
      return [{ feature: group[0]!, oracle: '—', oracles: '—', cells: Object.fromEntries(bks.map((b) => [b.name, o])) }];
    }
    const oracles: OracleTrees = {
      since: BigInt(Date.now()) * 1_000_000n,
      umoci: await treeOf('umoci', () => umociRootfs(join(work, 'layout'), join(work, 'umoci'))),
      ctrd: containerd ? await treeOf('containerd', () => containerd!.rootfs(pub.ref, join(work, 'containerd')), VIEW) : { error: containerdMissing! },
    };
    const stratum = new Map<string, TreeOrError>();
    for (const b of bks) stratum.set(b.name, await treeOf(b.name, () => stratumRootfs(b.store, b.name, pub.ref, join(work, `view-${b.name}`), b.prepareRoot), VIEW));

    if (group.length > 1) {
      // umoci refuses whole layers for reasons of its own (a PAX global header): only a refusal
      // by containerd or stratum splits the image to find the feature
      if (containerd && 'error' in oracles.ctrd) return splitGroup(writer, group, bks);
      const refusing = bks.filter((b) => 'error' in stratum.get(b.name)!);
      // the shared base layer refused: no feature can be told apart, splitting would only repeat it
      const baseRefused = refusing.length > 0 && refusing.every((b) => /\blayer 1\//.test((stratum.get(b.name) as { error: string }).error));
      if (refusing.length > 0 && !baseRefused) {
        const results = compareGroup(writer, group, oracles, stratum, bks.filter((b) => !refusing.includes(b)));
        const again = await splitGroup(writer, group, refusing);
        return results.map((r, i) => ({ ...r, cells: { ...r.cells, ...again[i]!.cells } }));
      }
    }
    return compareGroup(writer, group, oracles, stratum, bks);
  } finally {
    await removeDir(work).catch(() => {});
  }
}

/** The writer refused the group: finds which features it refuses alone (cheap: no pulls), then runs the rest as one image. */
async function leaveOutRefused(writer: Writer, group: readonly Feature[], bks: readonly Backend[]): Promise<FeatureResult[]> {
  const refused = new Map<string, FeatureResult>();
  for (const f of group) {
    const work = await tmp.make(`${writer.id}-probe-${f.id}`);
    try {
      await timed('write', async () => writer.image(await layerSources(writer, [f], work), work));
    } catch (err) {
      if (!(err instanceof WriterError)) throw err;
      const o: Outcome = { kind: 'writer refused', error: err.message };
      refused.set(f.id, { feature: f, oracle: '—', oracles: '—', cells: Object.fromEntries(bks.map((b) => [b.name, o])) });
    } finally {
      await removeDir(work).catch(() => {});
    }
  }
  const rest = group.filter((f) => !refused.has(f.id));
  // refused only together: then each alone
  const results = rest.length === group.length ? await splitGroup(writer, rest, bks) : rest.length > 0 ? await runGroup(writer, rest, bks) : [];
  const byId = new Map(results.map((r) => [r.feature.id, r]));
  return group.map((f) => refused.get(f.id) ?? byId.get(f.id)!);
}

async function splitGroup(writer: Writer, group: readonly Feature[], bks: readonly Backend[]): Promise<FeatureResult[]> {
  const out: FeatureResult[] = [];
  for (const f of group) out.push(...(await runGroup(writer, [f], bks)));
  return out;
}

/** Each feature of the group: the oracles' agreement, and every backend's tree against containerd's. */
function compareGroup(writer: Writer, group: readonly Feature[], { since, umoci, ctrd }: OracleTrees, stratum: Map<string, TreeOrError>, bks: readonly Backend[]): FeatureResult[] {
  return group.map((feature) => {
    // containerd is the oracle; umoci only when containerd could not run here at all
    const useUmoci = !containerd && 'tree' in umoci;
    const oracle = useUmoci ? 'umoci' : 'containerd';
    const expected: TreeOrError = useUmoci ? umoci : ctrd;
    let agreement: string;
    if ('tree' in umoci && 'tree' in ctrd) {
      const d = compareFeature(ctrd.tree, umoci.tree, feature, { names: ['containerd', 'umoci'], clockSinceNs: since });
      agreement = d.length === 0 ? 'agree' : `disagree: ${d.slice(0, 2).join('; ')}${d.length > 2 ? ` (+${d.length - 2})` : ''}`;
    } else {
      agreement = [('error' in umoci ? `umoci refused: ${umoci.error}` : ''), ('error' in ctrd ? `containerd refused: ${ctrd.error}` : '')].filter(Boolean).join('; ');
    }
    const cells: Record<string, Outcome> = {};
    for (const b of bks) {
      const got = stratum.get(b.name)!;
      if ('error' in got) cells[b.name] = 'error' in expected ? { kind: 'refused', error: got.error, likeOracle: true } : { kind: 'refused', error: got.error };
      else if ('error' in expected) cells[b.name] = { kind: 'differs', diffs: [`${oracle} refuses these layers (${expected.error}); stratum ${b.name} unpacked them`] };
      // a writer that wrote nothing of the feature (dropped every entry it cannot express) would make every backend trivially equal
      else if (featureEntries(expected.tree, feature).length < 2) cells[b.name] = { kind: 'writer refused', error: `${oracle} shows nothing of ${feature.id}: the writer dropped its entries` };
      else cells[b.name] = outcomeOf(compareFeature(expected.tree, got.tree, feature, { secondsOnly: b.secondsOnly ?? false, names: [oracle, `stratum ${b.name}`], clockSinceNs: since }));
    }
    return { feature, oracle, oracles: agreement, cells };
  });
}

/** One subtest per backend: equal to the oracle, or refused like it, or a todo naming a known defect. */
async function report(t: TestContext, writer: Writer, r: FeatureResult): Promise<void> {
  const oraclesDisagree = r.oracles.startsWith('disagree');
  for (const b of backends) {
    const o = r.cells[b.name];
    if (!o) continue; // not run for this writer in the CI slice
    const lines = o.kind === 'differs' ? o.diffs : o.kind === 'refused' && !o.likeOracle ? [o.error] : [];
    const todo = knownDefect(writer.id, r.feature.id, b.name, lines);
    const suffix = oraclesDisagree ? ' (umoci disagrees; containerd wins)' : '';
    const name = `${r.feature.id} on ${b.name} equals ${r.oracle}${suffix}`;
    await t.test(name, todo ? { todo } : {}, () => {
      if (o.kind === 'writer refused') return; // nothing to compare: the writer cannot express it
      if (o.kind === 'refused' && o.likeOracle) return; // refused like the oracle
      assert.equal(o.kind, 'equal', `${writer.id} ${r.feature.id} on ${b.name}: ${o.kind}\n${detail(o)}`);
    });
  }
}

for (const writer of WRITERS) {
  test(`writer ${writer.id}`, async (t) => {
    if (MISSING) return t.skip(MISSING);
    const why = writer.missing();
    if (why) return t.skip(`LOUD SKIP: ${why}`);
    const mine = FEATURES.filter((f) => applies(writer, f));
    const results: FeatureResult[] = [];
    for (const group of imageGroups(mine)) results.push(...(await runGroup(writer, group, backendsFor(writer, group))));
    for (const r of results) {
      rows.push({ writer: writer.id, feature: r.feature.id, oracle: r.oracle, oracles: r.oracles, cells: r.cells });
      await report(t, writer, r);
    }
  });
}

/**
 * The image builders as writers: Docker's (overlay2's diff) and buildah's (containers/storage)
 * layers of RUN steps on every backend, against containerd, umoci and, for Docker, `docker export`.
 */
const BUILDERS: { id: string; missing: () => string | undefined; start: () => Promise<{ builder: Builder; daemon?: PrivateDockerd }> }[] = [
  {
    id: DOCKER_WRITER,
    missing: dockerMissing,
    start: async () => {
      const daemon = await startDockerd(registry!.host);
      return { builder: dockerBuilder(daemon), daemon };
    },
  },
  { id: 'buildah', missing: buildahMissing, start: async () => ({ builder: await startBuildah(await tmp.make('buildah')) }) },
];

for (const b of BUILDERS) {
  test(`writer ${b.id} (RUN steps of a Dockerfile)`, async (t) => {
    if (MISSING) return t.skip(MISSING);
    if (ONLY && !ONLY.includes(b.id)) return t.skip(`not in STRATUM_CORPUS_WRITERS`);
    const why = b.missing();
    if (why) return t.skip(`LOUD SKIP: ${why}`);
    let started: { builder: Builder; daemon?: PrivateDockerd };
    try {
      started = await timed(`${b.id} start`, () => b.start());
    } catch (err) {
      return t.skip(`LOUD SKIP: ${b.id} cannot run here: ${failure(err)}`);
    }
    const work = await tmp.make(b.id);
    try {
      await buildContext(work, dockerfile(DOCKER_FEATURES));
      const ref = `${registry!.host}/corpus/${b.id}:${CORPUS_TAG}`;
      await timed(`${b.id} build`, () => started.builder.build(work, ref));
      const daemon = started.daemon;
      const exported = daemon
        ? await treeOf('docker export', async () => {
            await exportRootfs(daemon, ref, join(work, 'export'));
            return { dir: join(work, 'export'), release: async () => {} };
          })
        : undefined;
      const oracles: OracleTrees = {
        since: BigInt(Date.now()) * 1_000_000n,
        umoci: await treeOf('umoci', async () => ({ dir: await umociUnpack(ref, await tmp.make(`${b.id}-umoci`)), release: async () => {} })),
        ctrd: containerd ? await treeOf('containerd', () => containerd!.rootfs(ref, join(work, 'containerd')), VIEW) : { error: containerdMissing! },
      };
      const writer: Writer = { id: b.id, missing: () => undefined, image: async () => {} };
      const features: Feature[] = DOCKER_FEATURES.map((f) => ({ id: f.id, about: f.about, group: 'main' }));
      const bks = backendsFor(writer, features);
      const stratum = new Map<string, TreeOrError>();
      for (const k of bks) stratum.set(k.name, await treeOf(k.name, () => stratumRootfs(k.store, k.name, ref, join(work, `view-${k.name}`), k.prepareRoot), VIEW));
      for (const r of compareGroup(writer, features, oracles, stratum, bks)) {
        // docker export is a third oracle: it must agree with containerd on the image's own /c
        const vsExport =
          exported && 'tree' in exported && 'tree' in oracles.ctrd
            ? compareFeature(oracles.ctrd.tree, exported.tree, r.feature, { names: ['containerd', 'docker export'], clockSinceNs: oracles.since })
            : undefined;
        if (exported) r.oracles += `; docker export ${'error' in exported ? `refused: ${exported.error}` : vsExport!.length === 0 ? 'agrees' : `disagrees: ${vsExport!.slice(0, 2).join('; ')}`}`;
        rows.push({ writer: b.id, feature: r.feature.id, oracle: r.oracle, oracles: r.oracles, cells: r.cells });
        await report(t, writer, r);
        if (exported) {
          await t.test(`${r.feature.id}: docker export equals containerd`, () => {
            if ('error' in exported) assert.fail(`docker export failed: ${exported.error}`);
            assert.deepEqual(vsExport, []);
          });
        }
      }
    } finally {
      await started.builder.stop();
    }
  });
}

test('the differential table', async (t) => {
  if (MISSING) return t.skip(MISSING);
  const names = backends.map((b) => b.name);
  const table = markdownTable(rows, names);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const notes = [
    `${FULL ? 'full run' : 'CI slice'}: ${FEATURES.length} features × ${WRITERS.length} writers, ${seconds} s, ${imageSeq} images`,
    `time per phase: ${[...phaseSeconds].map(([p, sec]) => `${p} ${sec.toFixed(1)} s`).join(', ')}`,
    ...skippedBackends.map((s) => `LOUD SKIP backend ${s}`),
    ...(containerdMissing ? [`LOUD: ${containerdMissing}; compared with umoci only`] : []),
  ];
  for (const line of [...notes, ...table.trimEnd().split('\n')]) t.diagnostic(line);
  const path = process.env.STRATUM_CORPUS_TABLE;
  if (path) await writeFile(path, `# stratum differential corpus\n\n${notes.map((n) => `- ${n}`).join('\n')}\n\n${table}`);
  assert.ok(rows.length > 0, 'no rows: every writer was skipped');
});
