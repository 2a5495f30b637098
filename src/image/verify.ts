import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { digestAlgorithm, type Digest } from '../oci/digest.js';
import { childrenOf, indexRoots, mayHoldReferences, type ChildReference } from '../content/gc.js';
import { ANNOTATION_REF_NAME } from '../content/layout.js';
import { isIndexMediaType } from '../oci/mediatypes.js';
import type { OciStore } from '../content/store.js';
import { isMountPoint } from '../snapshotter/mount.js';
import type { SnapshotProblem, Snapshotter } from '../snapshotter/snapshotter.js';
import { findAbandoned } from '../snapshotter/temporaries.js';
import { MOUNTPOINT_LABEL, unmountImage } from './rootfs.js';

export type StoreProblemKind =
  /** A blob's content does not hash to its name (a flipped byte, a truncation). */
  | 'blob-corrupt'
  /** A blob some manifest, index or tag points to is not in the store. */
  | 'blob-missing'
  /** A blob's size differs from the size its descriptor gives. */
  | 'blob-size'
  /** A temporary snapshot or mount of a process that is gone. */
  | 'temporary'
  /** A snapshot labelled as mounted somewhere nothing is mounted. */
  | 'mount-lost'
  | SnapshotProblem['kind'];

export interface StoreProblem {
  kind: StoreProblemKind;
  /** The blob digest, snapshot key or directory at fault. */
  subject: string;
  message: string;
  /** What repair did about it; absent when it is still there. */
  repaired?: string;
}

export interface VerifyOptions {
  /** The snapshotters whose metadata, data and mounts are checked too. */
  snapshotters?: Snapshotter[];
  /**
   * Delete corrupt blobs (the next pull fetches them again), reclaim temporaries of dead processes
   * and orphaned snapshot data (snapshot cleanup), forget mounts that are gone.
   */
  repair?: boolean;
  /** Called for each problem as it is found (after repair, when asked to repair). */
  onProblem?: (problem: StoreProblem) => void;
}

export interface VerifyResult {
  problems: StoreProblem[];
  /** Blobs whose content was hashed, and their bytes. */
  blobs: number;
  bytes: number;
  /** Problems not repaired. */
  remaining: number;
}

/**
 * `stratum fsck`: hashes every blob and checks its size against every descriptor that names it,
 * follows every reference from index.json (manifests, configs, layers present), and checks each
 * snapshotter's records against its disk (parent chains, data directories, orphans), its
 * temporaries and its mounts.
 */
export async function verifyStore(store: OciStore, options: VerifyOptions = {}): Promise<VerifyResult> {
  const problems: StoreProblem[] = [];
  const report = (p: StoreProblem) => {
    problems.push(p);
    options.onProblem?.(p);
  };
  const sizes = new Map<Digest, number>();
  const corrupt = new Set<Digest>();
  let blobs = 0;
  let bytes = 0;
  for await (const blob of store.blobs()) {
    blobs++;
    bytes += blob.size;
    const actual = await hashBlob(store, blob.digest);
    if (actual === blob.digest) {
      sizes.set(blob.digest, blob.size);
      continue;
    }
    corrupt.add(blob.digest);
    const problem: StoreProblem = { kind: 'blob-corrupt', subject: blob.digest, message: `its content (${blob.size} bytes) hashes to ${actual}` };
    if (options.repair && (await store.deleteBlob(blob.digest))) problem.repaired = 'removed; the next pull fetches it again';
    else sizes.set(blob.digest, blob.size);
    report(problem);
  }

  await checkReferences(store, sizes, corrupt, report);
  for (const snapshotter of options.snapshotters ?? []) await checkSnapshotter(snapshotter, options.repair === true, report);
  return { problems, blobs, bytes, remaining: problems.filter((p) => p.repaired === undefined).length };
}

async function hashBlob(store: OciStore, digest: Digest): Promise<string> {
  const alg = digestAlgorithm(digest);
  const hash = createHash(alg);
  await pipeline(
    store.open(digest, { dropBehind: true }),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done();
      },
    }),
  );
  return `${alg}:${hash.digest('hex')}`;
}

/** Follows index.json down to every config and layer: each must be present with its descriptor's size. */
async function checkReferences(store: OciStore, sizes: Map<Digest, number>, corrupt: Set<Digest>, report: (p: StoreProblem) => void): Promise<void> {
  const index = await store.readIndex();
  const queue: Array<ChildReference & { from: string }> = [];
  for (const entry of index.manifests) {
    const name = entry.annotations?.[ANNOTATION_REF_NAME];
    const from = name !== undefined ? `tag ${name}` : 'index.json';
    for (const root of indexRoots({ ...index, manifests: [entry] })) queue.push({ ...root, from });
  }
  /** Descriptors checked (digest and size), and blobs whose children were followed. */
  const checked = new Set<string>();
  const followed = new Set<Digest>();
  while (queue.length > 0) {
    const ref = queue.shift()!;
    const stored = sizes.get(ref.digest) ?? (corrupt.has(ref.digest) ? undefined : (await store.info(ref.digest))?.size);
    const key = `${ref.digest}/${ref.size ?? ''}`;
    if (checked.has(key)) continue;
    checked.add(key);
    if (stored === undefined) {
      report({ kind: 'blob-missing', subject: ref.digest, message: `${ref.from} points to it, but it is not in the store (pull the image again)` });
      continue;
    }
    if (ref.size !== undefined && ref.size !== stored) {
      report({ kind: 'blob-size', subject: ref.digest, message: `${ref.from} gives ${ref.size} bytes, the stored blob has ${stored}` });
    }
    if (followed.has(ref.digest) || corrupt.has(ref.digest) || !mayHoldReferences(ref.mediaType)) continue;
    followed.add(ref.digest);
    const what = ref.mediaType === undefined ? 'blob' : isIndexMediaType(ref.mediaType) ? 'index' : 'manifest';
    for (const child of await childrenOf(store, ref.digest)) queue.push({ ...child, from: `${what} ${ref.digest} (${ref.from})` });
  }
}

async function checkSnapshotter(snapshotter: Snapshotter, repair: boolean, report: (p: StoreProblem) => void): Promise<void> {
  const found: StoreProblem[] = [];
  const abandoned = await findAbandoned(snapshotter);
  for (const target of abandoned.mounts) found.push({ kind: 'temporary', subject: target, message: `${snapshotter.name}: a mount directory of a process that is gone` });
  for (const key of abandoned.snapshots) found.push({ kind: 'temporary', subject: key, message: `${snapshotter.name}: a temporary snapshot of a process that is gone` });
  const lost: Array<{ key: string; path: string }> = [];
  await snapshotter.walk(async (info) => {
    const path = info.labels[MOUNTPOINT_LABEL];
    if (info.kind !== 'committed' && path !== undefined && !(await isMountPoint(path))) lost.push({ key: info.name, path });
  }, `labels."${MOUNTPOINT_LABEL}"`);
  for (const { key, path } of lost) found.push({ kind: 'mount-lost', subject: key, message: `${snapshotter.name}: labelled as mounted at ${path}, but nothing is mounted there` });
  const checked = (await snapshotter.verify?.()) ?? [];
  for (const p of checked) found.push({ ...p, message: `${snapshotter.name}: ${p.message}` });

  if (repair) {
    for (const p of found.filter((f) => f.kind === 'mount-lost')) {
      const { removed } = await unmountImage([snapshotter], lost.find((l) => l.key === p.subject)!.path);
      p.repaired = removed ? 'view removed' : 'mountpoint label dropped';
    }
    // cleanup reclaims the temporaries of dead processes and the data no record points to.
    await snapshotter.cleanup();
    for (const p of found) if (p.kind === 'temporary' || p.kind === 'snapshot-orphan') p.repaired = 'removed';
  }
  for (const p of found) report(p);
}
