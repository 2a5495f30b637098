import { chainIds, type Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { leasedDigests } from '../content/lease.js';
import type { OciStore } from '../content/store.js';
import type { Descriptor } from '../oci/types.js';
import type { Info, Snapshotter } from '../snapshotter/snapshotter.js';
import { isStratumError } from '../errors.js';

/** Label of a snapshot the unpacker committed: the layer blob it holds. Only these are collected. */
export const LAYER_LABEL = 'dev.stratum.layer';

/** Smallest size read when looking for a config among leased blobs; larger blobs are layers. */
const MAX_CONFIG_BYTES = 1024 * 1024;

export interface NeededChains {
  /** chainIDs of every layer of every image in the store, and of images a running pull holds. */
  chains: Set<Digest>;
  /** Tags that could not be read: with any, snapshots are not collected (one of them may need them). */
  unreadable: Array<{ name: string; error: string }>;
}

/**
 * What the images need unpacked: the chainIDs of each tagged image (each platform of an index
 * that is present), and of each image a live pull holds in its lease (its config is leased
 * before its layers are committed). containerd keeps the same set through `gc.ref.snapshot.*`
 * labels on images; here it is derived from the configs, so no label can go stale.
 */
export async function neededChains(store: OciStore): Promise<NeededChains> {
  const chains = new Set<Digest>();
  const unreadable: NeededChains['unreadable'] = [];
  const addConfig = async (digest: Digest) => {
    const config = JSON.parse((await store.read(digest, MAX_CONFIG_BYTES)).toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
    const diffIds = config.rootfs?.diff_ids;
    if (Array.isArray(diffIds) && diffIds.every((d) => typeof d === 'string')) for (const c of chainIds(diffIds as Digest[])) chains.add(c);
  };
  const visit = async (desc: Descriptor, subject: string, depth: number): Promise<void> => {
    const parsed = parseManifest(await store.read(desc.digest), desc.mediaType, subject);
    if (parsed.kind === 'image') await addConfig(parsed.manifest.config.digest);
    else if (parsed.kind === 'index' && depth < 4) {
      for (const child of parsed.index.manifests) if (await store.has(child.digest)) await visit(child, `${subject}@${child.digest}`, depth + 1);
    }
  };
  for (const tagged of await store.listTags()) {
    try {
      await visit(tagged.descriptor, tagged.name, 0);
    } catch (err) {
      unreadable.push({ name: tagged.name, error: (err as Error).message });
    }
  }
  for (const digest of await leasedDigests(store.root, true)) {
    const info = await store.info(digest).catch(() => undefined);
    if (!info || info.size > MAX_CONFIG_BYTES) continue;
    await addConfig(digest).catch(() => {});
  }
  return { chains, unreadable };
}

export interface SnapshotGcOptions {
  dryRun?: boolean;
  /** Snapshots created at or after this time are kept (a pull that started after the scan). */
  startedAt?: Date;
}

export interface CollectedSnapshot {
  snapshotter: string;
  key: string;
  /** Bytes of its own data, measured before removal. */
  size: number;
}

/**
 * Removes, from one snapshotter, the layer snapshots (committed by the unpacker, LAYER_LABEL) that
 * no chain in `needed` names and that no kept snapshot builds on: active and view snapshots (a
 * mount, a user's prepare), committed snapshots stratum did not make, and their ancestors are
 * kept. Leaves go first, so a parent is removed after its children.
 */
export async function collectSnapshots(snapshotter: Snapshotter, needed: Set<Digest>, options: SnapshotGcOptions = {}): Promise<{ removed: CollectedSnapshot[]; failed: Array<{ key: string; error: string }> }> {
  const all = new Map<string, Info>();
  await snapshotter.walk((info) => void all.set(info.name, info));
  const kept = new Set<string>();
  const keep = (name: string | undefined) => {
    while (name !== undefined && !kept.has(name)) {
      kept.add(name);
      name = all.get(name)?.parent;
    }
  };
  for (const info of all.values()) {
    const collectable =
      info.kind === 'committed' &&
      info.labels[LAYER_LABEL] !== undefined &&
      !needed.has(info.name as Digest) &&
      (options.startedAt === undefined || info.created < options.startedAt);
    if (!collectable) keep(info.name);
  }
  const depth = (info: Info): number => {
    let n = 0;
    for (let p = info.parent; p !== undefined && n < 10_000; p = all.get(p)?.parent) n++;
    return n;
  };
  const victims = [...all.values()].filter((i) => !kept.has(i.name)).sort((a, b) => depth(b) - depth(a) || a.name.localeCompare(b.name));
  const removed: CollectedSnapshot[] = [];
  const failed: Array<{ key: string; error: string }> = [];
  for (const info of victims) {
    const size = await snapshotter.usage(info.name).then((u) => u.size, () => 0);
    if (options.dryRun) {
      removed.push({ snapshotter: snapshotter.name, key: info.name, size });
      continue;
    }
    try {
      await snapshotter.remove(info.name);
      removed.push({ snapshotter: snapshotter.name, key: info.name, size });
    } catch (err) {
      // A child another process prepared meanwhile, or another gc removed it first.
      if (!isStratumError(err, 'ERR_NOT_FOUND')) failed.push({ key: info.name, error: (err as Error).message });
    }
  }
  if (!options.dryRun && removed.length > 0) await snapshotter.cleanup().catch(() => {});
  return { removed, failed };
}
