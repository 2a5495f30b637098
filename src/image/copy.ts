/**
 * Copying images between registries, OCI layout directories and the store without unpacking
 * them (skopeo copy, crane copy): blob to blob as streams, manifests byte for byte.
 *
 * Where an image is, as a string (parseCopyLocation):
 * - `docker://REF` or a bare reference (`ubuntu:15.04`, `127.0.0.1:5000/app@sha256:…`): a registry;
 * - `oci:DIR[:TAG]`: an OCI image layout directory (skopeo's syntax: the first `:` after the
 *   directory ends it); without TAG, a source must hold exactly one manifest and a destination
 *   gets an untagged entry;
 * - `store:NAME`: an image of the local store (any name `stratum images` resolves as a source;
 *   a destination NAME is normalised like a pull's, `store:ubuntu:15.04` →
 *   `docker.io/library/ubuntu:15.04`).
 */
import { setMaxListeners } from 'node:events';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import { DigestMismatchError, InvalidArgumentError, InvalidManifestError, NetworkError, NotFoundError, StoreError, StratumError } from '../errors.js';
import { digestAlgorithm, digestHex, digestOf, parseDigest, type Digest } from '../oci/digest.js';
import { recordSource } from '../content/sources.js';
import { verifier } from '../content/verifier.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { isIndexMediaType, MediaType } from '../oci/mediatypes.js';
import { parseSchema1, schema1Blobs } from '../oci/schema1.js';
import { hostPlatform, selectManifest } from '../oci/platform.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/types.js';
import { ANNOTATION_REF_NAME, INDEX_FILE, OCI_LAYOUT_FILE, readIndexFile } from '../content/layout.js';
import { Lease } from '../content/lease.js';
import { OciStore } from '../content/store.js';
import type { RegistryClient } from '../registry/client.js';
import { downloadBlob } from '../registry/download.js';
import { SOURCE_DIGEST_ANNOTATION, SOURCE_MEDIA_TYPE_ANNOTATION } from './annotations.js';
import { parsesAs, resolveImage } from './resolve.js';

/** Where an image is copied from or to. */
export type CopyLocation =
  | { kind: 'registry'; ref: Reference }
  | { kind: 'layout'; dir: string; tag?: string }
  | { kind: 'store'; name: string };

/**
 * `docker://REF` / a bare reference → registry; `oci:DIR[:TAG]` → OCI layout; `store:NAME` →
 * the local store. Other `transport:` prefixes skopeo knows (`dir:`, `docker-archive:`, …) are refused.
 */
export function parseCopyLocation(input: string): CopyLocation {
  if (input.startsWith('docker://')) return { kind: 'registry', ref: parseReference(input.slice('docker://'.length)) };
  if (input.startsWith('oci:')) {
    const rest = input.slice(4);
    const colon = rest.indexOf(':');
    const dir = colon < 0 ? rest : rest.slice(0, colon);
    const tag = colon < 0 ? undefined : rest.slice(colon + 1);
    if (dir === '') throw new InvalidArgumentError(`${JSON.stringify(input)}: oci: needs a directory (oci:DIR[:TAG])`);
    if (tag === '') throw new InvalidArgumentError(`${JSON.stringify(input)}: empty tag after oci:DIR:`);
    return { kind: 'layout', dir: resolvePath(dir), ...(tag !== undefined ? { tag } : {}) };
  }
  if (input.startsWith('store:')) {
    const name = input.slice(6);
    if (name === '') throw new InvalidArgumentError(`${JSON.stringify(input)}: store: needs an image name`);
    return { kind: 'store', name };
  }
  if (/^(dir|docker-archive|oci-archive|docker-daemon|containers-storage|sif|tarball):/.test(input)) {
    throw new InvalidArgumentError(`${JSON.stringify(input)}: unsupported location; use docker://REF (or a bare reference), oci:DIR[:TAG] or store:NAME`);
  }
  return { kind: 'registry', ref: parseReference(input) };
}

export function formatCopyLocation(loc: CopyLocation): string {
  switch (loc.kind) {
    case 'registry':
      return `docker://${loc.ref}`;
    case 'layout':
      return `oci:${loc.dir}${loc.tag !== undefined ? `:${loc.tag}` : ''}`;
    case 'store':
      return `store:${loc.name}`;
  }
}

export type CopyEvent =
  /** The source's top manifest (an index, or the image). */
  | { type: 'resolved'; source: string; digest: Digest; mediaType: string }
  /** The destination has the blob already: nothing copied. */
  | { type: 'exists'; digest: Digest; size: number }
  /** The destination registry mounted the blob from the source repository: nothing copied. */
  | { type: 'mounted'; digest: Digest; size: number; from: string }
  | { type: 'copying'; digest: Digest; current: number; total: number }
  | { type: 'done'; digest: Digest; size: number }
  /** A manifest written: an index's child (by digest) or the top one (under `reference`, when tagged). */
  | { type: 'manifest'; digest: Digest; mediaType: string; size: number; reference?: string };

export interface CopyOptions {
  /** The source is an index: copy it and every manifest it lists (children first). */
  all?: boolean;
  /** Without `all`, the platform taken from an index source; default the host's. */
  platform?: Platform;
  onEvent?: (event: CopyEvent) => void;
  signal?: AbortSignal;
}

export interface CopyContext {
  client: RegistryClient;
  /** The local store, for `store:` locations. */
  store?: OciStore;
  /** Blobs copied at once; default the client's concurrency. */
  concurrency?: number;
}

export interface CopyResult {
  source: string;
  destination: string;
  /** The top manifest written at the destination (the index with `all`, else the image's manifest). */
  digest: Digest;
  mediaType: string;
  /** Manifests written (children of an index included). */
  manifests: number;
  copied: number;
  mounted: number;
  existed: number;
  bytesCopied: number;
}

/** A source: resolve the top manifest, read manifests by digest (verified), stream blobs (verified by the caller). */
interface Source {
  readonly name: string;
  /** When the source is a registry: mounts are possible from it. */
  readonly registry?: Reference;
  resolve(): Promise<{ bytes: Buffer; digest: Digest; mediaType: string }>;
  manifest(desc: Descriptor): Promise<Buffer>;
  /** Whether a manifest an index lists is here (a store may hold only some platforms). */
  hasManifest(desc: Descriptor): Promise<boolean>;
  openBlob(desc: Descriptor, signal?: AbortSignal): Promise<Readable>;
  /** A blob's size where no descriptor tells it (schema1); only registries serve schema1. */
  blobSize?(digest: Digest, signal?: AbortSignal): Promise<number>;
}

/** What the source reference resolved to, and the platform taken from it when it was an index. */
interface Origin {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
  platform?: Platform;
}

interface Sink {
  readonly name: string;
  /** Registries take a schema1 manifest as it is (when they accept schema1 at all); layouts do not. */
  readonly takesSchema1: boolean;
  hasBlob(desc: Descriptor): Promise<boolean>;
  /** Copies one blob (absent at the destination); 'mounted' when a registry mounted it. */
  putBlob(desc: Descriptor, source: Source, progress: (current: number) => void, signal?: AbortSignal): Promise<'copied' | 'mounted'>;
  /**
   * Writes a manifest; `top` is the one the destination's tag names, with `origin`: what the
   * source reference resolved to (the index, when one platform of it is copied).
   */
  putManifest(bytes: Buffer, desc: Descriptor, top: boolean, signal?: AbortSignal, origin?: Origin): Promise<string | undefined>;
  close(): Promise<void>;
}

/**
 * Copies an image from `source` to `destination` without unpacking it: each blob the destination
 * lacks is streamed from the source (mounted instead when both are repositories of one registry),
 * its size and digest checked on the way, and the manifests are written byte for byte (the
 * digests stay the same) once their blobs are there, an index after its children. An index
 * source without `all` gives the one platform's image (`platform`, else the host's), as skopeo does.
 * A blob that fails its digest stops the copy before any manifest refers to it.
 */
export async function copyImage(source: CopyLocation | string, destination: CopyLocation | string, context: CopyContext, options: CopyOptions = {}): Promise<CopyResult> {
  const src = typeof source === 'string' ? parseCopyLocation(source) : source;
  const dst = typeof destination === 'string' ? parseCopyLocation(destination) : destination;
  const emit = options.onEvent ?? (() => {});
  // The first blob that fails stops the others (their partial uploads or ingests are dropped).
  const cancel = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, cancel.signal]) : cancel.signal;
  // Every transfer in flight listens on it (request, body, retry sleep): no leak past Node's default of 10.
  setMaxListeners(16 + 4 * (context.concurrency ?? context.client.concurrency), signal);
  const from = await openSource(src, context);
  const to = await openSink(dst, context, from);
  const stats = { manifests: 0, copied: 0, mounted: 0, existed: 0, bytesCopied: 0 };
  const limit = pLimit(context.concurrency ?? context.client.concurrency);
  const blobsDone = new Map<Digest, Promise<void>>();

  const copyBlob = (desc: Descriptor): Promise<void> => {
    let done = blobsDone.get(desc.digest);
    if (!done) {
      done = limit(async () => {
        signal?.throwIfAborted();
        if (await to.hasBlob(desc)) {
          stats.existed++;
          emit({ type: 'exists', digest: desc.digest, size: desc.size });
          return;
        }
        const how = await to.putBlob(desc, from, (current) => emit({ type: 'copying', digest: desc.digest, current, total: desc.size }), signal);
        if (how === 'mounted') {
          stats.mounted++;
          emit({ type: 'mounted', digest: desc.digest, size: desc.size, from: from.registry!.repository });
          return;
        }
        stats.copied++;
        stats.bytesCopied += desc.size;
        emit({ type: 'done', digest: desc.digest, size: desc.size });
      });
      blobsDone.set(desc.digest, done);
    }
    return done;
  };

  let origin: Origin | undefined;
  /** Every blob; the first that fails cancels the others, and its error is the one reported (the rest are mostly the abort it caused). */
  const copyAll = async (blobs: Descriptor[]): Promise<void> => {
    const settled = await Promise.allSettled(
      blobs.map((b) =>
        copyBlob(b).catch((err: unknown) => {
          cancel.abort(err);
          throw err;
        }),
      ),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw cancel.signal.aborted && !options.signal?.aborted ? cancel.signal.reason : failed.reason;
  };

  const writeManifest = async (bytes: Buffer, desc: Descriptor, top: boolean): Promise<void> => {
    const reference = await to.putManifest(bytes, desc, top, signal, top ? origin : undefined);
    stats.manifests++;
    emit({ type: 'manifest', digest: desc.digest, mediaType: desc.mediaType, size: bytes.length, ...(reference !== undefined ? { reference } : {}) });
  };

  /** An image manifest's blobs, then the manifest; an index's children (recursively), then the index. */
  const copyManifest = async (bytes: Buffer, desc: Descriptor, parsed: ParsedManifest, top: boolean): Promise<void> => {
    const subject = `${from.name}@${desc.digest}`;
    if (parsed.kind === 'schema1') {
      // As skopeo does between registries: the signed manifest as it is, its blobs (sizes from a HEAD) first.
      if (!to.takesSchema1 || !from.blobSize) {
        throw new InvalidManifestError(subject, `a Docker schema1 manifest is copied only between registries (${to.name} would need it converted, which \`stratum pull\` does)`);
      }
      const blobs = schema1Blobs(parseSchema1(bytes, subject));
      const sized = await Promise.all(blobs.map(async (digest) => ({ mediaType: MediaType.DockerLayerGzip, digest, size: await from.blobSize!(digest, signal) })));
      await copyAll(sized);
    } else if (parsed.kind === 'image') {
      await copyAll([parsed.manifest.config, ...parsed.manifest.layers].filter((l) => !isForeign(l)));
    } else {
      for (const child of parsed.index.manifests) {
        if (!(await from.hasManifest(child))) throw new NotFoundError(`${from.name}: the index lists ${child.digest}, which is not there (copy without --all to take one platform)`);
        const childBytes = await from.manifest(child);
        await copyManifest(childBytes, child, parseManifest(childBytes, child.mediaType, `${from.name}@${child.digest}`), false);
      }
    }
    await writeManifest(bytes, desc, top);
  };

  try {
    const top = await from.resolve();
    emit({ type: 'resolved', source: from.name, digest: top.digest, mediaType: top.mediaType });
    let bytes = top.bytes;
    let desc: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    let parsed = parseManifest(bytes, top.mediaType, from.name);
    origin = { bytes: top.bytes, digest: top.digest, mediaType: top.mediaType };
    if (parsed.kind === 'index' && !options.all) {
      const present: Descriptor[] = [];
      for (const child of parsed.index.manifests) if (await from.hasManifest(child)) present.push(child);
      const child = selectManifest({ ...parsed.index, manifests: present }, options.platform ?? hostPlatform(), from.name);
      bytes = await from.manifest(child);
      desc = { mediaType: child.mediaType, digest: child.digest, size: bytes.length };
      if (child.platform) origin.platform = child.platform;
      parsed = parseManifest(bytes, child.mediaType, `${from.name}@${child.digest}`);
      if (parsed.kind === 'index') throw new InvalidManifestError(`${from.name}@${child.digest}`, 'the platform entry of the index is itself an index');
    }
    await copyManifest(bytes, desc, parsed, true);
    return { source: from.name, destination: to.name, digest: desc.digest, mediaType: desc.mediaType, ...stats };
  } catch (err) {
    // The caller's abort surfaces as itself, not as the broken transfers it caused.
    if (options.signal?.aborted) throw options.signal.reason ?? err;
    throw err;
  } finally {
    await to.close();
  }
}

/** Docker's foreign layers (Windows base layers) live elsewhere and are not copied, as skopeo and crane leave them. */
function isForeign(desc: Descriptor): boolean {
  return (desc.urls?.length ?? 0) > 0 && (desc.mediaType === MediaType.DockerForeignLayerGzip || desc.mediaType.includes('nondistributable'));
}

// ---- sources ----

async function openSource(loc: CopyLocation, context: CopyContext): Promise<Source> {
  switch (loc.kind) {
    case 'registry':
      return registrySource(loc.ref, context.client);
    case 'layout':
      return layoutSource(loc.dir, loc.tag);
    case 'store':
      return storeSource(loc.name, needStore(context));
  }
}

function needStore(context: CopyContext): OciStore {
  if (!context.store) throw new InvalidArgumentError('store: locations need the local store (copy through the Engine)');
  return context.store;
}

function registrySource(ref: Reference, client: RegistryClient): Source {
  return {
    name: ref.toString(),
    registry: ref,
    async resolve() {
      const r = await client.resolve(ref);
      return { bytes: r.bytes, digest: r.descriptor.digest, mediaType: r.descriptor.mediaType };
    },
    async manifest(desc) {
      return (await client.fetchManifest(ref, desc.digest, desc.size)).bytes;
    },
    hasManifest: async () => true,
    blobSize: (digest, signal) => client.blobSize(ref, digest, signal),
    async openBlob(desc, signal) {
      const res = await client.fetchBlob(ref, desc.digest, { verify: false, ...(signal ? { signal } : {}) });
      if (res.start !== 0) {
        res.body.destroy();
        throw new NetworkError(`${res.endpoint.url} answered blob ${desc.digest} of ${ref.name} from byte ${res.start}, asked for 0`);
      }
      return res.body;
    },
  };
}

/** Blobs and manifests of a layout directory or the store, read where they are. */
interface BlobDir {
  root: string;
  blobPath(digest: Digest): string;
}

function blobDir(root: string): BlobDir {
  return { root, blobPath: (d) => join(root, 'blobs', digestAlgorithm(parseDigest(d)), digestHex(d)) };
}

async function readVerified(dir: BlobDir, desc: Descriptor, what: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    const st = await stat(dir.blobPath(desc.digest));
    if (st.size > 4 * 1024 * 1024) throw new InvalidManifestError(what, `${st.size} bytes is over the manifest size limit`);
    bytes = await readFile(dir.blobPath(desc.digest));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${what}: manifest ${desc.digest} is not in ${dir.root}`);
    throw err;
  }
  const actual = digestOf(bytes, digestAlgorithm(desc.digest));
  if (actual !== desc.digest) throw new DigestMismatchError(`${what}: manifest ${desc.digest} in ${dir.root}`, desc.digest, actual);
  return bytes;
}

function dirSource(name: string, dir: BlobDir, top: () => Promise<Descriptor>): Source {
  return {
    name,
    async resolve() {
      const desc = await top();
      const bytes = await readVerified(dir, desc, name);
      return { bytes, digest: desc.digest, mediaType: desc.mediaType };
    },
    manifest: (desc) => readVerified(dir, desc, name),
    async hasManifest(desc) {
      return stat(dir.blobPath(desc.digest)).then(
        (s) => s.isFile(),
        () => false,
      );
    },
    async openBlob(desc) {
      const path = dir.blobPath(desc.digest);
      await stat(path).catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'ENOENT' ? new NotFoundError(`${name}: blob ${desc.digest} is not in ${dir.root}`) : err;
      });
      return createReadStream(path);
    },
  };
}

async function layoutSource(root: string, tag: string | undefined): Promise<Source> {
  const name = `oci:${root}${tag !== undefined ? `:${tag}` : ''}`;
  try {
    await stat(join(root, OCI_LAYOUT_FILE));
  } catch {
    throw new NotFoundError(`${name}: ${root} is not an OCI image layout (no ${OCI_LAYOUT_FILE})`);
  }
  return dirSource(name, blobDir(root), async () => {
    const index = await readIndexFile(root);
    const entries = tag === undefined ? index.manifests : index.manifests.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] === tag);
    if (entries.length === 0) throw new NotFoundError(`${name}: no manifest${tag !== undefined ? ` tagged ${JSON.stringify(tag)}` : ''} in ${join(root, INDEX_FILE)}`);
    if (entries.length > 1) throw new InvalidArgumentError(`${name}: ${entries.length} manifests match in ${join(root, INDEX_FILE)}; name one with oci:DIR:TAG`);
    return entries[0]!;
  });
}

async function storeSource(input: string, store: OciStore): Promise<Source> {
  // A tag of an index is the index, whichever platforms it holds (this host's may be missing).
  const tagged = await store.getTag(parsesAs(input)?.toString() ?? input);
  if (tagged && isIndexMediaType(tagged.descriptor.mediaType)) {
    return dirSource(`store:${tagged.name}`, { root: store.root, blobPath: (d) => store.blobPath(d) }, async () => tagged.descriptor);
  }
  const image = await resolveImage(store, input);
  // A tag naming an index is copied as the index (its platforms present in the store).
  const top = image.index ?? image.descriptor;
  return dirSource(`store:${image.name}`, { root: store.root, blobPath: (d) => store.blobPath(d) }, async () => top);
}

// ---- sinks ----

async function openSink(loc: CopyLocation, context: CopyContext, source: Source): Promise<Sink> {
  switch (loc.kind) {
    case 'registry':
      return registrySink(loc.ref, context.client, source);
    case 'layout': {
      const store = await OciStore.open(loc.dir);
      return storeSink(`oci:${store.root}${loc.tag !== undefined ? `:${loc.tag}` : ''}`, store, loc.tag, context, source, undefined);
    }
    case 'store': {
      const store = needStore(context);
      const name = parseReference(loc.name).toString();
      return storeSink(`store:${name}`, store, name, context, source, await Lease.create(store.root));
    }
  }
}

/** Names the blob in a failure of its source stream (a body cut short is a bare socket error). */
function sourceError(err: unknown, subject: string): StratumError {
  if (err instanceof StratumError) return err;
  return new NetworkError(`${subject}: reading the source failed: ${(err as Error).message ?? String(err)}`, { cause: err });
}

function registrySink(dest: Reference, client: RegistryClient, source: Source): Sink {
  const mountFrom = source.registry && source.registry.registry === dest.registry && source.registry.repository !== dest.repository ? source.registry.repository : undefined;
  return {
    name: dest.toString(),
    takesSchema1: true,
    hasBlob: (desc) => client.blobExists(dest, desc.digest),
    async putBlob(desc, from, progress, signal) {
      const subject = `blob ${desc.digest} from ${from.name}`;
      const open = (): Readable => {
        // pushBlob wants the body now; the source is opened behind it (again on each attempt).
        const body = new PassThrough();
        // A body the request dropped unread (a PUT answered before reading it) must not crash the process when it fails later.
        body.on('error', () => {});
        void (async () => {
          try {
            const src = await from.openBlob(desc, signal);
            await pipeline(src, verifier(desc.digest, subject, { size: desc.size, progress }), body).catch((err: unknown) => {
              throw sourceError(err, subject);
            });
          } catch (err) {
            body.destroy(sourceError(err, subject));
          }
        })();
        return body;
      };
      return client.pushBlob(dest, desc, open, { ...(signal ? { signal } : {}), ...(mountFrom ? { mountFrom } : {}) }).then((how) => (how === 'mounted' ? 'mounted' : 'copied'));
    },
    async putManifest(bytes, desc, top, signal) {
      const reference = top ? (dest.digest ?? dest.tag ?? 'latest') : desc.digest;
      if (top && dest.digest !== undefined && dest.digest !== desc.digest) {
        throw new InvalidArgumentError(`cannot copy ${source.name} to ${dest}: its manifest digest is ${desc.digest}`);
      }
      const digest = await client.pushManifest(dest, reference, desc.mediaType, bytes, signal);
      if (digest !== desc.digest) throw new DigestMismatchError(`manifest copied to ${dest}`, desc.digest, digest);
      return top ? reference : undefined;
    },
    close: async () => {},
  };
}

/** An OCI layout (also the store): blobs ingested with their size and digest checked; the top manifest tagged `tag`. */
function storeSink(name: string, store: OciStore, tag: string | undefined, context: CopyContext, source: Source, lease: Lease | undefined): Sink {
  return {
    name,
    takesSchema1: false,
    async hasBlob(desc) {
      return (await store.info(desc.digest))?.size === desc.size;
    },
    async putBlob(desc, from, progress, signal) {
      await lease?.add(desc.digest);
      if (from.registry) {
        // From a registry: the downloader resumes, retries and verifies as a pull does.
        await downloadBlob(context.client, from.registry, desc, store, {
          ...(signal ? { signal } : {}),
          onEvent: (e) => {
            if (e.type === 'downloading') progress(e.current);
          },
        });
        // Where it came from: a later push to that registry mounts it instead of uploading it.
        await recordSource(store.root, desc.digest, from.registry);
        return 'copied';
      }
      const writer = await store.ingest(desc.digest, { expectedSize: desc.size });
      if (!writer) return 'copied';
      try {
        if (writer.offset > 0) await writer.reset();
        const subject = `blob ${desc.digest} from ${from.name}`;
        await pipeline(await from.openBlob(desc, signal), verifier(desc.digest, subject, { size: desc.size, progress }), writer.stream(), ...(signal ? [{ signal }] : []));
        await writer.commit(desc.size);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      return 'copied';
    },
    async putManifest(bytes, desc, top, _signal, origin) {
      await lease?.add(desc.digest);
      await store.put(bytes, desc.digest);
      if (!top) return undefined;
      const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: bytes.length };
      if (lease && origin) {
        // Into the store, tagged as a pull tags (the index kept too, the source digest recorded),
        // so `pull` of the same reference finds it up to date and `repo@<index digest>` resolves.
        if (origin.digest !== desc.digest) {
          await lease.add(origin.digest);
          await store.put(origin.bytes, origin.digest);
        }
        if (origin.platform) entry.platform = origin.platform;
        entry.annotations = { [SOURCE_DIGEST_ANNOTATION]: origin.digest, [SOURCE_MEDIA_TYPE_ANNOTATION]: origin.mediaType };
      }
      if (tag !== undefined) {
        await store.setTag(tag, entry);
        return tag;
      }
      // No tag: an entry without a name, once (skopeo's oci:DIR without a reference).
      await store.withIndexLock((index: ImageIndex) => {
        if (index.manifests.some((m) => m.digest === desc.digest && m.annotations?.[ANNOTATION_REF_NAME] === undefined)) return { result: undefined };
        return { index: { ...index, manifests: [...index.manifests, entry] }, result: undefined };
      });
      return undefined;
    },
    async close() {
      await lease?.release().catch((err: unknown) => {
        throw new StoreError(`cannot release the copy's lease: ${(err as Error).message}`);
      });
    },
  };
}
