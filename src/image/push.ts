import { blobSources, recordSource } from '../content/sources.js';
import { InvalidArgumentError, NotFoundError, SizeMismatchError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { OciStore } from '../content/store.js';
import type { RegistryClient } from '../registry/client.js';
import { createLimiter } from '../registry/download.js';
import type { UploadOptions } from '../registry/upload.js';
import { resolveImage } from './resolve.js';

export type PushEvent =
  /** The blobs about to be pushed: the layers in manifest order, then the config. */
  | { type: 'blobs'; blobs: Array<{ digest: Digest; size: number; kind: 'layer' | 'config' }> }
  | { type: 'exists'; digest: Digest; size: number }
  /** Queued behind the blobs being pushed (more than `concurrency` of them). */
  | { type: 'waiting'; digest: Digest; size: number }
  | { type: 'pushing'; digest: Digest; size: number }
  /** Bytes of the blob sent so far: at most every ~100 ms and at each chunk's end, never going back, the last one at `size`. */
  | { type: 'uploading'; digest: Digest; uploaded: number; size: number }
  | { type: 'pushed'; digest: Digest; size: number }
  /** The registry mounted the blob from the source repository: nothing uploaded. */
  | { type: 'mounted'; digest: Digest; size: number; from: string }
  | { type: 'manifest'; digest: Digest; size: number; reference: string };

export interface PushOptions {
  store: OciStore;
  client: RegistryClient;
  /** Blobs uploaded at once; default the client's concurrency. */
  concurrency?: number;
  /** Chunked uploads (chunk size, threshold); default the client's. */
  upload?: UploadOptions;
  onEvent?: (event: PushEvent) => void;
  signal?: AbortSignal;
}

export interface PushResult {
  /** The stored image that was pushed. */
  source: string;
  /** Where it went (a tag, or the manifest's digest). */
  destination: string;
  digest: Digest;
  size: number;
  pushed: number;
  mounted: number;
  existed: number;
  bytesUploaded: number;
}

/**
 * Pushes a stored image to a registry, as `docker push` does: each blob the repository lacks
 * (HEAD) is mounted from the image's own repository when that is on the same registry, else
 * uploaded from the store; then the manifest, byte for byte as stored, so its digest is
 * unchanged. `destination` defaults to the image's own name.
 */
export async function pushImage(source: string, destination: Reference | undefined, options: PushOptions): Promise<PushResult> {
  const { store, client, signal } = options;
  const emit = options.onEvent ?? (() => {});
  const image = await resolveImage(store, source);
  const dest = destination ?? parseReference(image.name);
  if (dest.digest !== undefined && dest.digest !== image.descriptor.digest) {
    throw new InvalidArgumentError(`cannot push ${image.name} as ${dest}: its manifest digest is ${image.descriptor.digest}`);
  }
  const manifestBytes = await store.read(image.descriptor.digest);
  const layers = image.manifest.layers.map((l) => ({ digest: l.digest, size: l.size, kind: 'layer' as const }));
  const config = { digest: image.configDescriptor.digest, size: image.configDescriptor.size, kind: 'config' as const };
  const unique = [...new Map([...layers, config].map((b) => [b.digest, b])).values()];
  // A stored blob that is missing or not the size its descriptor says (truncated) is never sent.
  for (const blob of unique) {
    const stored = await store.info(blob.digest);
    if (stored === undefined) throw new NotFoundError(`cannot push ${image.name}: its ${blob.kind} ${blob.digest} is not in the store`);
    if (stored.size !== blob.size) throw new SizeMismatchError(`cannot push ${image.name}: stored ${blob.kind} ${blob.digest} (stratum fsck --repair removes it, pull fetches it again)`, blob.size, stored.size);
  }
  emit({ type: 'blobs', blobs: unique });

  // Same registry, another repository: it may already hold the blobs, and can mount them instead
  // of receiving them again. Candidates: where the store saw each blob (pulled, copied or pushed
  // there: the newest first), then the image's own repository.
  const origin = parseReference(image.name);
  const mountSource = async (digest: Digest): Promise<string | undefined> => {
    const known = (await blobSources(store.root, digest)).reverse();
    const candidates = [...known, { registry: origin.registry, repository: origin.repository }];
    return candidates.find((c) => c.registry === dest.registry && c.repository !== dest.repository)?.repository;
  };
  let pushed = 0;
  let mounted = 0;
  let existed = 0;
  let bytesUploaded = 0;
  const concurrency = options.concurrency ?? client.concurrency;
  const limit = createLimiter(concurrency);
  const pushOne = async (blob: { digest: Digest; size: number }): Promise<void> => {
    if (await client.blobExists(dest, blob.digest, signal)) {
      await recordSource(store.root, blob.digest, dest);
      existed++;
      emit({ type: 'exists', digest: blob.digest, size: blob.size });
      return;
    }
    emit({ type: 'pushing', digest: blob.digest, size: blob.size });
    const mountFrom = await mountSource(blob.digest);
    let reported = 0;
    const onProgress = (uploaded: number): void => {
      if (uploaded <= reported) return;
      reported = uploaded;
      emit({ type: 'uploading', digest: blob.digest, uploaded, size: blob.size });
    };
    const how = await client.pushBlob(dest, blob, () => store.open(blob.digest), {
      openRange: (start, end) => store.open(blob.digest, { start, end }),
      onProgress,
      ...(options.upload ? { upload: options.upload } : {}),
      ...(signal ? { signal } : {}),
      ...(mountFrom ? { mountFrom } : {}),
    });
    await recordSource(store.root, blob.digest, dest);
    if (how === 'mounted') {
      mounted++;
      emit({ type: 'mounted', digest: blob.digest, size: blob.size, from: mountFrom! });
      return;
    }
    onProgress(blob.size);
    pushed++;
    bytesUploaded += blob.size;
    emit({ type: 'pushed', digest: blob.digest, size: blob.size });
  };
  // A registry may check that a manifest's blobs exist when it is put: every blob first.
  // The limiter starts blobs in order: those past the first `concurrency` wait.
  unique.slice(concurrency).forEach((b) => emit({ type: 'waiting', digest: b.digest, size: b.size }));
  await Promise.all(unique.map((b) => limit(() => pushOne(b))));

  const reference = dest.digest ?? dest.tag ?? 'latest';
  const digest = await client.pushManifest(dest, reference, image.descriptor.mediaType, manifestBytes, signal);
  emit({ type: 'manifest', digest, size: manifestBytes.length, reference });
  return { source: image.name, destination: dest.toString(), digest, size: manifestBytes.length, pushed, mounted, existed, bytesUploaded };
}
