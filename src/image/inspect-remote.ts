/**
 * Inspecting an image in a registry without pulling it (skopeo inspect, docker manifest inspect,
 * crane manifest / crane config): the manifest bytes exactly as served, parsed, and the config.
 */
import type { Readable } from 'node:stream';
import { DigestMismatchError, InvalidManifestError, NetworkError, SizeMismatchError, StratumError } from '../errors.js';
import { digestAlgorithm, digestOf, Digester, type Digest } from '../oci/digest.js';
import { parseImageConfig } from '../oci/config.js';
import { parseManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/mediatypes.js';
import { formatPlatform, hostPlatform, platformMatches, selectManifest } from '../oci/platform.js';
import { parseReference, type Reference } from '../oci/reference.js';
import { convertSchema1, parseSchema1, schema1NonEmptyBlobs, type Schema1Manifest } from '../oci/schema1.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { NoMatchingPlatformError } from '../errors.js';
import type { RegistryClient } from '../registry/client.js';
import { withRetry } from '../registry/retry.js';
import { uncompressedDigest } from '../unpack/decompress.js';

/** Image configs are small JSON documents; a bigger "config" is refused before it is read whole. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export interface RemoteInspection {
  /** The reference, fully qualified (`docker.io/library/ubuntu:15.04`). */
  name: string;
  /** The image manifest's digest as the registry addresses it (for signed schema1: of its payload). */
  digest: Digest;
  mediaType: string;
  /** The image manifest's bytes exactly as the registry served them (`skopeo inspect --raw`). */
  raw: Buffer;
  /** `raw` parsed: an OCI / Docker schema2 manifest, or a schema1 manifest (its signed payload). */
  manifest: ImageManifest | Schema1Manifest;
  /** When the reference names an index (manifest list): the index, and `digest`/`raw` are the chosen platform's. */
  index?: { digest: Digest; mediaType: string; raw: Buffer; parsed: ImageIndex; platform: string };
  /**
   * The image config (`skopeo inspect --config --raw`), verified against its descriptor. For
   * schema1, the OCI config a pull makes (src/oci/schema1.ts), whose diff_ids need every layer
   * streamed once (nothing stored). Absent with `config: false`.
   */
  config?: { digest: Digest; raw: Buffer; parsed: ImageConfig };
}

export interface InspectRemoteOptions {
  /** From an index: this platform; default the host's. */
  platform?: Platform;
  /** Fetch the config too; default true. */
  config?: boolean;
  signal?: AbortSignal;
}

/** Resolves a reference at its registry and returns its manifest (and index, and config), each checked against its digest. */
export async function inspectRemote(client: RegistryClient, input: string | Reference, options: InspectRemoteOptions = {}): Promise<RemoteInspection> {
  const ref = typeof input === 'string' ? parseReference(input) : input;
  const top = await client.resolve(ref);
  let resolved = top;
  let parsed = parseManifest(top.bytes, top.descriptor.mediaType, ref.toString());
  let index: RemoteInspection['index'];
  if (parsed.kind === 'index') {
    const child = selectManifest(parsed.index, options.platform ?? hostPlatform(), ref.toString());
    index = {
      digest: top.descriptor.digest,
      mediaType: top.descriptor.mediaType,
      raw: top.bytes,
      parsed: parsed.index,
      platform: child.platform ? formatPlatform(child.platform) : '',
    };
    resolved = await client.fetchManifest(ref, child.digest, child.size);
    parsed = parseManifest(resolved.bytes, resolved.descriptor.mediaType, `${ref.name}@${child.digest}`);
    if (parsed.kind === 'index') throw new InvalidManifestError(`${ref.name}@${child.digest}`, 'an index inside an index is not supported');
  }
  const base = { name: ref.toString(), digest: resolved.descriptor.digest, mediaType: resolved.descriptor.mediaType, raw: resolved.bytes, ...(index ? { index } : {}) };
  if (parsed.kind === 'schema1') {
    const schema1 = parseSchema1(resolved.bytes, ref.toString());
    if (options.platform && !platformMatches(options.platform, { os: 'linux', architecture: schema1.architecture })) {
      throw new NoMatchingPlatformError(ref.familiar, formatPlatform(options.platform), [`linux/${schema1.architecture}`]);
    }
    if (options.config === false) return { ...base, manifest: schema1 };
    return { ...base, manifest: schema1, config: await schema1Config(client, ref, schema1, options.signal) };
  }
  const manifest = parsed.manifest;
  if (options.config === false) return { ...base, manifest };
  const raw = await fetchConfig(client, ref, manifest.config, options.signal);
  return { ...base, manifest, config: { digest: manifest.config.digest, raw, parsed: parseImageConfig(raw, `${ref} config`) } };
}

/** The config blob, streamed and checked (size, digest) as it arrives, refused past its descriptor's size or MAX_CONFIG_BYTES. */
export async function fetchConfig(client: RegistryClient, ref: Reference, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  const subject = `config ${desc.digest} of ${ref.name}`;
  if (desc.size > MAX_CONFIG_BYTES) throw new InvalidManifestError(subject, `the config is ${desc.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit for image configs`);
  return withRetry(
    async () => {
      const res = await client.fetchBlob(ref, desc.digest, { verify: false, ...(signal ? { signal } : {}) });
      if (res.start !== 0) {
        res.body.destroy();
        throw new NetworkError(`${res.endpoint.url} answered ${subject} from byte ${res.start}`);
      }
      return readVerified(res.body, desc, `${subject} from ${res.endpoint.url}`);
    },
    client.retry,
    signal ? { signal } : {},
  );
}

async function readVerified(body: Readable, desc: Descriptor, subject: string): Promise<Buffer> {
  const digester = new Digester(digestAlgorithm(desc.digest));
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      digester.update(chunk);
      if (digester.size > desc.size) throw new SizeMismatchError(subject, desc.size, digester.size, true);
      chunks.push(chunk);
    }
  } catch (err) {
    body.destroy();
    if (err instanceof StratumError) throw err;
    throw new NetworkError(`${subject}: ${(err as Error).message}`, { cause: err });
  }
  if (digester.size !== desc.size) throw new SizeMismatchError(subject, desc.size, digester.size);
  const actual = digester.digest();
  if (actual !== desc.digest) throw new DigestMismatchError(subject, desc.digest, actual);
  return Buffer.concat(chunks);
}

/** The config `stratum pull` makes of a schema1 image: each non-empty layer streamed once for its diffID (and checked against its blobSum). */
async function schema1Config(client: RegistryClient, ref: Reference, schema1: Schema1Manifest, signal?: AbortSignal): Promise<RemoteInspection['config']> {
  const diffIds = new Map<Digest, Digest>();
  const sizes = new Map<Digest, number>();
  const mediaTypes = new Map<Digest, string>();
  for (const blobSum of schema1NonEmptyBlobs(schema1)) {
    const layer = await withRetry(
      async () => {
        const res = await client.fetchBlob(ref, blobSum, { verify: false, ...(signal ? { signal } : {}) });
        if (res.start !== 0) {
          res.body.destroy();
          throw new NetworkError(`${res.endpoint.url} answered blob ${blobSum} from byte ${res.start}`);
        }
        const compressed = new Digester(digestAlgorithm(blobSum));
        res.body.on('data', (chunk: Buffer) => compressed.update(chunk));
        let out;
        try {
          out = await uncompressedDigest(res.body);
        } catch (err) {
          if (err instanceof StratumError) throw err;
          throw new NetworkError(`blob ${blobSum} of ${ref.name}: ${(err as Error).message}`, { cause: err });
        }
        const actual = compressed.digest();
        if (actual !== blobSum) throw new DigestMismatchError(`blob ${blobSum} of ${ref.name} from ${res.endpoint.url}`, blobSum, actual);
        return out;
      },
      client.retry,
      signal ? { signal } : {},
    );
    diffIds.set(blobSum, layer.digest);
    sizes.set(blobSum, layer.compressedSize);
    mediaTypes.set(blobSum, layer.compression === 'gzip' ? MediaType.OciLayerGzip : layer.compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer);
  }
  const converted = convertSchema1(schema1, diffIds, sizes, (b) => mediaTypes.get(b)!, ref.toString());
  return { digest: digestOf(converted.configBytes), raw: converted.configBytes, parsed: converted.config };
}
