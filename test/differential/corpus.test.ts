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
import type { SnapshotterName } from '../../src/snapshotter/index.js';
import { pushOciLayout } from '../fixtures/push.js';
import { deleteSubvolumesUnder, mountLoopBtrfs, type LoopBtrfs } from '../helpers/btrfs.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { removeDir, TempDirs } from '../helpers/tmp.js';
import { snapshotTree, type TreeEntry } from '../helpers/tree.js';
import { umociUnpack } from '../helpers/tools.js';
import { startFilePool, type FilePool } from '../helpers/zfs.js';
import { compareFeature, detail, featureEntries, markdownTable, outcomeOf, type Outcome, type Row } from './compare.js';
import { BASE_LAYER, features, placed, type Feature, type RawEntry } from './features.js';
import { buildContext, DOCKER_FEATURES, dockerfile, dockerMissing, exportRootfs, startDockerd, type PrivateDockerd } from './docker.js';
import { knownDefect } from './known-defects.js';
import { applyRecipe } from './recipe.js';
import { ContainerdOracle, failure, stratumRootfs, umociRootfs, type Rootfs } from './rootfs.js';
import { CORPUS_TAG, WriterError, writers, type LayerSource, type Writer } from './writers.js';

const FULL = process.env.STRATUM_CORPUS === 'full';
const FEATURES = features(FULL);
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
  const fs = await mountLoopBtrfs(1024);
  if (typeof fs === 'string') skippedBackends.push(`btrfs: ${fs}`);
  else {
    btrfs = fs;
    backends.push({ name: 'btrfs', store: join(fs.mnt, 'store') });
  }
  const pool = await startFilePool(1024);
  if (typeof pool === 'string') skippedBackends.push(`zfs: ${pool}`);
  else {
    zfs = pool;
    const store = join(pool.mnt, 'store');
    await mkdir(store, { recursive: true });
    backends.push({ name: 'zfs', store, prepareRoot: (root) => pool.datasetAt(root), secondsOnly: true });
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
async function treeOf(phase: string, make: () => Promise<Rootfs>): Promise<TreeOrError> {
  return timed(phase, () => treeOfUntimed(make));
}
async function treeOfUntimed(make: () => Promise<Rootfs>): Promise<TreeOrError> {
  let rootfs: Rootfs | undefined;
  try {
    rootfs = await make();
    return { tree: await snapshotTree(rootfs.dir) };
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

/** In the CI slice the slow backends (btrfs, zfs) run for these writers only; the full run runs every backend for every writer. */
const SLOW_BACKEND_WRITERS = new Set(['gnutar-gnu', 'gnutar-posix', 'bsdtar-pax', 'python-raw', DOCKER_WRITER]);

function backendsFor(writer: Writer): Backend[] {
  return FULL || SLOW_BACKEND_WRITERS.has(writer.id) ? backends : backends.filter((b) => b.name === 'overlay' || b.name === 'native');
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
  umoci: TreeOrError;
  ctrd: TreeOrError;
}

/**
 * Builds, pushes and unpacks one image holding `group` on `bks`, and compares each feature.
 * When containerd refuses it, it is split into one image per feature; when only some backends
 * refuse it, only those backends unpack the per-feature images (compared with this image's
 * oracle trees: a feature's subtree does not depend on the other features beside it).
 */
async function runGroup(writer: Writer, group: readonly Feature[], bks: readonly Backend[], given?: OracleTrees): Promise<FeatureResult[]> {
  const work = await tmp.make(`${writer.id}-${group.length === 1 ? group[0]!.id : group[0]!.group}`);
  try {
    const pub = await publish(writer, group, work);
    if ('refused' in pub) {
      if (group.length > 1) return splitGroup(writer, group, bks);
      const o: Outcome = { kind: 'writer refused', error: pub.refused };
      return [{ feature: group[0]!, oracle: '—', oracles: '—', cells: Object.fromEntries(bks.map((b) => [b.name, o])) }];
    }
    const oracles: OracleTrees = given ?? {
      umoci: await treeOf('umoci', () => umociRootfs(join(work, 'layout'), join(work, 'umoci'))),
      ctrd: containerd ? await treeOf('containerd', () => containerd!.rootfs(pub.ref, join(work, 'containerd'))) : { error: containerdMissing! },
    };
    const stratum = new Map<string, TreeOrError>();
    for (const b of bks) stratum.set(b.name, await treeOf(b.name, () => stratumRootfs(b.store, b.name, pub.ref, join(work, `view-${b.name}`), b.prepareRoot)));

    if (group.length > 1) {
      // umoci refuses whole layers for reasons of its own (a PAX global header): only a refusal
      // by containerd or stratum splits the image to find the feature
      if (containerd && 'error' in oracles.ctrd) return splitGroup(writer, group, bks);
      const refusing = bks.filter((b) => 'error' in stratum.get(b.name)!);
      if (refusing.length > 0) {
        const results = compareGroup(writer, group, oracles, stratum, bks.filter((b) => !refusing.includes(b)));
        const again = await splitGroup(writer, group, refusing, oracles);
        return results.map((r, i) => ({ ...r, cells: { ...r.cells, ...again[i]!.cells } }));
      }
    }
    return compareGroup(writer, group, oracles, stratum, bks);
  } finally {
    await removeDir(work).catch(() => {});
  }
}

async function splitGroup(writer: Writer, group: readonly Feature[], bks: readonly Backend[], given?: OracleTrees): Promise<FeatureResult[]> {
  const out: FeatureResult[] = [];
  for (const f of group) out.push(...(await runGroup(writer, [f], bks, given)));
  return out;
}

/** Each feature of the group: the oracles' agreement, and every backend's tree against containerd's. */
function compareGroup(writer: Writer, group: readonly Feature[], { umoci, ctrd }: OracleTrees, stratum: Map<string, TreeOrError>, bks: readonly Backend[]): FeatureResult[] {
  return group.map((feature) => {
    // containerd is the oracle; umoci only when containerd could not run here at all
    const useUmoci = !containerd && 'tree' in umoci;
    const oracle = useUmoci ? 'umoci' : 'containerd';
    const expected: TreeOrError = useUmoci ? umoci : ctrd;
    let agreement: string;
    if ('tree' in umoci && 'tree' in ctrd) {
      const d = compareFeature(ctrd.tree, umoci.tree, feature, { names: ['containerd', 'umoci'] });
      agreement = d.length === 0 ? 'agree' : `disagree: ${d.slice(0, 2).join('; ')}${d.length > 2 ? ` (+${d.length - 2})` : ''}`;
    } else {
      agreement = [('error' in umoci ? `umoci refused: ${umoci.error}` : ''), ('error' in ctrd ? `containerd refused: ${ctrd.error}` : '')].filter(Boolean).join('; ');
    }
    const cells: Record<string, Outcome> = {};
    for (const b of bks) {
      const got = stratum.get(b.name)!;
      if ('error' in got) cells[b.name] = 'error' in expected ? { kind: 'refused', error: got.error, likeOracle: true } : { kind: 'refused', error: got.error };
      else if ('error' in expected) cells[b.name] = { kind: 'differs', diffs: [`${oracle} refuses these layers (${expected.error}); stratum ${b.name} unpacked them`] };
      // a writer that wrote nothing of the feature would make every backend trivially equal
      else if (featureEntries(expected.tree, feature).length < 2) cells[b.name] = { kind: 'differs', diffs: [`${oracle} shows nothing of ${feature.id}`] };
      else cells[b.name] = outcomeOf(compareFeature(expected.tree, got.tree, feature, { secondsOnly: b.secondsOnly ?? false, names: [oracle, `stratum ${b.name}`] }));
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
    const todo = knownDefect(writer.id, r.feature.id, b.name);
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
    for (const group of imageGroups(mine)) results.push(...(await runGroup(writer, group, backendsFor(writer))));
    for (const r of results) {
      rows.push({ writer: writer.id, feature: r.feature.id, oracle: r.oracle, oracles: r.oracles, cells: r.cells });
      await report(t, writer, r);
    }
  });
}

/** Docker's writer: its RUN steps' layers on every backend, against containerd, umoci and `docker export`. */
test(`writer ${DOCKER_WRITER} (docker build, classic builder)`, async (t) => {
  if (MISSING) return t.skip(MISSING);
  if (ONLY && !ONLY.includes(DOCKER_WRITER)) return t.skip(`not in STRATUM_CORPUS_WRITERS`);
  const why = dockerMissing();
  if (why) return t.skip(`LOUD SKIP: ${why}`);
  let daemon: PrivateDockerd;
  try {
    daemon = await timed('dockerd start', () => startDockerd(registry!.host));
  } catch (err) {
    return t.skip(`LOUD SKIP: a private dockerd cannot run here: ${failure(err)}`);
  }
  const work = await tmp.make('docker');
  try {
    await buildContext(work, dockerfile(DOCKER_FEATURES));
    const ref = `${registry!.host}/corpus/docker:${CORPUS_TAG}`;
    await timed('docker build', () => daemon.docker(['build', '--network', 'none', '--quiet', '-t', ref, work]));
    await timed('push', () => daemon.docker(['push', '--quiet', ref]));
    const exported = await treeOf('docker export', async () => {
      await exportRootfs(daemon, ref, join(work, 'export'));
      return { dir: join(work, 'export'), release: async () => {} };
    });
    const oracles: OracleTrees = {
      umoci: await treeOf('umoci', async () => ({ dir: await umociUnpack(ref, await tmp.make('docker-umoci')), release: async () => {} })),
      ctrd: containerd ? await treeOf('containerd', () => containerd!.rootfs(ref, join(work, 'containerd'))) : { error: containerdMissing! },
    };
    const bks = FULL ? backends : backends.filter((b) => SLOW_BACKEND_WRITERS.has(DOCKER_WRITER) || b.name === 'overlay' || b.name === 'native');
    const stratum = new Map<string, TreeOrError>();
    for (const b of bks) stratum.set(b.name, await treeOf(b.name, () => stratumRootfs(b.store, b.name, ref, join(work, `view-${b.name}`), b.prepareRoot)));
    const features: Feature[] = DOCKER_FEATURES.map((f) => ({ id: f.id, about: f.about, group: 'links' }));
    const writer: Writer = { id: DOCKER_WRITER, missing: () => undefined, image: async () => {} };
    for (const r of compareGroup(writer, features, oracles, stratum, bks)) {
      // docker export is the third oracle: it must agree with containerd on the image's own /c
      const vsExport = 'tree' in exported && 'tree' in oracles.ctrd ? compareFeature(oracles.ctrd.tree, exported.tree, r.feature, { names: ['containerd', 'docker export'] }) : undefined;
      r.oracles += `; docker export ${'error' in exported ? `refused: ${exported.error}` : vsExport!.length === 0 ? 'agrees' : `disagrees: ${vsExport!.slice(0, 2).join('; ')}`}`;
      rows.push({ writer: DOCKER_WRITER, feature: r.feature.id, oracle: r.oracle, oracles: r.oracles, cells: r.cells });
      await report(t, writer, r);
      await t.test(`${r.feature.id}: docker export equals containerd`, () => {
        if ('error' in exported) assert.fail(`docker export failed: ${exported.error}`);
        assert.deepEqual(vsExport, []);
      });
    }
  } finally {
    await daemon.stop();
  }
});

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
