import { close, open, read } from 'node:fs';
import { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { dropBehindReads } from './blob-stream.js';

const CHUNK = 1 << 20;
/** How long a reader at the end of the file waits before looking again when no progress was signalled. */
const IDLE_RECHECK_MS = 5;

type State = 'pending' | 'open' | 'fetched' | 'void' | 'elsewhere';

/**
 * The ingests this process is writing, and who follows them: a store's writers report here
 * (opened, bytes on disk, every byte in, restarted), so a reader can follow a blob while it
 * downloads without the downloader knowing of it. This is how pull and unpack meet: through the
 * store, as containerd's content store lets a reader follow an ingest.
 */
export class IngestBoard {
  private readonly followers = new Map<Digest, Set<IngestFollow>>();
  private readonly open = new Map<Digest, { path: string; complete: boolean }>();

  /**
   * Follows the ingest of `digest` by this process, now or once it opens. `settled` resolves when
   * the caller knows no ingest will come (the blob was stored already, or by another process:
   * true; the download failed: false), so a follower never waits for nothing.
   */
  follow(digest: Digest, settled: Promise<boolean>): IngestFollow {
    const follow = new IngestFollow(() => this.followers.get(digest)?.delete(follow));
    const current = this.open.get(digest);
    if (current) {
      follow.opened(current.path);
      if (current.complete) follow.fetched();
    }
    let set = this.followers.get(digest);
    if (!set) this.followers.set(digest, (set = new Set()));
    set.add(follow);
    settled.then(
      (ok) => follow.settled(ok),
      () => follow.settled(false),
    );
    return follow;
  }

  private each(digest: Digest, fn: (f: IngestFollow) => void): void {
    const set = this.followers.get(digest);
    if (set) for (const f of set) fn(f);
  }

  /** @internal The writer of `digest` opened its data file at `path`. */
  opened(digest: Digest, path: string): void {
    this.open.set(digest, { path, complete: false });
    this.each(digest, (f) => f.opened(path));
  }

  /** @internal More bytes of `digest` are on disk. */
  progress(digest: Digest): void {
    this.each(digest, (f) => f.progress());
  }

  /** @internal Every byte of `digest` is on disk (it is being verified). */
  fetched(digest: Digest): void {
    const current = this.open.get(digest);
    if (current) current.complete = true;
    this.each(digest, (f) => f.fetched());
  }

  /** @internal What was written of `digest` is void: truncated, discarded, or handed back for a later resume. */
  restarted(digest: Digest): void {
    this.open.delete(digest);
    this.each(digest, (f) => f.restarted());
  }

  /** @internal `digest` is committed: followers read on from the file they opened. */
  committed(digest: Digest): void {
    this.open.delete(digest);
  }
}

/**
 * One blob followed while it downloads, so its extraction can start on the first bytes instead
 * of after the last (decompress while downloading). The reader follows the ingest file (reading
 * what is on disk, waiting at its end), so a slow extraction never holds the download back and no
 * byte is buffered in memory. When the download restarts (the file is truncated or replaced) the
 * reader fails and `isVoid()` turns true: what was read may mix two attempts. A caller that checks
 * what it read against a known digest (an extraction, its diffID) may keep a result that
 * verified; one that computes a digest from it must drop the result if `isVoid()` and read the
 * verified blob instead.
 */
export class IngestFollow {
  private state: State = 'pending';
  private path: string | undefined;
  private waiters: (() => void)[] = [];

  constructor(private readonly forget: () => void) {}

  /** @internal */
  opened(dataPath: string): void {
    if (this.state === 'pending') {
      this.path = dataPath;
      this.state = 'open';
    }
    this.wake();
  }

  progress(): void {
    this.wake();
  }

  fetched(): void {
    if (this.state === 'open') this.state = 'fetched';
    this.wake();
  }

  restarted(): void {
    this.state = 'void';
    this.wake();
  }

  /** @internal The download ended: a blob that never went through an ingest here (already stored, another process) is read from the store. */
  settled(ok: boolean): void {
    if (!ok) this.state = 'void';
    else if (this.state === 'pending') this.state = 'elsewhere';
    this.forget();
    this.wake();
  }

  isVoid(): boolean {
    return this.state === 'void';
  }

  /**
   * A stream of the blob's bytes as they land, once its ingest is open; undefined when the blob
   * will not come through an ingest of this pull, or was already committed and moved.
   */
  async source(): Promise<Readable | undefined> {
    while (this.state === 'pending') await this.next();
    if (this.state !== 'open' && this.state !== 'fetched') return undefined;
    const fd = await new Promise<number | undefined>((resolve) => open(this.path!, 'r', (err, fd) => resolve(err ? undefined : fd)));
    if (fd === undefined) return undefined; // committed and renamed meanwhile: read it from the store
    return new IngestFollower(this, fd);
  }

  /** Resolves at the next signal, or after a short while (a write may land without one). */
  next(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        // Not woken: leave the list, so a long stall does not pile up waiters.
        const at = this.waiters.indexOf(done);
        if (at >= 0) this.waiters.splice(at, 1);
        resolve();
      }, IDLE_RECHECK_MS);
      this.waiters.push(done);
    });
  }

  /** Whether every byte is in the file (checked before a read, so an empty read after it is the end). */
  get complete(): boolean {
    return this.state === 'fetched';
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export class IngestVoidError extends Error {
  constructor() {
    super('the download restarted: the bytes read while it ran are void');
  }
}

/** Reads the ingest file from byte 0, waiting at its end until the download has written everything. */
class IngestFollower extends Readable {
  private position = 0;
  private readonly dropBehind: (readEnd: number, bytesRead: number) => void;
  /** A read(2) is in flight: the descriptor must stay open (its number could be reused) until it returns. */
  private reading = false;
  /** A buffer no pushed chunk points into, reused by the next read (an empty read at the file's end, a small one copied). */
  private spare: Buffer | undefined;
  private closeWhenRead: (() => void) | undefined;

  constructor(
    private readonly live: IngestFollow,
    private readonly fd: number,
  ) {
    super({ highWaterMark: CHUNK });
    this.dropBehind = dropBehindReads(fd);
  }

  override _read(): void {
    this.pump();
  }

  private pump(): void {
    if (this.destroyed) return;
    if (this.live.isVoid()) return void this.destroy(new IngestVoidError());
    const complete = this.live.complete;
    const buffer = this.spare ?? Buffer.allocUnsafe(CHUNK);
    this.spare = undefined;
    this.reading = true;
    read(this.fd, buffer, 0, CHUNK, this.position, (err, n) => {
      this.reading = false;
      if (this.closeWhenRead) return this.closeWhenRead();
      if (err) return void this.destroy(err);
      if (this.live.isVoid()) return void this.destroy(new IngestVoidError());
      this.position += n;
      this.dropBehind(this.position, n);
      if (n >= CHUNK / 4) return void this.push(n === CHUNK ? buffer : buffer.subarray(0, n));
      // Close behind the writer reads come short: copy them rather than pin a whole buffer each.
      this.spare = buffer;
      if (n > 0) return void this.push(Buffer.from(buffer.subarray(0, n)));
      if (complete) return void this.push(null);
      this.live.next().then(() => this.pump());
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const closeFd = () => close(this.fd, () => callback(err));
    if (this.reading) this.closeWhenRead = closeFd;
    else closeFd();
  }
}
