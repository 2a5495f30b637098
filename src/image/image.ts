import type { Provider, TaggedImage, TagStore } from '../content/content.js';
import { parseManifest } from '../oci/manifest.js';
import { parseImageConfig } from '../oci/config.js';
import { parseReference } from '../oci/reference.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';
import { NotFoundError, InvalidManifestError } from '../errors.js';

/** A tagged image read back from the store: its manifest and config, parsed. */
export interface StoredImage {
  name: string;
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  configDescriptor: Descriptor;
}

export type ImageSource = Provider & TagStore;

/** Finds a tagged image by any spelling of its reference (`ubuntu:15.04`, `docker.io/library/ubuntu:15.04`). */
export async function findImage(store: ImageSource, input: string): Promise<TaggedImage> {
  const name = parseReference(input).toString();
  const tagged = await store.getTag(name);
  if (!tagged) throw new NotFoundError(`image ${input} not found in the store (looked for ${name}); pull it first`);
  return tagged;
}

export async function loadImage(store: ImageSource, tagged: TaggedImage): Promise<StoredImage> {
  const subject = `${tagged.name}@${tagged.descriptor.digest}`;
  const parsed = parseManifest(await store.read(tagged.descriptor.digest), tagged.descriptor.mediaType, subject);
  if (parsed.kind !== 'image') throw new InvalidManifestError(subject, `tag points at a ${parsed.kind}, not an image manifest`);
  const config = parseImageConfig(await store.read(parsed.manifest.config.digest), `${subject} config`);
  return { name: tagged.name, descriptor: tagged.descriptor, manifest: parsed.manifest, config, configDescriptor: parsed.manifest.config };
}

export async function loadImageByName(store: ImageSource, input: string): Promise<StoredImage> {
  return loadImage(store, await findImage(store, input));
}

/** Image size as docker reports it before unpacking: the sum of its layers' blob sizes. */
export function imageSize(image: StoredImage): number {
  return image.manifest.layers.reduce((sum, l) => sum + l.size, 0);
}

/** Splits a stored name into the REPOSITORY and TAG columns docker shows. */
export function repositoryAndTag(name: string): { repository: string; tag: string } {
  const ref = parseReference(name);
  let repository = ref.name;
  if (repository.startsWith('docker.io/')) repository = repository.slice('docker.io/'.length);
  if (ref.registry === 'docker.io' && /^library\/[^/]+$/.test(repository)) repository = repository.slice('library/'.length);
  return { repository, tag: ref.tag ?? '<none>' };
}
