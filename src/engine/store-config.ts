import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { isCode, writeFileAtomic } from '../content/layout.js';

export const STORE_CONFIG_FILE = 'stratum.json';

/**
 * A store's own settings, `<store>/stratum.json`, as daemon.json holds Docker's: the storage
 * driver chosen on first use and its options. Keys stratum does not know are kept as they are.
 */
export interface StoreConfig {
  'storage-driver'?: string;
  'storage-opts'?: string[];
  /** Why the driver was chosen on first use (the backing filesystem, a flag), for `stratum info`. */
  'storage-driver-chosen'?: string;
  [key: string]: unknown;
}

/** The store's settings; `{}` when it has none yet. A file that is not a JSON object is an error naming it. */
export async function readStoreConfig(storeRoot: string): Promise<StoreConfig> {
  const path = join(storeRoot, STORE_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return {};
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(path, 'file', `not valid JSON (${(err as Error).message}); fix or remove it (it records the store's storage driver)`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(path, 'file', 'must be a JSON object');
  const config = value as StoreConfig;
  if (config['storage-driver'] !== undefined && typeof config['storage-driver'] !== 'string') throw new ConfigError(path, 'storage-driver', 'must be a string');
  if (config['storage-opts'] !== undefined && !(Array.isArray(config['storage-opts']) && config['storage-opts'].every((o) => typeof o === 'string'))) {
    throw new ConfigError(path, 'storage-opts', 'must be an array of strings');
  }
  return config;
}

/** Replaces the store's settings atomically (temp file, fsync, rename), readable by its owner only. */
export async function writeStoreConfig(storeRoot: string, config: StoreConfig): Promise<void> {
  await writeFileAtomic(join(storeRoot, STORE_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
}
