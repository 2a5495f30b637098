import { StratumError } from '../errors.js';
import { rawAddon, type RawAddon } from './addon.js';
import type { DigestWriter } from './native.js';

/**
 * How long a receive on the thread pool waits for the first byte before it hands the waiting to
 * the event loop: on a fast link the next bytes come within this, and a round trip through the
 * loop is saved; on a slow one no pool thread is held for longer.
 */
const POOL_WAIT_MS = 5;
/** A connect in progress is checked this often for close(). */
const CONNECT_SLICE_MS = 100;

/**
 * A TCP connection that libuv does not own (native/socket.c): non-blocking calls, waits on the
 * event loop (uv_poll), and a receive that takes a body from the socket to a file and its hash
 * on the thread pool (DigestWriter.receive) without a JavaScript chunk per read. Failures carry
 * errno codes as Node's socket errors do (ECONNREFUSED, ECONNRESET, ETIMEDOUT). One operation at
 * a time; close() wakes a waiting one and closes the descriptor only once it has returned, so
 * the number is never reused under it.
 */
export class NativeSocket {
  private pending: Promise<unknown> = Promise.resolve();
  private busy = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly raw: RawAddon,
    readonly fd: number,
    /** `127.0.0.1:5000`, for messages. */
    readonly peer: string,
  ) {}

  /** `address`: a numeric IPv4 or IPv6 address (resolve names first). An abort is noticed within 100 ms. */
  static async connect(address: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<NativeSocket> {
    const raw = rawAddon();
    const peer = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    const socket = new NativeSocket(raw, raw.sockConnect(address, port), peer);
    try {
      await socket.run(async () => {
        for (let waited = 0; ; waited += CONNECT_SLICE_MS) {
          if (signal?.aborted) throw signal.reason;
          if (socket.closing) throw new StratumError('ERR_NETWORK', `connection to ${peer} closed while connecting`);
          if (waited >= timeoutMs) throw Object.assign(new Error(`cannot connect to ${peer}: no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
          try {
            await raw.sockWait(socket.fd, true, Math.min(CONNECT_SLICE_MS, timeoutMs - waited));
            break;
          } catch (err) {
            if ((err as { code?: string }).code !== 'ETIMEDOUT') throw err;
          }
        }
        raw.sockError(socket.fd, `cannot connect to ${peer}`);
      });
    } catch (err) {
      await socket.close();
      throw err;
    }
    return socket;
  }

  send(data: Buffer, timeoutMs: number): Promise<void> {
    return this.run(async () => {
      for (let at = 0; at < data.length; ) {
        const n = this.raw.sockSend(this.fd, data.subarray(at));
        at += n;
        if (n === 0) await this.raw.sockWait(this.fd, true, timeoutMs);
      }
    });
  }

  /** What is there (at most maxBytes) once something is; empty at end of stream. Rejects ETIMEDOUT after timeoutMs of silence. */
  recv(maxBytes: number, timeoutMs: number): Promise<Buffer> {
    return this.run(async () => {
      for (;;) {
        const chunk = this.raw.sockRecv(this.fd, maxBytes);
        if (chunk) return chunk;
        await this.raw.sockWait(this.fd, false, timeoutMs);
      }
    });
  }

  /** Up to maxBytes into the writer's file and hash; 0 at end of stream. Rejects ETIMEDOUT after timeoutMs of silence. */
  receiveInto(writer: DigestWriter, maxBytes: number, timeoutMs: number): Promise<number> {
    return this.run(async () => {
      for (;;) {
        const n = await writer.receive(this.fd, maxBytes, POOL_WAIT_MS);
        if (n >= 0) return n;
        await this.raw.sockWait(this.fd, false, timeoutMs);
      }
    });
  }

  /** Shuts the connection down (a waiting operation returns) and closes the descriptor once nothing uses it. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.busy) this.raw.sockShutdown(this.fd);
      await this.pending;
      this.raw.closeFd(this.fd);
    })();
    return this.closing;
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    if (this.busy) return Promise.reject(new StratumError('ERR_INVALID_ARGUMENT', `socket to ${this.peer}: an operation is still running`));
    if (this.closing) return Promise.reject(new StratumError('ERR_NETWORK', `socket to ${this.peer} is closed`));
    this.busy = true;
    const p = op().finally(() => {
      this.busy = false;
    });
    this.pending = p.catch(() => {});
    return p;
  }
}
