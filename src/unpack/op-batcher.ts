import type { FsOp, NativeBinding } from '../sys/native.js';

/** A batch goes out at whichever comes first: this many ops, or this many bytes of inline file data. */
export const BATCH_MAX_OPS = 1024;
export const BATCH_MAX_BYTES = 1 << 20;

/**
 * Collects filesystem ops and hands them to the addon in batches, one batch in flight while the
 * next is being parsed: decompression and tar parsing overlap the syscalls on the worker thread.
 */
export class OpBatcher {
  private ops: FsOp[] = [];
  private bytes = 0;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly binding: Pick<NativeBinding, 'applyBatch'>,
    private readonly rootFd: number,
  ) {}

  add(op: FsOp, dataBytes = 0): void {
    this.ops.push(op);
    this.bytes += dataBytes;
  }

  get full(): boolean {
    return this.ops.length >= BATCH_MAX_OPS || this.bytes >= BATCH_MAX_BYTES;
  }

  /** Waits for the batch in flight (throwing its error), then sends the current one. */
  async dispatch(): Promise<void> {
    if (this.inflight) {
      const previous = this.inflight;
      this.inflight = null;
      await previous;
    }
    if (this.ops.length === 0) return;
    const ops = this.ops;
    this.ops = [];
    this.bytes = 0;
    this.inflight = this.binding.applyBatch(this.rootFd, ops);
    // Rejections surface at the next await; this keeps Node from calling them unhandled meanwhile.
    this.inflight.catch(() => {});
  }

  /** Everything added so far is on disk when this resolves. */
  async flush(): Promise<void> {
    await this.dispatch();
    if (this.inflight) {
      const last = this.inflight;
      this.inflight = null;
      await last;
    }
  }

  /** After a failure: lets the batch in flight finish (its fd use must end before the root closes). */
  async settle(): Promise<void> {
    this.ops = [];
    if (this.inflight) await this.inflight.catch(() => {});
    this.inflight = null;
  }
}
