import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Transform, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { ArchiveError, isStratumError, UnsafeEntryError } from '../../errors.js';
import type { Lease } from '../../content/lease.js';
import type { OciStore } from '../../content/store.js';
import type { RefIngestWriter } from '../../content/ingest.js';
import { Digester, type Digest } from '../../oci/digest.js';
import type { LayerCompression } from '../../oci/mediatypes.js';
import { TarFormatError, TarReader, type TarHeader } from '../../tar/reader.js';
import { autoDecompressor, decompressor, detectCompression } from '../../unpack/decompress.js';
import { normaliseEntryPath, parentOf } from '../../unpack/entry-path.js';

/** A regular file of the archive: in the store (a blob, named by its digest) or, for metadata, in memory. */
export interface FileEntry {
  kind: 'file';
  path: string;
  size: number;
  /** sha256 of its bytes. */
  digest: Digest;
  /** By its first bytes. */
  compression: LayerCompression;
  /** sha256 of its decompressed bytes (a layer's diffID): `digest` when not compressed; undefined when decompression failed. */
  diffId: Digest | undefined;
  /** Why decompressing it failed, when it did. */
  diffIdError?: string;
  /** Its bytes, for small files (metadata, configs, manifests) while the memory budget lasts. */
  data?: Buffer;
  /** Whether it was committed to the store as a blob. */
  stored: boolean;
}

/** A symlink or hardlink: `target` is the archive path it names (checked to stay inside the archive). */
export interface LinkEntry {
  kind: 'link';
  path: string;
  target: string;
}

export type ArchiveEntry = FileEntry | LinkEntry | { kind: 'dir'; path: string };

/** What `docker load` and OCI tools read besides blobs: kept in memory only, never stored. */
const METADATA_FILES = new Set(['manifest.json', 'index.json', 'oci-layout', 'repositories']);
/** Docker 20.10's per-layer files (`<v1 id>/json`, `<v1 id>/VERSION`). */
const LEGACY_LAYER_FILES = new Set(['json', 'VERSION']);
/** Metadata files, configs and manifests bigger than this are refused (the store's whole-read limit). */
export const MAX_METADATA_BYTES = 4 * 1024 * 1024;
/** Small files' bytes are also kept in memory up to this many bytes in all. */
const MEMORY_BUDGET = 64 * 1024 * 1024;

function isMetadata(path: string): boolean {
  if (METADATA_FILES.has(path)) return true;
  const slash = path.indexOf('/');
  return slash > 0 && slash === path.lastIndexOf('/') && LEGACY_LAYER_FILES.has(path.slice(slash + 1));
}

/** The archive path a symlink at `path` pointing at `target` names; refuses absolute targets and targets that climb out. */
function linkTarget(path: string, target: string, hard: boolean): string {
  if (target.startsWith('/')) throw new UnsafeEntryError('image archive', path, `link to an absolute path ${JSON.stringify(target)}: it points outside the archive`);
  const parts = hard ? [] : parentOf(path).split('/').filter(Boolean);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new UnsafeEntryError('image archive', path, `link to ${JSON.stringify(target)} points outside the archive`);
      parts.pop();
    } else parts.push(part);
  }
  return parts.join('/');
}

/** A file being written: into memory (metadata) or into the store through a ref-keyed ingest, hashed both ways as it passes. */
class FileSink {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private readonly hash = createHash('sha256');
  private head: Buffer[] = [];
  private headBytes = 0;
  private compression: LayerCompression | undefined;
  private inflate?: { stream: Transform; digester: Digester; failure?: string; done: Promise<void> };
  private size = 0;

  private constructor(
    readonly path: string,
    private readonly keep: boolean,
    private readonly writer?: RefIngestWriter,
    private readonly out?: Writable,
  ) {}

  static async open(path: string, header: TarHeader, store: OciStore, budget: { left: number }): Promise<FileSink> {
    if (isMetadata(path)) {
      if (header.size > MAX_METADATA_BYTES) throw new ArchiveError(path, `${header.size} bytes, over the ${MAX_METADATA_BYTES}-byte limit for an archive's metadata file`);
      return new FileSink(path, true);
    }
    const keep = header.size <= MAX_METADATA_BYTES && header.size <= budget.left;
    if (keep) budget.left -= header.size;
    const writer = await store.writer(`load-${process.pid}-${randomBytes(8).toString('hex')}`);
    return new FileSink(path, keep, writer, writer.stream());
  }

  async write(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    this.hash.update(chunk);
    if (this.keep) {
      this.chunks.push(chunk);
      this.kept += chunk.length;
    }
    if (this.out && !this.out.write(chunk)) await once(this.out, 'drain');
    if (this.compression === undefined) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      if (this.headBytes >= 4) this.detect();
    } else await this.inflateWrite(chunk);
  }

  /** Decides the compression from the first bytes; a compressed file is also inflated and hashed (its diffID). */
  private detect(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    this.compression = this.out ? detectCompression(head) : 'none';
    if (this.compression !== 'none') {
      const stream = decompressor(this.compression);
      const digester = new Digester();
      const state: NonNullable<FileSink['inflate']> = { stream, digester, done: Promise.resolve() };
      stream.on('data', (d: Buffer) => digester.update(d));
      state.done = finished(stream).catch((err: unknown) => {
        state.failure = (err as Error).message;
      });
      this.inflate = state;
    }
    if (head.length > 0) void this.inflateWrite(head);
  }

  private async inflateWrite(chunk: Buffer): Promise<void> {
    const inflate = this.inflate;
    if (!inflate || inflate.failure !== undefined || inflate.stream.destroyed) return;
    if (!inflate.stream.write(chunk)) await Promise.race([once(inflate.stream, 'drain'), inflate.done]);
  }

  /** All bytes are in: the file's entry (a stored file is committed as a blob, leased first). */
  async finish(lease: Lease): Promise<FileEntry> {
    if (this.compression === undefined) this.detect();
    const digest = `sha256:${this.hash.digest('hex')}` as Digest;
    let diffId: Digest | undefined = digest;
    let diffIdError: string | undefined;
    if (this.inflate) {
      this.inflate.stream.end();
      await this.inflate.done;
      diffId = this.inflate.failure === undefined ? this.inflate.digester.digest() : undefined;
      diffIdError = this.inflate.failure;
    }
    let stored = false;
    if (this.writer && this.out) {
      this.out.end();
      await finished(this.out);
      await this.writer.commit(this.size, digest, { beforeCommit: (d) => lease.add(d) });
      stored = true;
    }
    const entry: FileEntry = { kind: 'file', path: this.path, size: this.size, digest, compression: this.compression!, diffId, stored };
    if (diffIdError !== undefined) entry.diffIdError = diffIdError;
    if (this.keep) entry.data = Buffer.concat(this.chunks, this.kept);
    return entry;
  }

  async abort(): Promise<void> {
    this.inflate?.stream.destroy();
    this.out?.destroy();
    await this.writer?.abort();
  }
}

/**
 * Reads an archive (plain, gzip or zstd as a whole) from `input` once, front to back, as a pipe
 * allows: each regular file goes into the store as it passes (a ref-keyed ingest, hashed while it
 * is written, committed under `lease`) and its decompressed digest is computed on the way when it
 * is compressed; metadata files stay in memory. Entry names are checked: `..`, absolute names and
 * links that point outside the archive are refused with UnsafeEntryError; an archive that ends
 * inside an entry is an ArchiveError naming it. Later entries replace earlier ones of the same
 * path, as when Docker untars the archive.
 */
export async function readArchiveEntries(input: Readable, store: OciStore, lease: Lease): Promise<Map<string, ArchiveEntry>> {
  const entries = new Map<string, ArchiveEntry>();
  const reader = new TarReader();
  const budget = { left: MEMORY_BUDGET };
  let current: FileSink | undefined;
  let currentName: string | undefined;

  const handle = async (header: TarHeader): Promise<void> => {
    const name = Buffer.from(header.name, 'latin1').toString('utf8');
    currentName = name;
    const verdict = normaliseEntryPath(name);
    if (!verdict.ok) throw new UnsafeEntryError('image archive', name, verdict.reason);
    const path = verdict.path;
    if (path === '') return;
    switch (header.type) {
      case 'dir':
        entries.set(path, { kind: 'dir', path });
        return;
      case 'symlink':
      case 'hardlink':
        entries.set(path, { kind: 'link', path, target: linkTarget(path, Buffer.from(header.linkname, 'latin1').toString('utf8'), header.type === 'hardlink') });
        return;
      case 'file':
        current = await FileSink.open(path, header, store, budget);
        return;
      default:
        return; // devices and fifos mean nothing in an image archive
    }
  };

  try {
    await pipeline(input, autoDecompressor(), async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        reader.push(chunk);
        for (let event = reader.next(); event; event = reader.next()) {
          if (event.kind === 'entry') await handle(event.header);
          else if (event.kind === 'data') await current?.write(event.chunk);
          else if (event.kind === 'hole') {
            for (let left = event.length; left > 0; left -= 1 << 20) await current?.write(Buffer.alloc(Math.min(left, 1 << 20)));
          } else if (event.kind === 'entryEnd' && current) {
            const sink = current;
            current = undefined;
            entries.set(sink.path, await sink.finish(lease));
          }
        }
      }
      reader.finish();
    });
  } catch (err) {
    await current?.abort().catch(() => {});
    if (isStratumError(err)) throw err;
    const where = current ? current.path : currentName;
    const truncated = err instanceof TarFormatError && /truncated/.test((err as Error).message);
    const reason = truncated ? `the archive ends inside this entry (truncated): ${(err as Error).message}` : `cannot read the archive here: ${(err as Error).message}`;
    throw new ArchiveError(where, reason, { cause: err });
  }
  return entries;
}
