import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isCode, writeFileAtomic } from '../content/layout.js';
import { ConfigError } from '../errors.js';
import type { SnapshotterName } from '../snapshotter/names.js';

export const MIGRATE_JOURNAL_FILE = 'migrate.json';

/**
 * `<store>/migrate.json`: an unfinished `migrate`, so a second one resumes it. Written atomically
 * after every step; the store's recorded driver stays `from` until `phase` is `switched`.
 */
export interface MigrateJournal {
  version: 1;
  from: SnapshotterName;
  to: SnapshotterName;
  /** The store's storage-opts once switched (the target's options included). */
  storageOpts: string[];
  started: string;
  /** unpacking: images go into `to` one by one; switched: the store records `to`, `from`'s snapshots are being removed. */
  phase: 'unpacking' | 'switched';
  /** `name@manifest digest` → what was verified. */
  verified: Record<string, { top?: string; entries: number; comparedWith: 'old-driver' | 'layer-digests' }>;
}

export async function readMigrateJournal(storeRoot: string): Promise<MigrateJournal | undefined> {
  const path = join(storeRoot, MIGRATE_JOURNAL_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    const journal = JSON.parse(text) as MigrateJournal;
    if (journal.version !== 1 || typeof journal.from !== 'string' || typeof journal.to !== 'string' || typeof journal.verified !== 'object') throw new Error('not a version 1 journal');
    return journal;
  } catch (err) {
    throw new ConfigError(path, 'file', `unreadable migration journal (${(err as Error).message}); the store still records its old driver: remove the file to start the migration again`);
  }
}

export async function writeMigrateJournal(storeRoot: string, journal: MigrateJournal): Promise<void> {
  await writeFileAtomic(join(storeRoot, MIGRATE_JOURNAL_FILE), JSON.stringify(journal, null, 2) + '\n');
}

export async function removeMigrateJournal(storeRoot: string): Promise<void> {
  await rm(join(storeRoot, MIGRATE_JOURNAL_FILE), { force: true });
}
