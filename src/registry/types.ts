import type { ParallelFetchOptions } from './ranged-fetch.js';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';

/** One place a registry's content can be fetched from: a mirror or the upstream itself. */
export interface Endpoint {
  /** Base URL without /v2, e.g. `https://registry-1.docker.io` or `http://127.0.0.1:5000`. */
  url: string;
  isMirror: boolean;
  /** An https:// URL of an insecure host: when it does not speak TLS, the client talks plain HTTP to it. */
  plainHttpFallback?: boolean;
  /** A mirror whose URL path is the API root as is: no `/v2` in request paths (containerd's override_path). */
  overridePath?: boolean;
}

export interface ResolvedManifest {
  /**
   * mediaType from the response (or the body), digest as the registry addresses it
   * (for signed schema1: sha256 of the payload without signatures), size of `bytes`.
   */
  descriptor: Descriptor;
  bytes: Buffer;
  /** Which endpoint answered (a mirror or the upstream). */
  endpoint: Endpoint;
}

export interface BlobResponse {
  body: Readable;
  /** Offset of the first byte of `body` in the blob: the requested offset on 206, 0 when Range was ignored. */
  start: number;
  /** The answer was a 206 (the Range was honoured). */
  partial?: boolean;
  /** Total blob size when the response tells it. */
  totalSize?: number;
  endpoint: Endpoint;
  /** `body` checks size and digest as it streams (fetchBlob's default for a whole body). */
  verified?: boolean;
}

export interface BlobFetcher {
  /** `exclude`: endpoint URLs to skip (a mirror that just served corrupt bytes); `length`: at most this many bytes from `offset` (a bounded Range). */
  fetchBlob(ref: Reference, digest: Digest, options?: { offset?: number; length?: number; signal?: AbortSignal; exclude?: readonly string[]; verify?: boolean }): Promise<BlobResponse>;
  /** How large blobs of `ref` are fetched in parallel Range requests (the registry config's `parallelFetch`); false: never. */
  parallelFetchFor?(ref: Reference): ParallelFetchOptions | false;
}

export interface ManifestFetcher {
  /** Resolves a tag or digest reference to its manifest, checking Docker-Content-Digest and by-digest content. */
  resolve(ref: Reference): Promise<ResolvedManifest>;
  /**
   * Fetches a manifest by digest from the reference's repository (children of an index); with
   * `size` (the descriptor's), a body longer than that is refused after size + 1 bytes.
   */
  fetchManifest(ref: Reference, digest: Digest, size?: number): Promise<ResolvedManifest>;
}

export type DownloadEvent =
  | { type: 'waiting'; digest: Digest }
  | { type: 'exists'; digest: Digest; size: number }
  | { type: 'downloading'; digest: Digest; current: number; total?: number }
  | { type: 'retrying'; digest: Digest; attempt: number; delayMs: number; reason: string }
  | { type: 'verifying'; digest: Digest }
  | { type: 'complete'; digest: Digest; size: number; resumedFrom: number };
