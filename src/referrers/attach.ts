import { readFile } from 'node:fs/promises';
import type { OciStore } from '../content/store.js';
import { InvalidArgumentError, NetworkError, NotFoundError } from '../errors.js';
import { SOURCE_DIGEST_ANNOTATION } from '../image/annotations.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { artifactManifest, createdAnnotation } from './artifact.js';
import { attachToStore, findStored, storedReferrers } from './local.js';
import { pushReferrer, registryReferrers, type RegistryAttachment } from './remote.js';

export interface ReferrersContext {
  store: OciStore;
  client: RegistryClient;
}

export interface AttachOptions {
  /** What the artifact is, e.g. `application/spdx+json`, `application/vnd.in-toto+json`. */
  artifactType: string;
  /** The content to attach (or `path`). */
  blob?: Buffer;
  /** A file holding the content to attach (or `blob`). */
  path?: string;
  /** The blob's media type; default `artifactType`. */
  mediaType?: string;
  annotations?: Record<string, string>;
  /** `org.opencontainers.image.created` (default now, as oras attach writes it); an annotation given wins. */
  created?: Date;
  /**
   * Push to the stored image's registry too (its stored name's). Default: when `ref` names a
   * registry (`127.0.0.1:5000/app:1`, `ghcr.io/o/app`, not `app:1`). An image not in the store is
   * attached at its registry only.
   */
  push?: boolean;
  signal?: AbortSignal;
}

export interface AttachResult {
  /** The image's name (stored tag, or the registry reference). */
  name: string;
  /** The manifest (or index) the artifact refers to. */
  subject: Descriptor;
  /** The artifact manifest's descriptor, as referrers lists it. */
  artifact: Descriptor;
  /** Kept in the store with the image. */
  stored: boolean;
  pushed?: { repository: string; via: RegistryAttachment };
}

export interface ReferrersOptions {
  /** Only artifacts of this type. */
  artifactType?: string;
  /**
   * `store` (kept with the stored image), `registry` (what the registry lists), `auto` (default):
   * the store's when the image is stored, and the registry's as well when `ref` names a registry.
   */
  source?: 'auto' | 'store' | 'registry';
  signal?: AbortSignal;
}

/** One artifact that refers to an image. */
export interface Referrer extends Descriptor {
  /** The digest it refers to (the stored manifest, or the index it was pulled through). */
  subject: Digest;
  /** Where it was found. */
  source: 'store' | 'registry' | 'store+registry';
}

const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** Whether `ref` names its registry itself (docker's rule: a first component with `.` or `:`, or `localhost`). */
export function namesRegistry(ref: string): boolean {
  const slash = ref.indexOf('/');
  if (slash < 0) return false;
  const first = ref.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

async function attachedBytes(options: AttachOptions): Promise<Buffer> {
  if ((options.blob === undefined) === (options.path === undefined)) throw new InvalidArgumentError('attach needs the content as one of blob or path');
  if (options.blob !== undefined) return options.blob;
  try {
    return await readFile(options.path!);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the file to attach ${options.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The image `ref` names: stored (its tag entry), else resolved at its registry when `ref` names one. */
async function subjectOf(ctx: ReferrersContext, ref: string, push: boolean | undefined): Promise<{ name: string; subject: Descriptor; stored: boolean; repo?: Reference }> {
  const stored = await findStored(ctx.store, ref);
  if (stored) return { name: stored.name, subject: stored.entry, stored: true, ...((push ?? namesRegistry(ref)) ? { repo: parseReference(stored.name) } : {}) };
  if (!namesRegistry(ref)) throw new NotFoundError(`cannot attach to ${ref}: no such image in the store (name its registry, e.g. 127.0.0.1:5000/${ref}, to attach at the registry)`);
  return { ...(await resolveAtRegistry(ctx, ref)), stored: false };
}

async function resolveAtRegistry(ctx: ReferrersContext, ref: string): Promise<{ name: string; subject: Descriptor; repo: Reference }> {
  const repo = parseReference(ref);
  const { mediaType, digest, size } = (await ctx.client.resolve(repo)).descriptor;
  return { name: repo.toString(), subject: { mediaType, digest, size }, repo };
}

/**
 * Attaches `options.blob` (or the file at `options.path`) to image `ref` as an OCI artifact (see
 * attach() on the Engine): kept with a stored image, and pushed to the registry with the
 * referrers API or the referrers tag schema.
 */
export async function attachArtifact(ctx: ReferrersContext, ref: string, options: AttachOptions): Promise<AttachResult> {
  if (typeof options.artifactType !== 'string' || !MEDIA_TYPE.test(options.artifactType)) throw new InvalidArgumentError(`artifact type ${JSON.stringify(options.artifactType)} is not a media type (type/subtype, e.g. application/spdx+json)`);
  if (options.mediaType !== undefined && !MEDIA_TYPE.test(options.mediaType)) throw new InvalidArgumentError(`media type ${JSON.stringify(options.mediaType)} is not type/subtype`);
  const blob = await attachedBytes(options);
  const { signal } = options;
  const target = await subjectOf(ctx, ref, options.push);
  const annotations = { 'org.opencontainers.image.created': createdAnnotation(options.created ?? new Date()), ...options.annotations };
  const artifact = artifactManifest({ artifactType: options.artifactType, blob, annotations, ...(options.mediaType ? { mediaType: options.mediaType } : {}) }, target.subject);
  if (target.stored) await attachToStore(ctx.store, target.subject.digest, artifact);
  if (!target.stored && options.push === false) throw new InvalidArgumentError(`cannot attach to ${ref} with push: false: it is not in the store, so the registry is the only place to keep it`);
  const push = target.repo !== undefined && (options.push ?? true);
  const via = push ? await pushReferrer(ctx.client, target.repo!, target.subject.digest, artifact, signal) : undefined;
  return { name: target.name, subject: target.subject, artifact: artifact.descriptor, stored: target.stored, ...(via ? { pushed: { repository: target.repo!.name, via } } : {}) };
}

/** The artifacts that refer to image `ref` (see referrers() on the Engine). */
export async function listReferrers(ctx: ReferrersContext, ref: string, options: ReferrersOptions = {}): Promise<Referrer[]> {
  const source = options.source ?? 'auto';
  const { artifactType, signal } = options;
  const found = new Map<Digest, Referrer>();
  const add = (d: Descriptor, subject: Digest, from: 'store' | 'registry'): void => {
    const seen = found.get(d.digest);
    if (seen) seen.source = seen.source === from ? from : 'store+registry';
    else found.set(d.digest, { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.artifactType ? { artifactType: d.artifactType } : {}), ...(d.annotations ? { annotations: d.annotations } : {}), subject, source: from });
  };
  const stored = source === 'registry' ? undefined : await findStored(ctx.store, ref);
  if (stored) for (const d of await storedReferrers(ctx.store, stored.entry, artifactType)) add(d, stored.entry.digest, 'store');
  if (source === 'store') {
    if (!stored) throw new NotFoundError(`cannot list the referrers of ${ref}: no such image in the store`);
    return [...found.values()];
  }
  if (stored && !namesRegistry(ref)) return [...found.values()];
  if (!stored && source === 'auto' && !namesRegistry(ref)) throw new NotFoundError(`cannot list the referrers of ${ref}: no such image in the store (name its registry, e.g. 127.0.0.1:5000/${ref}, to ask the registry)`);

  let repo: Reference;
  let subjects: Digest[];
  if (stored) {
    repo = parseReference(stored.name);
    const from = stored.entry.annotations?.[SOURCE_DIGEST_ANNOTATION];
    subjects = [stored.entry.digest, ...(isDigest(from) && from !== stored.entry.digest ? [from] : [])];
  } else {
    const target = await resolveAtRegistry(ctx, ref);
    repo = target.repo;
    subjects = [target.subject.digest];
  }
  try {
    for (const subject of subjects) {
      const listed = await registryReferrers(ctx.client, repo, subject, { ...(artifactType ? { artifactType } : {}), ...(signal ? { signal } : {}) });
      for (const d of listed.descriptors) add(d, subject, 'registry');
    }
  } catch (err) {
    // A stored image's own list stands when its registry cannot be reached.
    if (!(stored && source === 'auto' && err instanceof NetworkError)) throw err;
  }
  return [...found.values()];
}
