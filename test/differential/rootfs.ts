/**
 * The root filesystems the corpus compares: stratum's (pulled from the registry, a read-only
 * view of the image on one backend) and the oracles' (`umoci raw unpack` of the same layout;
 * containerd 1.6's overlayfs view of the image pulled from the registry).
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startContainerd, type PrivateContainerd, CTR } from '../../bench/lib/containerd.js';
import { loadImageByName } from '../../src/image/image.js';
import { pull } from '../../src/image/pull.js';
import { mountImage, unmountImage } from '../../src/image/rootfs.js';
import { OciStore } from '../../src/content/store.js';
import { RegistryClient } from '../../src/registry/client.js';
import { openSnapshotter, type SnapshotterName } from '../../src/snapshotter/index.js';
import { LAYER_IMAGE } from '../../src/snapshotter/backends.js';
import { CORPUS_TAG } from './writers.js';

const run = promisify(execFile);

export interface Rootfs {
  dir: string;
  release(): Promise<void>;
}

/** Why a tool's run failed, in one line: its own final verdict (`ctr: …`) or the end of its stderr. */
export function failure(err: unknown): string {
  const e = err as { stderr?: string; message?: string; code?: string };
  const lines = (e.stderr || e.message || String(err)).trim().split('\n');
  const verdict = lines.findLast((l) => l.startsWith('ctr: '));
  return `${e.code ? `${e.code}: ` : ''}${verdict ?? lines.slice(-3).join(' | ')}`.slice(0, 500);
}

/** `umoci raw unpack` of the layout's image into `dir`. */
export async function umociRootfs(layout: string, dir: string): Promise<Rootfs> {
  await run('/usr/bin/umoci', ['raw', 'unpack', '--image', `${layout}:${CORPUS_TAG}`, dir], { maxBuffer: 16 << 20 });
  return { dir, release: async () => {} };
}

const checkedImages = new Set<string>();

/** erofs: `fsck.erofs` (erofs-utils) on every layer image not checked yet; a complaint fails the rootfs. */
async function fsckLayerImages(root: string): Promise<void> {
  for (const id of await readdir(join(root, 'snapshots')).catch(() => [] as string[])) {
    const image = join(root, 'snapshots', id, LAYER_IMAGE);
    if (checkedImages.has(image)) continue;
    try {
      await run('fsck.erofs', [image]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !(await readdir(join(root, 'snapshots', id))).includes(LAYER_IMAGE)) continue;
      throw new Error(`fsck.erofs ${image}: ${failure(err)}`);
    }
    checkedImages.add(image);
  }
}

/** A private containerd 1.6 (see bench/lib/containerd.ts) that pulls from the loopback registry. */
export class ContainerdOracle {
  private constructor(private readonly daemon: PrivateContainerd) {}

  static async start(dir: string): Promise<ContainerdOracle> {
    return new ContainerdOracle(await startContainerd(dir));
  }

  private ctr(args: string[]) {
    return run(CTR, ['-a', this.daemon.socket, '-n', 'corpus', ...args], { maxBuffer: 16 << 20 });
  }

  /** Pulls `ref` over plain HTTP (unpacking into the overlayfs snapshotter) and mounts a read-only view at `dir`. */
  async rootfs(ref: string, dir: string): Promise<Rootfs> {
    await this.ctr(['images', 'pull', '--plain-http', ref]);
    await mkdir(dir, { recursive: true });
    await this.ctr(['images', 'mount', '--plain-http', ref, dir]);
    return { dir, release: () => this.ctr(['images', 'unmount', '--rm', dir]).then(() => {}) };
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }
}

/**
 * stratum's rootfs of `ref` with one backend: pull into the store at `store` (unpacking into the
 * snapshotter at store/snapshots/<name>), then mount a read-only view of the top chainID at `dir`.
 * `prepareRoot` readies the snapshotter root first (a zfs dataset).
 */
export async function stratumRootfs(
  store: string,
  backend: SnapshotterName,
  ref: string,
  dir: string,
  prepareRoot?: (root: string) => Promise<unknown>,
): Promise<Rootfs> {
  const content = await OciStore.open(store);
  const root = join(store, 'snapshots', backend);
  await mkdir(root, { recursive: true });
  await prepareRoot?.(root);
  const snapshotter = await openSnapshotter(backend, root);
  const client = new RegistryClient();
  try {
    await pull(ref, { store: content, client, unpack: { snapshotter } });
    if (backend === 'erofs') await fsckLayerImages(root);
    await mountImage(content, snapshotter, await loadImageByName(content, ref), dir);
  } catch (err) {
    await snapshotter.close();
    throw err;
  } finally {
    await client.close();
  }
  return {
    dir,
    release: async () => {
      try {
        await unmountImage([snapshotter], dir);
      } finally {
        await snapshotter.close();
      }
    },
  };
}
