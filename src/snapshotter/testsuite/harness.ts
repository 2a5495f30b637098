/**
 * One snapshotter per test on a fresh root, with real mounts under a scratch directory that
 * are always taken down again (also when a test fails half way), plus the assertions the
 * metadata rules share: the exact error class and code, and "refused again, nothing changed".
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StratumError } from '../../errors.js';
import { mountAll, mountsUnder, unmountAll } from '../mount.js';
import type { Info, Mount, SnapshotOptions, Snapshotter } from '../snapshotter.js';
import type { Tree } from './tree.js';

const run = promisify(execFile);

/** A snapshotter backend under test: how to open it, and what it needs. */
export interface Backend {
  /** Shown in test names (`snapshotter conformance: NAME`). */
  name: string;
  /** Opens the backend on `root`, a new empty directory for each test (reopened on the same root by some tests). */
  open(root: string): Promise<Snapshotter>;
  /** Why the backend cannot run here (no loop device, no FUSE…): every test then skips, loudly, with it. */
  skipReason?: () => Promise<string | undefined>;
  /** Where each test's temp directory is made (a filesystem the backend needs); default the OS temp dir. */
  tempParent?: () => string;
  /**
   * Defects of the backend's own mount, known and not stratum's to fix (fuse-overlayfs's copy-up):
   * given one difference the long-chain test found (its path, the line, the expected tree), the
   * defect's description when it is one. Those are reported loudly with that description instead
   * of failing the test; every other difference still fails.
   */
  knownDefect?: (difference: { path: string; line: string; expected: Tree }) => string | undefined;
  /** Run before a test's temp directory is removed (e.g. deleting read-only subvolumes). */
  beforeRemove?: (base: string) => Promise<void>;
  /**
   * Each snapshot's files live inside one filesystem file (blockfile), seen under the root only
   * while that file is mounted: "commit copies no data" is checked on the files under
   * `snapshots/` (same paths, same inodes) instead of on a file written into the snapshot.
   */
  blockData?: boolean;
  /**
   * Commit turns the written files into another form (erofs: one image per layer, as containerd's
   * erofs snapshotter converts the upper directory): "commit copies no data" becomes "the
   * committed snapshot keeps its id and shows the data", checked through a view.
   */
  convertsOnCommit?: boolean;
}

export class Harness {
  /** mount target → the key it shows, in mount order. */
  private readonly mounted = new Map<string, string>();
  private counter = 0;

  private constructor(
    readonly sn: Snapshotter,
    /** The snapshotter root. */
    readonly root: string,
    /** Scratch space outside the root: mount targets, reference trees. */
    readonly scratch: string,
    private readonly base: string,
    readonly backend: Backend,
  ) {}

  static async open(backend: Backend): Promise<Harness> {
    const parent = backend.tempParent?.();
    const base = parent ? await mkdtemp(join(parent, `conformance-${backend.name}-`)) : await mkdtemp(join(tmpdir(), `stratum-conformance-${backend.name}-`));
    const root = join(base, 'root');
    const scratch = join(base, 'scratch');
    await mkdir(root);
    await mkdir(scratch);
    try {
      return new Harness(await backend.open(root), root, scratch, base, backend);
    } catch (err) {
      await rm(base, { recursive: true, force: true });
      throw err;
    }
  }

  /** Reopens the snapshotter on the same root (after close). */
  async reopen(): Promise<Harness> {
    await this.sn.close();
    const h = new Harness(await this.backend.open(this.root), this.root, this.scratch, this.base, this.backend);
    return h;
  }

  /** A second snapshotter instance on the same root (the caller closes it). */
  openAnother(): Promise<Snapshotter> {
    return this.backend.open(this.root);
  }

  /** See Backend.convertsOnCommit. */
  get convertsOnCommit(): boolean {
    return this.backend.convertsOnCommit === true;
  }

  /** See Backend.blockData. */
  get blockData(): boolean {
    return this.backend.blockData === true;
  }

  /** The temp directory holding root and scratch: nothing may appear beside it. */
  get baseDir(): string {
    return this.base;
  }

  unique(prefix: string): string {
    return `${prefix}-${++this.counter}`;
  }

  async mkScratch(prefix: string): Promise<string> {
    return mkdtemp(join(this.scratch, `${prefix}-`));
  }

  /** mountAll onto a fresh directory; returns it. */
  async mount(mounts: Mount[], key = '?'): Promise<string> {
    const target = await this.mkScratch('mnt');
    await mountAll(mounts, target);
    this.mounted.set(target, key);
    return target;
  }

  async unmount(target: string): Promise<void> {
    await unmountAll(target);
    this.mounted.delete(target);
    await rmdir(target);
  }

  /** Unmounts whatever shows `key`. */
  async unmountKey(key: string): Promise<void> {
    for (const [target, k] of [...this.mounted].reverse()) if (k === key) await this.unmount(target);
  }

  /** prepare + mount: the writable directory. */
  async prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<string> {
    return this.mount(await this.sn.prepare(key, parent, options), key);
  }

  /** Unmounts the key's directory (if mounted here), then commits. */
  async commit(name: string, key: string, options?: SnapshotOptions): Promise<void> {
    await this.unmountKey(key);
    await this.sn.commit(name, key, options);
  }

  /** One committed layer `name` on `parent`, its content made by fn through a real mount. */
  async layer(name: string, parent: string | undefined, fn: (dir: string) => Promise<void>, options?: SnapshotOptions): Promise<void> {
    const key = `extract-${++this.counter} ${name}`;
    const dir = await this.prepare(key, parent, options);
    await fn(dir);
    await this.commit(name, key, options);
  }

  /** A mounted read-only view of `parent` for the duration of fn; the view is removed after. */
  async withView<T>(parent: string | undefined, fn: (dir: string) => Promise<T>): Promise<T> {
    const key = this.unique('view');
    const target = await this.mount(await this.sn.view(key, parent), key);
    try {
      return await fn(target);
    } finally {
      await this.unmount(target);
      await this.sn.remove(key);
    }
  }

  /** Every Info, sorted by name, dates as ISO strings. */
  async infos(...filters: string[]): Promise<Info[]> {
    const out: Info[] = [];
    await this.sn.walk((info) => {
      out.push(info);
    }, ...filters);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * What "nothing changed" compares: every Info (incl. timestamps), and the directories under
   * the root down to depth 3 (a leaked snapshot directory shows there).
   */
  async state(): Promise<string> {
    const infos = (await this.infos()).map((i) => ({ ...i, created: i.created.toISOString(), updated: i.updated.toISOString() }));
    const dirs: string[] = [];
    const visit = async (rel: string, depth: number): Promise<void> => {
      if (depth > 3) return;
      for (const e of await readdir(join(this.root, rel), { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        const p = rel ? `${rel}/${e.name}` : e.name;
        dirs.push(p);
        await visit(p, depth + 1);
      }
    };
    await visit('', 1);
    return JSON.stringify({ infos, dirs: dirs.sort() }, null, 1);
  }

  /** Takes down every mount (also ones a failed test left), closes, removes the scratch area. */
  async dispose(): Promise<void> {
    const errors: unknown[] = [];
    for (const target of [...this.mounted.keys()].reverse()) {
      try {
        await this.unmount(target);
      } catch (err) {
        errors.push(err);
      }
    }
    for (const target of await mountsUnder(this.base)) {
      try {
        await unmountAll(target);
      } catch {
        await run('umount', ['-l', target]).catch((err: unknown) => errors.push(err));
      }
    }
    try {
      await this.sn.close();
    } catch (err) {
      errors.push(err);
    }
    const left = await mountsUnder(this.base);
    if (left.length > 0) throw new Error(`mounts left under ${this.base}, not removing it: ${left.join(', ')}`);
    await this.backend.beforeRemove?.(this.base);
    await rm(this.base, { recursive: true, force: true, maxRetries: 3 });
    if (errors.length > 0) throw new AggregateError(errors, `cleaning up ${this.base}`);
  }
}

export { mountsUnder };

type ErrorClass = new (...args: never[]) => StratumError;

/** Awaits a rejection of exactly this class and code (and message, when given). */
export async function expectError(
  action: () => Promise<unknown>,
  cls: ErrorClass,
  code: string,
  message?: RegExp,
): Promise<StratumError> {
  let caught: unknown;
  try {
    await action();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${cls.name} (${code}), but the call succeeded`);
  const e = caught as StratumError;
  assert.ok(caught instanceof cls, `expected ${cls.name} (${code}), got ${(e as Error)?.name}: ${(e as Error)?.message} (code ${e?.code})`);
  assert.equal(e.code, code, `error code of: ${e.message}`);
  if (message) assert.match(e.message, message);
  return e;
}

/** The call is refused the same way twice, and neither refusal changed any state. */
export async function expectRefusedTwice(
  h: Harness,
  action: () => Promise<unknown>,
  cls: ErrorClass,
  code: string,
  message?: RegExp,
): Promise<void> {
  const before = await h.state();
  const first = await expectError(action, cls, code, message);
  const second = await expectError(action, cls, code, message);
  assert.equal(second.message, first.message, 'a repeated refusal gives the same message');
  assert.equal(await h.state(), before, 'a refused call must change nothing (metadata and directories)');
}

/** Disk usage of a tree the way du counts it: allocated blocks, each inode once. */
export async function diskBytes(dir: string): Promise<number> {
  // (dev, ino): every btrfs subvolume numbers its inodes from 256 again under its own st_dev.
  const seen = new Set<string>();
  let bytes = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      bytes += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) for (const name of await readdir(p)) await visit(join(p, name));
  };
  await visit(dir);
  return bytes;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sleeps until the wall clock has entered the next whole second. */
export async function nextSecond(): Promise<void> {
  const now = Date.now();
  await sleep(1000 - (now % 1000) + 5);
}
