import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { EntryMeta } from '../sys/native.js';

/** Limits that stop a decompression bomb or a runaway layer with an error naming the layer. */
export interface UnpackLimits {
  /** Total uncompressed bytes of one layer. Default 64 GiB. */
  maxBytes?: number;
  /** Entries in one layer. Default 10 million. */
  maxEntries?: number;
  /** Length of one path. Default 4096. */
  maxPathLength?: number;
}

export interface ApplyOptions {
  /** 'overlay': whiteouts become char 0/0 devices and opaque dirs get trusted.overlay.opaque=y (user.overlay.* when userxattr); 'full': deletions in a directory holding the parent's files. */
  mode: 'overlay' | 'full';
  /** Use user.overlay.* xattrs (rootless overlay with userxattr). */
  userxattr?: boolean;
  /** overlay mode: false for the first layer of a chain, which writes no whiteouts or opaque markers (nothing below to hide). */
  hasLowerLayers?: boolean;
  /** The config's rootfs.diff_ids[i]: the uncompressed stream must hash to it, else ApplyError and the caller must not commit. */
  expectedDiffId?: Digest;
  /** Names the layer in errors, e.g. `layer 3 (sha256:…) of docker.io/library/x:1`. */
  subject: string;
  limits?: UnpackLimits;
  signal?: AbortSignal;
}

export interface ApplyResult {
  diffId: Digest;
  /** Uncompressed bytes read. */
  size: number;
  entries: number;
  /** overlay mode: work left until the layers below are there (see applyOverlayFixups). */
  overlayFixups?: OverlayFixups;
}

/**
 * An overlay layer is extracted into its own directory, possibly before its parents exist. Two
 * things need the layers below: directories the layer created only as parents of its entries
 * (their mode, owner, xattrs and times come from below, as overlayfs' copy-up would give), and
 * hardlinks to files of a lower layer (the file is copied up, then linked, so both names stay one file).
 */
export interface OverlayFixups {
  inheritDirs: string[];
  /** `meta`: the link entry's own times, applied to the shared inode after linking (as containerd does). */
  lowerLinks: { path: string; target: string; meta: EntryMeta }[];
  /** Whiteout devices written; those that hide nothing below are removed (overlayfs would list them in a directory that exists only in this layer). */
  whiteouts: string[];
}

/**
 * CONTRACT (being implemented in src/unpack/apply.ts):
 * applyLayer(compressed: Readable, rootDir: string, options: ApplyOptions): Promise<ApplyResult>
 * Detects gzip / zstd / plain by magic bytes, parses the tar stream, converts whiteouts, writes
 * every entry inside rootDir through the native addon (kernel-enforced containment).
 */
export type ApplyLayer = (compressed: Readable, rootDir: string, options: ApplyOptions) => Promise<ApplyResult>;
