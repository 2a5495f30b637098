import { appendFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest, type Digest } from '../oci/digest.js';
import { isCode } from './layout.js';
import { isOwnerGone, newOwner, type LockOwner } from './lock.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../sys/mkdir-all.js';

export const LEASES_DIR = 'leases';

/**
 * A lease keeps blobs alive while an operation that has not tagged them yet is running
 * (containerd's leases): a pull adds each digest before it fetches it, and GC treats the
 * digests of every lease whose owner is alive as roots. The file is the owner record on the
 * first line, then one digest a line; appends of one short line are atomic.
 */
export class Lease {
  private released = false;
  private constructor(readonly path: string) {}

  static async create(storeRoot: string): Promise<Lease> {
    const owner = newOwner();
    const dir = join(storeRoot, LEASES_DIR);
    await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const path = join(dir, `${owner.pid}-${owner.nonce}`);
    await writeFile(path, JSON.stringify(owner) + '\n', { flag: 'wx', mode: PRIVATE_FILE_MODE });
    return new Lease(path);
  }

  async add(digest: Digest): Promise<void> {
    if (this.released) throw new Error(`lease ${this.path} already released`);
    await appendFile(this.path, `${digest}\n`);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await rm(this.path, { force: true });
  }
}

/** Digests held by live leases; leases of processes that are gone are removed unless dryRun. */
export async function leasedDigests(storeRoot: string, dryRun = false): Promise<Set<Digest>> {
  const dir = join(storeRoot, LEASES_DIR);
  const held = new Set<Digest>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isCode(err, 'ENOENT')) return held;
    throw err;
  }
  for (const name of names) {
    const path = join(dir, name);
    let lines: string[];
    try {
      lines = (await readFile(path, 'utf8')).split('\n');
    } catch (err) {
      if (isCode(err, 'ENOENT')) continue;
      throw err;
    }
    let owner: LockOwner | undefined;
    try {
      owner = JSON.parse(lines[0] ?? '') as LockOwner;
    } catch {
      owner = undefined; // being written right now: its digests (none yet) are still held below
    }
    if (owner && isOwnerGone(owner)) {
      if (!dryRun) await rm(path, { force: true });
      continue;
    }
    for (const line of lines.slice(1)) if (isDigest(line)) held.add(line);
  }
  return held;
}
