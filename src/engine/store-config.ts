// PLACEHOLDER until branch i9-driver lands (replaced by it at merge).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../oci/layout.js';

export interface StoreConfig {
  'storage-driver'?: string;
  'storage-opts'?: string[];
  [key: string]: unknown;
}
export async function readStoreConfig(storeRoot: string): Promise<StoreConfig> {
  try {
    return JSON.parse(await readFile(join(storeRoot, 'stratum.json'), 'utf8')) as StoreConfig;
  } catch {
    return {};
  }
}
export async function writeStoreConfig(storeRoot: string, config: StoreConfig): Promise<void> {
  await writeFileAtomic(join(storeRoot, 'stratum.json'), JSON.stringify(config, null, 2) + '\n');
}
