import type { TaggedImage } from '../content/content.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { formatPlatform, hostPlatform, selectManifest } from '../oci/platform.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Descriptor, Platform } from '../oci/types.js';
import { InvalidArgumentError, InvalidManifestError, NotFoundError } from '../errors.js';
import { SOURCE_DIGEST_ANNOTATION } from './annotations.js';
import { loadImage, type ImageSource, type StoredImage } from './image.js';

/** An image a tag leads to: the tag's own manifest, or one platform's manifest of the index it names. */
export interface ListedImage extends StoredImage {
  /** The tag's descriptor when it names an index (manifest list); `descriptor` is then the platform's. */
  index?: Descriptor;
  /** The platform of an index entry, as `os/arch[/variant]`. */
  platform?: string;
}

export interface ImageListing {
  images: ListedImage[];
  /** Tags that could not be read (a missing or damaged blob), each with why; the rest are listed. */
  warnings: Array<{ name: string; message: string }>;
}

/** Only children of an index whose manifests are in the store count (skopeo copies one platform or all). */
async function presentChildren(store: ImageSource, index: { manifests: Descriptor[] }): Promise<Descriptor[]> {
  const out: Descriptor[] = [];
  for (const child of index.manifests) if (await store.has(child.digest)) out.push(child);
  return out;
}

async function loadChild(store: ImageSource, tagged: TaggedImage, child: Descriptor): Promise<ListedImage> {
  const image = await loadImage(store, { name: tagged.name, descriptor: child });
  return { ...image, index: tagged.descriptor, ...(child.platform ? { platform: formatPlatform(child.platform) } : {}) };
}

/** Every image a tag leads to; an index gives one per platform present. */
async function imagesOfTag(store: ImageSource, tagged: TaggedImage): Promise<ListedImage[]> {
  const subject = `${tagged.name}@${tagged.descriptor.digest}`;
  const parsed = parseManifest(await store.read(tagged.descriptor.digest), tagged.descriptor.mediaType, subject);
  if (parsed.kind === 'image') {
    const image = await loadImage(store, tagged);
    return [{ ...image, platform: formatPlatform(image.config) }];
  }
  if (parsed.kind !== 'index') throw new InvalidManifestError(subject, `a ${parsed.kind} manifest is stored converted; this tag names the original`);
  const out: ListedImage[] = [];
  for (const child of await presentChildren(store, parsed.index)) {
    const childParsed = parseManifest(await store.read(child.digest), child.mediaType, `${subject} ${child.digest}`);
    if (childParsed.kind === 'image') out.push(await loadChild(store, tagged, child));
  }
  return out;
}

/**
 * Every image in the store, by tag (an index: each platform present). A tag that cannot be read
 * is a warning, not a failure: one damaged entry never hides the others.
 */
export async function listImages(store: ImageSource): Promise<ImageListing> {
  const images: ListedImage[] = [];
  const warnings: ImageListing['warnings'] = [];
  for (const tagged of await store.listTags()) {
    try {
      images.push(...(await imagesOfTag(store, tagged)));
    } catch (err) {
      warnings.push({ name: tagged.name, message: (err as Error).message });
    }
  }
  return { images, warnings };
}

export function parsesAs(name: string): Reference | undefined {
  try {
    return parseReference(name);
  } catch {
    return undefined;
  }
}

/** The platform's image of an index tag, or of a plain tag. */
async function imageOfTag(store: ImageSource, tagged: TaggedImage, platform: Platform | undefined): Promise<ListedImage> {
  const subject = `${tagged.name}@${tagged.descriptor.digest}`;
  const parsed = parseManifest(await store.read(tagged.descriptor.digest), tagged.descriptor.mediaType, subject);
  if (parsed.kind !== 'index') return loadImage(store, tagged);
  const present = await presentChildren(store, parsed.index);
  const child = selectManifest({ ...parsed.index, manifests: present }, platform ?? hostPlatform(), `${tagged.name} (in this store)`);
  return loadChild(store, tagged, child);
}

function ambiguous(input: string, names: string[]): never {
  throw new InvalidArgumentError(`image name ${JSON.stringify(input)} is ambiguous: it matches ${[...new Set(names)].sort().join(', ')}; name one of them`);
}

/**
 * A stored image by any name a user sees, as docker resolves one:
 * - `sha256:<config digest>` (the full image ID);
 * - a tag in any spelling (`ubuntu:15.04`, `docker.io/library/ubuntu:15.04`; no tag: `latest`),
 *   also one stored under a name that is not normalised (`skopeo copy … oci:STORE:multi`);
 * - `repo@sha256:<digest>` as pull printed it: the manifest's digest, the registry's digest of a
 *   converted schema1 image, an index's or one of its platforms';
 * - a short name (`debian:12`) when exactly one stored repository ends with it;
 * - an IMAGE ID prefix as `images` prints it (with or without `sha256:`).
 * A tag naming an index gives the host's platform (or `platform`); one that is not in the store is
 * an error listing those that are.
 */
export async function resolveImage(store: ImageSource, input: string, options: { platform?: Platform } = {}): Promise<ListedImage> {
  const tags = await store.listTags();
  const lower = input.toLowerCase();

  if (isDigest(lower)) {
    const { images } = await listImages(store);
    const hit = images.find((i) => i.configDescriptor.digest === lower);
    if (hit) return hit;
  }

  const ref = parsesAs(input);
  if (ref) {
    if (ref.digest !== undefined) {
      const exact = tags.find((t) => t.name === ref.toString());
      if (exact) return imageOfTag(store, exact, options.platform);
      const byDigest = await findByDigest(store, tags, ref.name, ref.digest);
      if (byDigest) return byDigest;
    } else {
      const name = ref.toString();
      const exact = tags.find((t) => t.name === name) ?? tags.find((t) => parsesAs(t.name)?.toString() === name);
      if (exact) return imageOfTag(store, exact, options.platform);
      const short = shortNameMatches(input, ref, tags);
      if (short.length > 1) ambiguous(input, short.map((t) => t.name));
      if (short.length === 1) return imageOfTag(store, short[0]!, options.platform);
    }
  }

  const hex = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(lower)?.[1];
  if (hex !== undefined) {
    const { images } = await listImages(store);
    const hits = images.filter((i) => i.configDescriptor.digest.slice('sha256:'.length).startsWith(hex));
    const ids = new Set(hits.map((i) => i.configDescriptor.digest));
    if (ids.size > 1) ambiguous(input, hits.map((i) => `${i.name} (${i.configDescriptor.digest.slice(7, 19)})`));
    if (hits.length > 0) return hits[0]!;
  }
  const looked = ref ? ` (looked for ${ref.toString()})` : '';
  throw new NotFoundError(`image ${input} not found in the store${looked}; pull it first`);
}

/** Stored names with the same tag whose repository path ends with the one given (`debian:12` → `127.0.0.1:5000/debian:12`). */
function shortNameMatches(input: string, ref: Reference, tags: TaggedImage[]): TaggedImage[] {
  const withoutTag = input.replace(/@.*$/, '').replace(/:[\w][\w.-]*$/, '');
  if (withoutTag.includes('.') || withoutTag.includes(':') || withoutTag.startsWith('localhost/')) return []; // a registry was named
  return tags.filter((t) => {
    const stored = parsesAs(t.name);
    if (!stored || stored.tag !== ref.tag) return false;
    return stored.repository === withoutTag || stored.repository.endsWith(`/${withoutTag}`);
  });
}

/** The image of `repository` known by `digest`: its manifest, the registry's digest pull recorded, an index or an index's platform. */
async function findByDigest(store: ImageSource, tags: TaggedImage[], repository: string, digest: Digest): Promise<ListedImage | undefined> {
  const inRepo = tags.filter((t) => parsesAs(t.name)?.name === repository);
  for (const tagged of inRepo) {
    if (tagged.descriptor.digest === digest || tagged.descriptor.annotations?.[SOURCE_DIGEST_ANNOTATION] === digest) return imageOfTag(store, tagged, undefined);
  }
  for (const tagged of inRepo) {
    const images = await imagesOfTag(store, tagged).catch(() => [] as ListedImage[]);
    const hit = images.find((i) => i.descriptor.digest === digest);
    if (hit) return hit;
  }
  return undefined;
}
