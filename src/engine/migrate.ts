import { chainIds, type Digest } from '../oci/digest.js';
import type { Provider } from '../content/content.js';
import { FailedPreconditionError, MigrationBlockedError, MigrationMismatchError } from '../errors.js';
import type { ImageListing, ListedImage } from '../image/resolve.js';
import { ensureUnpacked, withSnapshotView } from '../image/rootfs.js';
import { checkStorageDriver, normalizeDriverName } from '../snapshotter/driver.js';
import { validateStorageOpts } from '../snapshotter/index.js';
import type { SnapshotterName } from '../snapshotter/names.js';
import type { Info, Snapshotter } from '../snapshotter/snapshotter.js';
import { splitStorageOpt } from '../snapshotter/storage-opts.js';
import { reclaimTemporaries } from '../snapshotter/temporaries.js';
import { compareTrees, readTree } from '../snapshotter/tree-compare.js';
import { mkdirAll } from '../sys/mkdir-all.js';
import type { MountRecord } from './mount-table.js';
import { readMigrateJournal, removeMigrateJournal, writeMigrateJournal, type MigrateJournal } from './migrate-journal.js';
import { collectSnapshots, LAYER_LABEL } from './snapshot-gc.js';

export interface MigrateOptions {
  /** The driver to move to (Docker's names overlay2 and vfs too). */
  to: string;
  /** Options for the new driver (`zfs.compression=lz4`…); they replace the store's options of that driver. */
  storageOpts?: string[];
  /** Leave snapshots no image carries (a user's writable snapshot, its parents) in the old driver instead of refusing. */
  force?: boolean;
  onProgress?: (event: MigrateEvent) => void;
}

/** What `migrate` reports as it goes (the CLI prints one line or one JSON object per event). */
export type MigrateEvent =
  | { type: 'start'; from: SnapshotterName; to: SnapshotterName; images: number; resumed: boolean }
  | { type: 'image'; name: string; index: number; total: number; top?: string; entries: number; comparedWith: 'old-driver' | 'layer-digests'; resumed: boolean }
  | { type: 'switched'; from: SnapshotterName; to: SnapshotterName }
  | { type: 'removed'; driver: SnapshotterName; snapshots: number; kept: string[] };

/** What a finished migration did. */
export interface MigrateResult {
  from: SnapshotterName;
  to: SnapshotterName;
  images: number;
  /** Snapshots of the old driver removed. */
  removed: number;
  /** Snapshots left in the old driver (`force`): not carried by any image. */
  kept: string[];
  resumed: boolean;
}

/** What migrate needs of the Engine that owns the store. */
export interface MigrationContext {
  storeRoot: string;
  store: Provider;
  /** The store's recorded driver and options. */
  recorded(): Promise<{ name: SnapshotterName; storageOpts: string[] }>;
  rootFor(name: SnapshotterName): string;
  open(name: SnapshotterName, storageOpts: readonly string[]): Promise<Snapshotter>;
  /** Closes and forgets an opened snapshotter whose root is about to go. */
  forget(name: SnapshotterName): Promise<void>;
  listImages(): Promise<ImageListing>;
  liveMounts(): Promise<MountRecord[]>;
  /** Records `name` and `storageOpts` as the store's driver. */
  record(name: SnapshotterName, storageOpts: string[], why: string): Promise<void>;
  /** Deletes the old driver's root once it holds no snapshot. */
  removeRoot(name: SnapshotterName): Promise<void>;
}

/**
 * Moves every image of the store to driver `to`: each is unpacked again from the stored blobs
 * (no network) and its tree in the new driver compared with the one in the old (when the old had
 * it unpacked); only when every image verified does the store record the new driver, and then
 * the old driver's layer snapshots go. Each step is journaled (migrate-journal.ts): killed at any
 * point, the next migrate to the same driver resumes, and until the switch the old driver is the
 * store's and is left whole.
 */
export async function migrateStore(ctx: MigrationContext, options: MigrateOptions): Promise<MigrateResult> {
  const to = normalizeDriverName(options.to);
  const recorded = await ctx.recorded();
  let journal = await readMigrateJournal(ctx.storeRoot);
  const resumed = journal !== undefined;
  if (journal && journal.to !== to) {
    throw new FailedPreconditionError(`an unfinished migration from ${journal.from} to ${journal.to} is journaled in ${ctx.storeRoot}/migrate.json: finish it first (stratum migrate --to ${journal.to})`);
  }
  if (!journal && recorded.name === to) throw new FailedPreconditionError(`the store already uses the ${to} storage driver`);
  const from = journal?.from ?? recorded.name;
  const storageOpts = journal?.storageOpts ?? withOptionsFor(to, recorded.storageOpts, options.storageOpts);
  await validateStorageOpts(storageOpts, to);

  const { images, warnings } = await ctx.listImages();
  const source = await ctx.open(from, recorded.storageOpts);
  let kept: string[] = [];
  if (!journal || journal.phase === 'unpacking') {
    await mkdirAll(ctx.rootFor(to));
    await checkStorageDriver(to, ctx.rootFor(to));
    kept = await checkNothingIsLost(ctx, source, warnings, options.force === true);
    if (!journal) {
      journal = { version: 1, from, to, storageOpts, started: new Date().toISOString(), phase: 'unpacking', verified: {} };
      await writeMigrateJournal(ctx.storeRoot, journal);
    }
    options.onProgress?.({ type: 'start', from, to, images: images.length, resumed });
    const target = await ctx.open(to, storageOpts);
    for (const [i, image] of images.entries()) {
      const key = `${image.name}@${image.descriptor.digest}`;
      const done = journal.verified[key];
      const entry = done ?? (await moveImage(ctx.store, source, target, image));
      if (!done) {
        journal.verified[key] = entry;
        await writeMigrateJournal(ctx.storeRoot, journal);
      }
      options.onProgress?.({ type: 'image', name: image.name, index: i + 1, total: images.length, ...(entry.top ? { top: entry.top } : {}), entries: entry.entries, comparedWith: entry.comparedWith, resumed: done !== undefined });
    }
    await ctx.record(to, storageOpts, `migrated from ${from} by stratum migrate (${journal.started})`);
    journal.phase = 'switched';
    await writeMigrateJournal(ctx.storeRoot, journal);
    options.onProgress?.({ type: 'switched', from, to });
  } else {
    options.onProgress?.({ type: 'start', from, to, images: images.length, resumed });
  }

  // Every layer snapshot stratum made in the old driver; what a kept snapshot builds on stays.
  const { removed } = await collectSnapshots(source, new Set<Digest>());
  const left: Info[] = [];
  await source.walk((info) => void left.push(info));
  kept = left.map((i) => i.name);
  if (left.length === 0) {
    await ctx.forget(from);
    await ctx.removeRoot(from);
  }
  options.onProgress?.({ type: 'removed', driver: from, snapshots: removed.length, kept });
  await removeMigrateJournal(ctx.storeRoot);
  return { from, to, images: images.length, removed: removed.length, kept, resumed };
}

/** The store's options with those of driver `to` replaced by `given` (when given). */
function withOptionsFor(to: SnapshotterName, current: readonly string[], given: readonly string[] | undefined): string[] {
  if (given === undefined) return [...current];
  const others = current.filter((o) => splitStorageOpt(o).driver !== to);
  return [...others, ...given];
}

/**
 * Refuses what migrate would lose or break: a mounted snapshot (unmount first, whatever `force`
 * says), images whose tags cannot be read, and snapshots in the old driver that no image carries
 * (active, views, committed ones stratum did not unpack). With `force`, those are listed and left
 * in the old driver instead. Temporaries of dead processes are reclaimed first: they are not work.
 */
async function checkNothingIsLost(ctx: MigrationContext, source: Snapshotter, unreadable: ImageListing['warnings'], force: boolean): Promise<string[]> {
  const mounted = await ctx.liveMounts();
  if (mounted.length > 0) {
    const list = mounted.map((m) => `${m.target} (snapshot ${m.key}, ${m.snapshotter})`);
    throw new MigrationBlockedError(`cannot migrate while stratum has snapshots mounted: ${list.join(', ')}; unmount them first (stratum unmount TARGET)`, list);
  }
  await reclaimTemporaries(source).catch(() => {});
  const own: Info[] = [];
  await source.walk((info) => {
    if (info.kind !== 'committed' || info.labels[LAYER_LABEL] === undefined) own.push(info);
  });
  const blockers = [
    ...own.map((i) => `snapshot ${i.name} (${i.kind}${i.parent ? ` on ${i.parent.slice(0, 19)}` : ''})`),
    ...unreadable.map((w) => `image ${w.name} (unreadable: ${w.message})`),
  ];
  if (blockers.length > 0 && !force) {
    throw new MigrationBlockedError(
      `cannot migrate: ${blockers.length} ${blockers.length === 1 ? 'thing' : 'things'} in the store no image carries to the new driver: ${blockers.join('; ')}. ` +
        `Commit a writable snapshot as an image (stratum commit KEY NAME) so it moves too, or remove it (stratum snapshot rm KEY); ` +
        `--force leaves them in the old driver's directory`,
      blockers,
    );
  }
  return own.map((i) => i.name);
}

/** Unpacks one image into `target` and compares its tree with the one in `source` (when `source` has it). */
async function moveImage(store: Provider, source: Snapshotter, target: Snapshotter, image: ListedImage): Promise<MigrateJournal['verified'][string]> {
  const top = chainIds(image.config.rootfs.diff_ids).at(-1);
  if (top === undefined) return { entries: 0, comparedWith: 'layer-digests' };
  await ensureUnpacked(store, target, image);
  const after = await withSnapshotView(target, top, `migrated tree of ${image.name}`, readTree);
  const inSource = await source.stat(top).then(
    (info) => info.kind === 'committed',
    () => false,
  );
  // Not unpacked in the old driver: the unpacker checked every layer against its diffID.
  if (!inSource) return { top, entries: after.size, comparedWith: 'layer-digests' };
  const before = await withSnapshotView(source, top, `tree of ${image.name} before migration`, readTree);
  const differences = compareTrees(before, after);
  if (differences.length > 0) throw new MigrationMismatchError(image.name, differences);
  return { top, entries: after.size, comparedWith: 'old-driver' };
}
