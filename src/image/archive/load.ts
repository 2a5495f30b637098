import type { Readable } from 'node:stream';
import { ArchiveError, DigestMismatchError, InvalidManifestError } from '../../errors.js';
import { ANNOTATION_CONTAINERD_IMAGE_NAME, ANNOTATION_REF_NAME } from '../../content/layout.js';
import { Lease } from '../../content/lease.js';
import type { OciStore } from '../../content/store.js';
import { parseImageConfig } from '../../oci/config.js';
import { digestOf, parseDigest, type Digest } from '../../oci/digest.js';
import { parseManifest } from '../../oci/manifest.js';
import { isImageManifestMediaType, isIndexMediaType, MediaType, type LayerCompression } from '../../oci/mediatypes.js';
import { parseReference } from '../../oci/reference.js';
import type { Descriptor, ImageConfig } from '../../oci/types.js';
import { baseName } from '../../unpack/entry-path.js';
import { ArchiveView } from './archive-view.js';
import { readArchiveEntries, type FileEntry } from './entries.js';

export interface LoadOptions {
  /**
   * For OCI archives whose `org.opencontainers.image.ref.name` is a bare tag (`latest`, as
   * `skopeo copy … oci-archive:FILE:latest` writes): the repository to tag it in, as
   * containerd's `ctr import --base-name` does. Without it such an image is not tagged.
   */
  baseName?: string;
}

export interface LoadedImage {
  /** The name it was tagged with (fully qualified); absent for an image the archive does not name. */
  name?: string;
  /** The image ID (config digest). */
  id: Digest;
  /** The digest of the manifest stored (for an index: of the index the name is tagged with). */
  manifest: Digest;
}

export interface LoadResult {
  /** One entry per name (an unnamed image once), in the archive's order. */
  images: LoadedImage[];
}

/** An image checked and stored, waiting for its tags (set only once every image of the archive is good). */
interface Checked {
  names: string[];
  id: Digest;
  /** What the names are tagged with. */
  descriptor: Descriptor;
}

interface ManifestItem {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

const DOCKER_LAYER_TYPE: Record<LayerCompression, string> = {
  none: MediaType.DockerLayer,
  gzip: MediaType.DockerLayerGzip,
  zstd: MediaType.DockerLayerZstd,
};

function parseJson(bytes: Buffer, path: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ArchiveError(path, `not valid JSON: ${(err as Error).message}`);
  }
}

function manifestItems(value: unknown): ManifestItem[] {
  const fail = (why: string): never => {
    throw new ArchiveError('manifest.json', why);
  };
  if (!Array.isArray(value)) fail('must be a JSON array');
  return (value as unknown[]).map((item, i) => {
    const m = item as Record<string, unknown> | null;
    if (typeof m !== 'object' || m === null) fail(`item ${i} is not an object`);
    if (typeof m!.Config !== 'string') fail(`item ${i}: Config must be a string`);
    if (!Array.isArray(m!.Layers) || !m!.Layers.every((l) => typeof l === 'string')) fail(`item ${i}: Layers must be an array of strings`);
    const tags = m!.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) fail(`item ${i}: RepoTags must be an array of strings`);
    return { Config: m!.Config as string, Layers: m!.Layers as string[], RepoTags: tags as string[] };
  });
}

/** A RepoTags name, normalised the way the store names images; it must be a tag, as Docker requires. */
function repoTag(tag: string): string {
  let ref;
  try {
    ref = parseReference(tag);
  } catch (err) {
    throw new ArchiveError('manifest.json', `RepoTags: ${(err as Error).message}`);
  }
  if (ref.digest !== undefined || !/:[\w][\w.-]*$/.test(tag.replace(/^[^/]*\//, ''))) throw new ArchiveError('manifest.json', `RepoTags: ${JSON.stringify(tag)} is not a name with a tag`);
  return ref.toString();
}

/** Checks that every layer file hashes (decompressed) to the config's diffID at its place. */
function checkLayers(view: ArchiveView, config: ImageConfig, layers: FileEntry[], subject: string): void {
  const diffIds = config.rootfs.diff_ids;
  if (layers.length !== diffIds.length) throw new ArchiveError(subject, `${layers.length} layers, but the image config has ${diffIds.length} diff_ids`);
  layers.forEach((layer, i) => {
    const actual = view.diffId(layer);
    if (actual !== diffIds[i]) throw new DigestMismatchError(`image archive entry ${JSON.stringify(layer.path)} (layer ${i + 1} of ${subject}: its uncompressed digest against the config's rootfs.diff_ids)`, diffIds[i]!, actual);
  });
}

/**
 * The image manifest of index.json (Docker 25 and stratum write one) for this config whose blobs
 * are all in the archive and check out: it is kept, with its digest. Docker 25.0's own lists no
 * layers, so it never matches and a schema2 manifest is made instead.
 */
async function matchingIndexManifest(view: ArchiveView, index: Descriptor[], config: FileEntry): Promise<Descriptor | undefined> {
  for (const d of index) {
    if (!isImageManifestMediaType(d.mediaType)) continue;
    try {
      const entry = view.blob(parseDigest(d.digest), d.size, 'index.json');
      const parsed = parseManifest(await view.bytes(entry), d.mediaType, entry.path);
      if (parsed.kind !== 'image' || parsed.manifest.config.digest !== config.digest) continue;
      await ociImage(view, d, 'index.json');
      return { mediaType: d.mediaType, digest: d.digest, size: d.size };
    } catch {
      continue;
    }
  }
  return undefined;
}

/**
 * A `docker save` archive: manifest.json names each image's config and layer files (Docker
 * 20.10: `<id>.json` and `<v1 id>/layer.tar`, repeated layers as symlinks; Docker 25 and
 * stratum: `blobs/sha256/…`). The config must hash to its file name, each layer (decompressed)
 * to its diffID. The manifest is index.json's when one matches exactly, else a Docker schema2
 * manifest, so the image ID (config digest) is Docker's.
 */
async function dockerImages(view: ArchiveView, store: OciStore, lease: Lease): Promise<Checked[]> {
  const items = manifestItems(parseJson(await view.bytes(view.file('manifest.json', 'the archive')), 'manifest.json'));
  const index = view.has('index.json') ? indexDescriptors(parseJson(await view.bytes(view.file('index.json', 'the archive')), 'index.json')) : [];
  const out: Checked[] = [];
  for (const [i, item] of items.entries()) {
    const subject = `image ${i + 1} of manifest.json (${item.Config})`;
    const names = item.RepoTags.map(repoTag);
    const configEntry = view.file(item.Config, `manifest.json (${subject})`);
    const named = /^([0-9a-f]{64})(?:\.json)?$/.exec(baseName(item.Config))?.[1];
    if (named !== undefined && configEntry.digest !== `sha256:${named}`) {
      throw new DigestMismatchError(`image archive entry ${JSON.stringify(item.Config)} (the image config, named by its digest)`, `sha256:${named}`, configEntry.digest);
    }
    const config = parseImageConfig(await view.bytes(configEntry), `image archive entry ${JSON.stringify(item.Config)}`);
    const layers = item.Layers.map((path, j) => view.file(path, `manifest.json (layer ${j + 1} of ${subject})`));
    checkLayers(view, config, layers, subject);
    await view.ensureStored(configEntry);
    for (const layer of layers) await view.ensureStored(layer);

    let descriptor: Descriptor;
    const matching = await matchingIndexManifest(view, index, configEntry);
    if (matching) descriptor = matching;
    else {
      const manifest = {
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: MediaType.DockerConfig, size: configEntry.size, digest: configEntry.digest },
        layers: layers.map((l) => ({ mediaType: DOCKER_LAYER_TYPE[l.compression], size: l.size, digest: l.digest })),
      };
      const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
      await lease.add(digestOf(bytes));
      const stored = await store.put(bytes);
      descriptor = { mediaType: MediaType.DockerManifest, digest: stored.digest, size: stored.size };
    }
    out.push({ names, id: configEntry.digest, descriptor });
  }
  return out;
}

function indexDescriptors(value: unknown): Descriptor[] {
  const manifests = (value as { manifests?: unknown } | null)?.manifests;
  if (typeof value !== 'object' || value === null || !Array.isArray(manifests)) throw new ArchiveError('index.json', 'not an OCI image index (no manifests array)');
  return manifests.map((d, i) => {
    const desc = d as Descriptor | null;
    if (typeof desc !== 'object' || desc === null || typeof desc.mediaType !== 'string' || typeof desc.digest !== 'string' || !Number.isSafeInteger(desc.size)) {
      throw new ArchiveError('index.json', `manifests[${i}] is not a descriptor`);
    }
    try {
      parseDigest(desc.digest);
    } catch (err) {
      throw new ArchiveError('index.json', `manifests[${i}]: ${(err as Error).message}`);
    }
    return desc;
  });
}

/** The name an OCI index entry gives: containerd's full name, else ref.name when it is a reference, else baseName:tag. */
function ociName(d: Descriptor, base: string | undefined): string | undefined {
  const full = d.annotations?.[ANNOTATION_CONTAINERD_IMAGE_NAME];
  const ref = d.annotations?.[ANNOTATION_REF_NAME];
  const parse = (name: string, what: string) => {
    try {
      const parsed = parseReference(name);
      if (parsed.digest !== undefined) throw new Error('a name with a digest cannot be a tag');
      return parsed.toString();
    } catch (err) {
      throw new ArchiveError('index.json', `${what} ${JSON.stringify(name)}: ${(err as Error).message}`);
    }
  };
  if (full) return parse(full, ANNOTATION_CONTAINERD_IMAGE_NAME);
  if (!ref || ref.startsWith('sha256:')) return undefined; // a digest names no tag (containerd skips these too)
  if (/[:/]/.test(ref)) return parse(ref, ANNOTATION_REF_NAME);
  return base === undefined ? undefined : parse(`${base}:${ref}`, `${ANNOTATION_REF_NAME} with the base name`);
}

/** One image manifest of an OCI archive, every blob it names checked (digest, size, diffIDs). */
async function ociImage(view: ArchiveView, d: Descriptor, from: string): Promise<Digest> {
  const manifestEntry = view.blob(d.digest, d.size, from);
  const parsed = parseManifest(await view.bytes(manifestEntry), d.mediaType, `image archive entry ${JSON.stringify(manifestEntry.path)}`);
  if (parsed.kind !== 'image') throw new InvalidManifestError(manifestEntry.path, `${from} names it as an image manifest, but it is a ${parsed.kind}`);
  const { manifest } = parsed;
  const subject = `manifest ${d.digest}`;
  const configEntry = view.blob(manifest.config.digest, manifest.config.size, `the config of ${subject}`);
  const config = parseImageConfig(await view.bytes(configEntry), `image archive entry ${JSON.stringify(configEntry.path)}`);
  const layers = manifest.layers.map((l, i) => view.blob(l.digest, l.size, `layer ${i + 1} of ${subject}`));
  checkLayers(view, config, layers, subject);
  for (const e of [configEntry, ...layers, manifestEntry]) await view.ensureStored(e);
  return manifest.config.digest;
}

/** An OCI archive (skopeo's oci-archive, or an OCI layout tarred): index.json's entries, each an image or an index of them. */
async function ociImages(view: ArchiveView, baseNameOption: string | undefined): Promise<Checked[]> {
  const index = indexDescriptors(parseJson(await view.bytes(view.file('index.json', 'the archive')), 'index.json'));
  const out: Checked[] = [];
  for (const d of index) {
    const name = ociName(d, baseNameOption);
    const descriptor: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}) };
    if (isIndexMediaType(d.mediaType)) {
      const entry = view.blob(d.digest, d.size, 'index.json');
      const parsed = parseManifest(await view.bytes(entry), d.mediaType, `image archive entry ${JSON.stringify(entry.path)}`);
      if (parsed.kind !== 'index') throw new InvalidManifestError(entry.path, `index.json names it as an index, but it is a ${parsed.kind}`);
      // Only the platforms the archive holds (skopeo copies one platform or all).
      const present = parsed.index.manifests.filter((c) => isImageManifestMediaType(c.mediaType) && view.has(`blobs/sha256/${c.digest.slice('sha256:'.length)}`));
      if (present.length === 0) throw new ArchiveError(entry.path, 'an index none of whose image manifests is in the archive');
      for (const child of present) {
        const id = await ociImage(view, child, `index ${d.digest}`);
        out.push({ names: name ? [name] : [], id, descriptor });
      }
      await view.ensureStored(entry);
    } else if (isImageManifestMediaType(d.mediaType)) {
      out.push({ names: name ? [name] : [], id: await ociImage(view, d, 'index.json'), descriptor });
    } else {
      throw new ArchiveError('index.json', `entry ${d.digest} has media type ${JSON.stringify(d.mediaType)}: neither an image manifest nor an index`);
    }
  }
  return out;
}

/**
 * `docker load`: reads an archive from `input` (a file or a pipe, plain or compressed as a
 * whole) in one pass, its files ingested into the store as they pass under a lease, then checks
 * every image it holds and only then tags them. Accepts Docker 20.10's `docker save` output,
 * Docker 25's (and `saveImages`'), and OCI archives (skopeo's `oci-archive:`). Anything wrong
 * (a truncated archive, a digest that does not match, an entry that climbs out, no manifest)
 * fails with a typed error naming the entry, before any tag is set; what was ingested is
 * unreferenced, so the next gc removes it.
 */
export async function loadArchive(store: OciStore, input: Readable, options: LoadOptions = {}): Promise<LoadResult> {
  const lease = await Lease.create(store.root);
  try {
    const view = new ArchiveView(await readArchiveEntries(input, store, lease), store, lease);
    let checked: Checked[];
    if (view.has('manifest.json')) checked = await dockerImages(view, store, lease);
    else if (view.has('index.json')) checked = await ociImages(view, options.baseName);
    else throw new ArchiveError(undefined, 'neither manifest.json nor index.json: not a docker save or OCI archive (pre-1.10 Docker archives are not read)');
    const images: LoadedImage[] = [];
    for (const c of checked) {
      for (const name of c.names) await store.setTag(name, c.descriptor);
      if (c.names.length === 0) images.push({ id: c.id, manifest: c.descriptor.digest });
      for (const name of c.names) images.push({ name, id: c.id, manifest: c.descriptor.digest });
    }
    return { images };
  } finally {
    await lease.release();
  }
}
