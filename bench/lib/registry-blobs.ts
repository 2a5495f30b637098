import { join } from 'node:path';
import type { BigImageOptions } from '../../test/fixtures/big-image.js';
import { cacheKey, DEFAULT_BIG_IMAGE } from './big-image-registry.js';

/** The storage directory startBenchRegistry serves for these image options. */
export function benchRegistryStorage(cacheRoot: string, options: Required<BigImageOptions> = DEFAULT_BIG_IMAGE, reference?: string): string {
  return join(cacheRoot, `registry-${cacheKey(options, reference)}`, 'storage');
}

/** Where distribution's filesystem driver keeps a blob's bytes (`docker/registry/v2/blobs/<alg>/<xx>/<hex>/data`). */
export function registryBlobPath(storageDir: string, digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  if (!alg || !hex || !/^[a-f0-9]+$/.test(hex)) throw new Error(`not a digest: ${digest}`);
  return join(storageDir, 'docker', 'registry', 'v2', 'blobs', alg, hex.slice(0, 2), hex, 'data');
}
