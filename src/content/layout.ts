import { randomBytes } from 'node:crypto';
import { link, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { StoreError } from '../errors.js';
import { MediaType } from '../oci/mediatypes.js';
import type { ImageIndex } from '../oci/types.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../sys/mkdir-all.js';

/** The files of an OCI image layout (image-spec image-layout.md) and what stratum adds beside them. */
export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
export const INDEX_LOCK_FILE = 'index.json.lock';
export const BLOBS_DIR = 'blobs';
/** Partial downloads: `ingest/<alg>-<hex>/{data,state,lock}`. Not part of the spec; skopeo and umoci ignore it. */
export const INGEST_DIR = 'ingest';
export const IMAGE_LAYOUT_VERSION = '1.0.0';

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CONTAINERD_IMAGE_NAME = 'io.containerd.image.name';

/** `$STRATUM_STORE`, else `$XDG_DATA_HOME/stratum`, else `~/.local/share/stratum`. */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATUM_STORE) return resolve(env.STRATUM_STORE);
  // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
  if (env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME)) return join(env.XDG_DATA_HOME, 'stratum');
  return join(env.HOME || homedir(), '.local', 'share', 'stratum');
}

export function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
}

/** Entries a directory may hold (besides our temp files) and still be adopted as a new layout. */
const OWN_NAMES = new Set([OCI_LAYOUT_FILE, INDEX_FILE, INDEX_LOCK_FILE, BLOBS_DIR, INGEST_DIR]);

/**
 * Makes `root` a valid OCI layout if it is missing or empty, repairs a layout missing index.json
 * or blobs/, and refuses anything else: a file, a foreign directory, another layout version.
 * The root, blobs/ and ingest/ are 0700 and files 0600 (images pulled with credentials are no
 * one else's to read): a store an older version made 0755 is chmodded here. Its 0644 blobs are
 * not touched one by one: under a 0700 root no other user can reach them by any path.
 */
export async function ensureLayout(root: string): Promise<void> {
  let st;
  try {
    st = await stat(root);
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw new StoreError(`cannot use store ${root}: ${(err as Error).message}`, { cause: err });
  }
  if (st && !st.isDirectory()) throw new StoreError(`store ${root} is not a directory`);
  try {
    await ensurePrivateDir(root);
  } catch (err) {
    throw new StoreError(`cannot ${st ? 'use' : 'create'} store ${root}: ${(err as Error).message}`, { cause: err });
  }

  const layoutPath = join(root, OCI_LAYOUT_FILE);
  let layoutText: string | undefined;
  try {
    layoutText = await readFile(layoutPath, 'utf8');
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw new StoreError(`cannot read ${layoutPath}: ${(err as Error).message}`, { cause: err });
  }
  if (layoutText === undefined) {
    const foreign = (await readdir(root)).filter((name) => !OWN_NAMES.has(name) && !name.endsWith('.tmp'));
    if (foreign.length > 0) {
      throw new StoreError(
        `${root} is not an OCI image layout (no ${OCI_LAYOUT_FILE}) and is not empty (holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}); refusing to use it as a store`,
      );
    }
    await writeFileAtomic(layoutPath, JSON.stringify({ imageLayoutVersion: IMAGE_LAYOUT_VERSION }));
  } else {
    checkLayoutFile(layoutPath, layoutText);
  }
  for (const dir of [join(root, BLOBS_DIR), join(root, BLOBS_DIR, 'sha256'), join(root, INGEST_DIR)]) await ensurePrivateDir(dir);
  await createFileIfMissing(join(root, INDEX_FILE), JSON.stringify(emptyIndex()));
  await readIndexFile(root); // refuse a corrupt index.json now rather than at the first tag operation
}

function checkLayoutFile(path: string, text: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StoreError(`${path} is not valid JSON; not an OCI image layout`);
  }
  const version = (parsed as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (typeof version !== 'string') throw new StoreError(`${path} has no imageLayoutVersion; not an OCI image layout`);
  if (version !== IMAGE_LAYOUT_VERSION) {
    throw new StoreError(`${path}: unsupported imageLayoutVersion ${JSON.stringify(version)} (stratum reads ${IMAGE_LAYOUT_VERSION})`);
  }
}

/** Reads and checks index.json; index.json is only ever replaced by rename, so a read sees a whole file. */
export async function readIndexFile(root: string): Promise<ImageIndex> {
  const path = join(root, INDEX_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new StoreError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StoreError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const index = parsed as Partial<ImageIndex> | null;
  if (typeof index !== 'object' || index === null || Array.isArray(index)) throw new StoreError(`${path} is not a JSON object`);
  if (index.schemaVersion !== 2) throw new StoreError(`${path}: schemaVersion must be 2, got ${JSON.stringify(index.schemaVersion)}`);
  if (!Array.isArray(index.manifests)) throw new StoreError(`${path}: manifests must be an array`);
  for (const [i, d] of index.manifests.entries()) {
    if (typeof d !== 'object' || d === null || typeof d.digest !== 'string' || typeof d.mediaType !== 'string') {
      throw new StoreError(`${path}: manifests[${i}] is not a descriptor`);
    }
  }
  return index as ImageIndex;
}

/** Writes `data` to a temp file beside `path`, fsyncs it, renames it over `path`, fsyncs the directory. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await writeSyncedTemp(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Creates `path` with `data` unless it exists; atomic (temp file + link), so a reader never sees it half-written. */
async function createFileIfMissing(path: string, data: string): Promise<void> {
  const tmp = tempPathFor(path);
  await writeSyncedTemp(tmp, data);
  try {
    await link(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    if (!isCode(err, 'EEXIST')) throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Creates `tmp` (which must not exist) with `data`, fsynced, ready to be renamed or linked into place. */
async function writeSyncedTemp(tmp: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(tmp, 'wx', PRIVATE_FILE_MODE);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function tempPathFor(path: string): string {
  return join(dirname(path), `${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
