import { readdir, rename } from 'node:fs/promises';
import { ensurePrivateDir } from '../sys/mkdir-all.js';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { matchesAny, parseFilters } from './filters.js';
import {
  REMOVAL_DIR,
  SNAPSHOTS_DIR,
  exists,
  STAGING_DIR,
  isPidAlive,
  moveToRemoval,
  ownedName,
  ownerPid,
  removeTree,
} from './fsutil.js';
import { getOwn, setOwn, validLabels } from './labels.js';
import { MetadataStore, type MetadataState, type SnapshotRecord } from './metadata.js';

/** Where records are looked up: the shared state read, or a transaction's draft. */
interface Records {
  get(key: string): Readonly<SnapshotRecord> | undefined;
}

function recordsOf(state: Readonly<MetadataState>): Records {
  return { get: (key) => getOwn(state.snapshots, key) };
}
import type { CommitOptions, Info, Mount, SnapshotOptions, SnapshotProblem, Snapshotter, Usage, WalkFunc } from './snapshotter.js';
import { reclaimTemporaries } from './temporaries.js';

/** Staging and removal paths this process is working on right now; cleanup leaves them alone. */
const inFlight = new Set<string>();

/**
 * The backend-independent part of every snapshotter (containerd's snapshots/storage): the
 * metadata rules, errors, walk filters and the life cycle of a snapshot's data directory.
 * Backends say how data is created, mounted and measured.
 *
 * Data of snapshot `id` lives in `<root>/snapshots/<id>`. A new snapshot's data is built in
 * `<root>/staging/…` without the lock, then renamed into place inside the metadata transaction
 * that records it, so a crash leaves at worst a directory no metadata points to (cleanup
 * reclaims it). Remove writes the metadata first and then moves the data away.
 */
export abstract class MetadataSnapshotter implements Snapshotter {
  abstract readonly name: string;
  abstract readonly capabilities: { rebase: boolean };
  abstract readonly applyMode: 'overlay' | 'full' | 'erofs';
  protected readonly meta: MetadataStore;
  private closed = false;

  protected constructor(readonly root: string) {
    this.meta = new MetadataStore(root);
  }

  /**
   * Creates the root's directories; backends call it before handing out an instance. The root
   * and its areas are 0700 (chmodded when an older version left them 0711), as containerd's since
   * CVE-2021-41103: a snapshot holds an image's tree, setuid binaries included, and no other user
   * may reach it by path. Mounts do not need more: the kernel resolves bind sources and overlay
   * lowerdirs as the (privileged or same-user) mounter, and mount targets lie elsewhere.
   */
  protected async init(): Promise<void> {
    await ensurePrivateDir(this.root);
    for (const dir of [SNAPSHOTS_DIR, STAGING_DIR, REMOVAL_DIR]) await ensurePrivateDir(join(this.root, dir));
  }

  /** Builds the data of a new snapshot at `dir` (which does not exist yet). `parents`: the chain's ids, newest first. */
  protected abstract createData(dir: string, kind: 'active' | 'view', parents: number[]): Promise<void>;
  protected abstract mountsFor(kind: 'active' | 'view', id: number, parents: number[]): Mount[];
  protected abstract dataUsage(id: number): Promise<Usage>;
  /** Where a layer is extracted for active snapshot `id`. */
  protected abstract applyDirOf(id: number): string;

  /** Deletes a data directory of this backend (a snapshot's, or one left in staging or removal). */
  protected deleteData(path: string): Promise<void> {
    return removeTree(path);
  }

  /**
   * Makes snapshot `id`'s data immutable, where the backend can: called inside the metadata
   * transaction once a view's data is in place and when an active is committed (a failure aborts
   * either). Sealed data may no longer be renamed: such a backend also overrides removeData.
   */
  protected async sealData(_id: number): Promise<void> {}

  protected dataDir(id: number): string {
    return join(this.root, SNAPSHOTS_DIR, String(id));
  }

  async stat(key: string): Promise<Info> {
    this.checkOpen();
    return toInfo(key, mustGet(recordsOf(await this.meta.read()), key));
  }

  async driverData(key: string): Promise<Record<string, string>> {
    this.checkOpen();
    const records = recordsOf(await this.meta.read());
    const rec = mustGet(records, key);
    return this.driverDataOf(rec.id, parentChain(records, rec.parent));
  }

  /** Where snapshot `id` keeps its files, for `inspect` (Docker's GraphDriver.Data); parents newest first. */
  protected driverDataOf(id: number, _parents: number[]): Record<string, string> {
    return { Dir: this.applyDirOf(id) };
  }

  async update(info: Pick<Info, 'name'> & Partial<Info>, ...fieldpaths: string[]): Promise<Info> {
    this.checkOpen();
    const key = info?.name;
    checkKey(key, 'update');
    const paths = fieldpaths.flatMap((p) => p.split(',')).map((p) => p.trim()).filter((p) => p !== '');
    for (const p of paths) {
      if (p !== 'labels' && !(p.startsWith('labels.') && p.length > 'labels.'.length)) {
        throw new InvalidArgumentError(`cannot update field ${JSON.stringify(p)} of snapshot ${JSON.stringify(key)}: only labels and labels.<key> can be updated`);
      }
    }
    const given = validLabels(info.labels, `snapshot ${JSON.stringify(key)}`);
    return this.meta.transaction((draft) => {
      const old = mustGet(draft, key);
      let labels: Record<string, string>;
      if (paths.length === 0 || paths.includes('labels')) {
        labels = given;
      } else {
        labels = validLabels(old.labels, 'stored snapshot');
        for (const p of paths) {
          const label = p.slice('labels.'.length);
          const value = getOwn(given, label);
          if (value === undefined) delete labels[label];
          else setOwn(labels, label, value);
        }
      }
      const rec: SnapshotRecord = { ...old, labels, updated: after(old.updated) };
      draft.put(key, rec);
      return toInfo(key, rec);
    });
  }

  async usage(key: string): Promise<Usage> {
    this.checkOpen();
    const rec = mustGet(recordsOf(await this.meta.read()), key);
    return this.dataUsage(rec.id);
  }

  async mounts(key: string): Promise<Mount[]> {
    this.checkOpen();
    const records = recordsOf(await this.meta.read());
    const rec = mustGet(records, key);
    if (rec.kind === 'committed') throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is committed: it has no mounts (view or prepare on it)`);
    return this.readyMounts(this.mountsFor(rec.kind, rec.id, parentChain(records, rec.parent)));
  }

  /**
   * Makes what handed-out mounts stand on ready before they are returned by prepare, view and
   * mounts (blockfile loop-mounts the snapshot's file, erofs mounts the layer images a union
   * stacks); nothing for most backends.
   */
  protected async readyMounts(mounts: Mount[]): Promise<Mount[]> {
    return mounts;
  }

  async applyDir(key: string): Promise<string> {
    this.checkOpen();
    const rec = mustGet(recordsOf(await this.meta.read()), key);
    if (rec.kind !== 'active') throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is ${rec.kind}: layers are applied to active snapshots only`);
    return this.applyDirOf(rec.id);
  }

  async prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.readyMounts(await this.createSnapshot('active', key, parent, options));
  }

  async view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.readyMounts(await this.createSnapshot('view', key, parent, options));
  }

  async commit(name: string, key: string, options: CommitOptions = {}): Promise<void> {
    this.checkOpen();
    checkKey(name, 'commit (name)');
    checkKey(key, 'commit (key)');
    const labels = validLabels(options.labels, `snapshot ${JSON.stringify(name)}`);
    const rebaseOnto = options.parent === '' ? undefined : options.parent;
    if (rebaseOnto !== undefined && !this.capabilities.rebase) {
      throw new InvalidArgumentError(`${this.name} snapshotter cannot rebase: commit ${JSON.stringify(key)} with a parent is not supported`);
    }
    await this.meta.transaction(async (draft) => {
      const rec = mustGet(draft, key);
      if (rec.kind !== 'active') throw new FailedPreconditionError(`cannot commit snapshot ${JSON.stringify(key)}: it is ${rec.kind}, only active snapshots can be committed`);
      if (draft.has(name)) throw new AlreadyExistsError(`cannot commit ${JSON.stringify(key)} as ${JSON.stringify(name)}: snapshot ${JSON.stringify(name)} already exists`);
      let parent = rec.parent;
      if (rebaseOnto !== undefined) {
        if (rec.parent !== undefined) {
          throw new FailedPreconditionError(`cannot rebase snapshot ${JSON.stringify(key)} onto ${JSON.stringify(rebaseOnto)}: it was prepared on ${JSON.stringify(rec.parent)}, only a snapshot prepared without parent can be rebased`);
        }
        checkParent(draft, rebaseOnto, `commit ${JSON.stringify(key)}`);
        parent = rebaseOnto;
      }
      await this.sealData(rec.id);
      draft.delete(key);
      const now = new Date().toISOString();
      const committed: SnapshotRecord = { id: rec.id, kind: 'committed', labels, created: now, updated: now };
      if (parent !== undefined) committed.parent = parent;
      draft.put(name, committed);
    });
  }

  async remove(key: string): Promise<void> {
    this.checkOpen();
    checkKey(key, 'remove');
    const id = await this.meta.transaction((draft) => {
      const rec = mustGet(draft, key);
      // Only a committed snapshot can be a parent: removing an active or a view needs no scan.
      if (rec.kind === 'committed') {
        for (const [child, r] of draft.entries()) {
          if (r.parent === key) throw new FailedPreconditionError(`cannot remove snapshot with child: ${JSON.stringify(key)} is the parent of ${JSON.stringify(child)}`);
        }
      }
      draft.delete(key);
      return rec.id;
    });
    // Metadata first: a crash from here on leaves only a directory no metadata points to.
    await this.removeData(id);
  }

  async walk(fn: WalkFunc, ...filters: string[]): Promise<void> {
    this.checkOpen();
    const parsed = parseFilters(filters);
    const state = await this.meta.read();
    // No lock is held while fn runs, so fn may call stat (or anything else); the entries are taken
    // first because the shared state moves on with every change.
    const entries = Object.entries(state.snapshots).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, rec] of entries) {
      const info = toInfo(key, rec);
      if (matchesAny(parsed, info)) await fn(info);
    }
  }

  async cleanup(): Promise<void> {
    this.checkOpen();
    // Temporary snapshots and mounts of dead processes first: their data then goes with the rest.
    await reclaimTemporaries(this);
    // Under the lock, so a directory another process is renaming into place with its metadata is never taken.
    await this.meta.locked(async () => {
      const state = await this.meta.read();
      const live = new Set(Object.values(state.snapshots).map((r) => String(r.id)));
      for (const name of await readdir(join(this.root, SNAPSHOTS_DIR))) {
        if (!live.has(name)) await this.discardOrphan(name);
      }
    });
    // Temp files of metadata writers that died before their rename.
    for (const name of await readdir(this.root)) {
      const m = /^metadata\.(?:json|journal)\.(\d+)-[0-9a-f]+\.tmp$/.exec(name);
      if (m && Number(m[1]) !== process.pid && !isPidAlive(Number(m[1]))) await removeTree(join(this.root, name));
    }
    for (const area of [REMOVAL_DIR, STAGING_DIR]) {
      for (const name of await readdir(join(this.root, area))) {
        const path = join(this.root, area, name);
        const pid = ownerPid(name);
        const abandoned = pid === undefined || (pid === process.pid ? !inFlight.has(path) : !isPidAlive(pid));
        if (abandoned) await this.deleteData(path);
      }
    }
  }

  async verify(): Promise<SnapshotProblem[]> {
    this.checkOpen();
    // Under the lock, so a snapshot being created (data renamed in with its record) is seen whole.
    return this.meta.locked(async () => {
      const state = await this.meta.read();
      const records = recordsOf(state);
      const dirs = new Set(await readdir(join(this.root, SNAPSHOTS_DIR)));
      const problems: SnapshotProblem[] = [];
      for (const [key, rec] of Object.entries(state.snapshots)) {
        if (rec.parent !== undefined) {
          const parent = records.get(rec.parent);
          if (parent === undefined) problems.push({ kind: 'snapshot-parent', subject: key, message: `its parent ${JSON.stringify(rec.parent)} is not in the metadata` });
          else if (parent.kind !== 'committed') problems.push({ kind: 'snapshot-parent', subject: key, message: `its parent ${JSON.stringify(rec.parent)} is ${parent.kind}, not committed` });
        }
        if (!dirs.delete(String(rec.id))) problems.push({ kind: 'snapshot-data', subject: key, message: `its data ${join(SNAPSHOTS_DIR, String(rec.id))} is missing` });
      }
      for (const dir of dirs) {
        problems.push({ kind: 'snapshot-orphan', subject: join(this.root, SNAPSHOTS_DIR, dir), message: 'no snapshot record points to it (snapshot cleanup removes it)' });
      }
      return problems;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Moves the data of a snapshot that no metadata points to out of snapshots/ (cleanup then deletes it). */
  protected async discardOrphan(name: string): Promise<void> {
    await moveToRemoval(this.root, join(this.root, SNAPSHOTS_DIR, name), `orphan-${name}`);
  }

  /**
   * Moves a removed snapshot's data away and deletes it. Its metadata is already gone, so a
   * failure here (a busy mount point, EIO) must not fail the remove: cleanup reclaims the rest.
   */
  protected async removeData(id: number): Promise<void> {
    let aside: string | undefined;
    try {
      aside = await moveToRemoval(this.root, this.dataDir(id), `snapshot-${id}`);
      if (aside === undefined) return;
      inFlight.add(aside);
      await this.deleteData(aside);
    } catch {
      // left for cleanup
    } finally {
      if (aside !== undefined) inFlight.delete(aside);
    }
  }

  protected checkOpen(): void {
    if (this.closed) throw new FailedPreconditionError(`${this.name} snapshotter at ${this.root} is closed`);
  }

  private async createSnapshot(kind: 'active' | 'view', key: string, parentName: string | undefined, options: SnapshotOptions = {}): Promise<Mount[]> {
    this.checkOpen();
    const verb = kind === 'active' ? 'prepare' : 'view';
    checkKey(key, verb);
    const labels = validLabels(options.labels, `snapshot ${JSON.stringify(key)}`);
    const parent = parentName === '' ? undefined : parentName;
    const check = (records: Records): number[] => {
      if (records.get(key) !== undefined) throw new AlreadyExistsError(`cannot ${verb} ${JSON.stringify(key)}: snapshot ${JSON.stringify(key)} already exists`);
      if (parent === undefined) return [];
      checkParent(records, parent, `${verb} ${JSON.stringify(key)}`);
      return parentChain(records, parent);
    };
    // Fail fast before building any data; the transaction checks again.
    const chain = check(recordsOf(await this.meta.read()));
    const staging = join(this.root, STAGING_DIR, ownedName('new'));
    inFlight.add(staging);
    try {
      await this.createData(staging, kind, chain);
      const id = await this.meta.transaction(async (draft) => {
        const now = check(draft);
        if (now.join() !== chain.join()) {
          throw new FailedPreconditionError(`cannot ${verb} ${JSON.stringify(key)}: parent ${JSON.stringify(parent)} was replaced while the snapshot was being created`);
        }
        const id = draft.allocateId();
        const target = this.dataDir(id);
        // Left by a process that died after renaming but before its metadata was written.
        if (await exists(target)) await moveToRemoval(this.root, target, `orphan-${id}`);
        await rename(staging, target);
        if (kind === 'view') await this.sealData(id);
        const stamp = new Date().toISOString();
        const rec: SnapshotRecord = { id, kind, labels, created: stamp, updated: stamp };
        if (parent !== undefined) rec.parent = parent;
        draft.put(key, rec);
        return id;
      });
      return this.mountsFor(kind, id, chain);
    } catch (err) {
      await this.deleteData(staging);
      throw err;
    } finally {
      inFlight.delete(staging);
    }
  }
}

function checkKey(key: unknown, what: string): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`${what}: a snapshot key must be a non-empty string`);
}

function mustGet(records: Records, key: string): Readonly<SnapshotRecord> {
  checkKey(key, 'snapshot lookup');
  const rec = records.get(key);
  if (rec === undefined) throw new NotFoundError(`snapshot ${JSON.stringify(key)} not found`);
  return rec;
}

function checkParent(records: Records, parent: string, what: string): void {
  const rec = records.get(parent);
  if (rec === undefined) throw new NotFoundError(`cannot ${what}: parent snapshot ${JSON.stringify(parent)} not found`);
  if (rec.kind !== 'committed') throw new InvalidArgumentError(`cannot ${what}: parent snapshot ${JSON.stringify(parent)} is ${rec.kind}, not committed`);
}

/** Ids of `parent` and its ancestors, newest first. */
export function parentChain(records: Records, parent: string | undefined): number[] {
  const ids: number[] = [];
  const seen = new Set<string>();
  for (let name = parent; name !== undefined; ) {
    const rec = records.get(name);
    if (rec === undefined) throw new NotFoundError(`snapshot metadata is inconsistent: parent ${JSON.stringify(name)} not found`);
    ids.push(rec.id);
    if (seen.has(name)) throw new FailedPreconditionError(`snapshot metadata is inconsistent: parent cycle through ${JSON.stringify(name)}`);
    seen.add(name);
    name = rec.parent;
  }
  return ids;
}

function toInfo(name: string, rec: Readonly<SnapshotRecord>): Info {
  const info: Info = {
    kind: rec.kind,
    name,
    labels: validLabels(rec.labels, 'stored snapshot'),
    created: new Date(rec.created),
    updated: new Date(rec.updated),
  };
  if (rec.parent !== undefined) info.parent = rec.parent;
  return info;
}

/** Now, but strictly after `previous` (updated must move forward even within one millisecond). */
function after(previous: string): string {
  const prev = Date.parse(previous);
  return new Date(Math.max(Date.now(), prev + 1)).toISOString();
}

