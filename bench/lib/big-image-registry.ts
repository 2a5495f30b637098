import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MediaType } from '../../src/oci/mediatypes.js';
import { BIG_IMAGE_REF, buildBigImage, pushBigImage, removeBigImage, type BigImageOptions } from '../../test/fixtures/big-image.js';
import { makeCertificates, type TestCertificates } from '../../test/helpers/certs.js';
import { startRegistry, type TestRegistry } from '../../test/helpers/registry.js';

/** What a cached registry holds, written once the push has completed. */
export interface CachedBigImage {
  key: string;
  options: Required<BigImageOptions>;
  /** Repository and tag inside the registry, e.g. `bench/big:1`. */
  reference: string;
  /** Manifest digest as the registry serves it. */
  digest: string;
  totalCompressedBytes: number;
  layers: { digest: string; size: number }[];
  builtAt: string;
}

export interface BenchRegistry {
  registry: TestRegistry;
  image: CachedBigImage;
  /** False when the image had to be built and pushed in this run. */
  cacheHit: boolean;
  /** The registry's storage: a second registry (e.g. over TLS) can serve the same image from it. */
  storageDir: string;
}

/** Bump when the cache's layout changes so old caches are rebuilt rather than misread. */
const CACHE_FORMAT = 1;

export const DEFAULT_BIG_IMAGE: Required<BigImageOptions> = { layers: 6, totalCompressedMB: 220, smallFilesLayer: 12000, seed: 'stratum-bench', driverExtras: false };

/**
 * The drivers benchmark's two images (bench/drivers.ts): `small` (~50 MB compressed, 3 layers of
 * which 3,000 small files, plus the extras layer) and `big` (bench/big:1's six layers plus the
 * extras layer: a 100 MiB file, two tiny static programs, a file to read).
 */
export const DRIVER_IMAGES = {
  small: { reference: 'bench/small:1', options: { layers: 3, totalCompressedMB: 48, smallFilesLayer: 3000, seed: 'stratum-bench-small', driverExtras: true } },
  big: { reference: 'bench/big-drivers:1', options: { ...DEFAULT_BIG_IMAGE, driverExtras: true } },
} as const satisfies Record<string, { reference: string; options: Required<BigImageOptions> }>;

export function cacheKey(options: Required<BigImageOptions>, reference: string = BIG_IMAGE_REF): string {
  // driverExtras off is left out, so bench/big:1's key (and its cached registry) stays what it was.
  const { driverExtras, ...rest } = options;
  const keyed = driverExtras ? options : rest;
  const canonical = JSON.stringify({ format: CACHE_FORMAT, reference, ...keyed }, Object.keys({ format: 0, reference: 0, ...keyed }).sort());
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/**
 * Starts docker-registry on 127.0.0.1 over storage kept in `cacheRoot/registry-<key>/`, where
 * the benchmark image was pushed by an earlier run; builds and pushes it when that storage is
 * missing or does not serve the recorded manifest.
 */
export async function startBenchRegistry(
  cacheRoot: string,
  options: Required<BigImageOptions> = DEFAULT_BIG_IMAGE,
  log: (line: string) => void = () => {},
  reference: string = BIG_IMAGE_REF,
): Promise<BenchRegistry> {
  const key = cacheKey(options, reference);
  const dir = join(cacheRoot, `registry-${key}`);
  const storageDir = join(dir, 'storage');
  const markerPath = join(dir, 'image.json');
  await mkdir(storageDir, { recursive: true });
  const registry = await startRegistry({ storageDir });
  try {
    const cached = existsSync(markerPath) ? (JSON.parse(await readFile(markerPath, 'utf8')) as CachedBigImage) : undefined;
    if (cached && cached.key === key && (await servesImage(registry, cached))) return { registry, image: cached, cacheHit: true, storageDir };

    log(`building ${reference} (${options.layers}${options.driverExtras ? ' + 1' : ''} layers, ~${options.totalCompressedMB} MB) into ${dir}; later runs reuse it`);
    await rm(markerPath, { force: true });
    const buildDir = join(dir, 'layout');
    await removeBigImage(buildDir);
    const built = await buildBigImage(buildDir, options);
    const digest = await pushBigImage(buildDir, registry, reference);
    await removeBigImage(buildDir);
    const image: CachedBigImage = {
      key,
      options,
      reference,
      digest,
      totalCompressedBytes: built.totalCompressedBytes,
      layers: built.layers.map((l) => ({ digest: l.digest, size: l.size })),
      builtAt: new Date().toISOString(),
    };
    await writeFile(markerPath, JSON.stringify(image, null, 2) + '\n');
    return { registry, image, cacheHit: false, storageDir };
  } catch (err) {
    await registry.stop();
    throw err;
  }
}

/** True when the registry answers the recorded manifest digest and has every layer blob. */
async function servesImage(registry: TestRegistry, image: CachedBigImage): Promise<boolean> {
  const [repo, tag] = image.reference.split(':') as [string, string];
  const head = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: `${MediaType.OciManifest}, ${MediaType.DockerManifest}` },
  });
  if (head.status !== 200 || head.headers.get('docker-content-digest') !== image.digest) return false;
  for (const layer of image.layers) {
    const blob = await fetch(`${registry.url}/v2/${repo}/blobs/${layer.digest}`, { method: 'HEAD' });
    if (blob.status !== 200 || Number(blob.headers.get('content-length')) !== layer.size) return false;
  }
  return true;
}

/**
 * The bench's test PKI in `cacheRoot/certs/`: made once, remade only when the file listing it is
 * missing or the server certificate expires within a day.
 */
export async function benchCertificates(cacheRoot: string): Promise<TestCertificates> {
  const dir = join(cacheRoot, 'certs');
  const listing = join(dir, 'certs.json');
  if (existsSync(listing)) {
    const certs = JSON.parse(await readFile(listing, 'utf8')) as TestCertificates;
    const fresh = await promisify(execFile)('openssl', ['x509', '-checkend', '86400', '-noout', '-in', certs.server.cert]).then(
      () => true,
      () => false,
    );
    if (fresh) return certs;
  }
  await rm(dir, { recursive: true, force: true });
  const certs = await makeCertificates(dir);
  await writeFile(listing, JSON.stringify(certs, null, 2) + '\n');
  return certs;
}

/** A second docker-registry over `storageDir` (startBenchRegistry's), serving HTTPS with the bench CA's server certificate. */
export async function startTlsBenchRegistry(storageDir: string, certs: TestCertificates): Promise<TestRegistry> {
  return startRegistry({ storageDir, tls: { certificate: certs.server.cert, key: certs.server.key, ca: certs.ca.cert } });
}
