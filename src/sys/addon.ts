import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeAddonError } from '../errors.js';

/**
 * The raw exports of build/Release/stratum.node (native/*.c). Only src/sys uses these; everyone
 * else goes through the typed NativeBinding of native.ts, which encodes batches and types errors.
 */
export interface RawAddon {
  applyProgram(rootFd: number, program: Buffer, datas: Buffer[]): Promise<void>;
  openRoot(path: string): number;
  closeFd(fd: number): void;
  createFile(rootFd: number, path: string | Buffer, mode: number): number;
  finishFile(fd: number, meta: object, path?: string): void;
  lgetxattrs(absPath: string | Buffer): Record<string, Buffer>;
  lsetxattr(absPath: string, name: string, value: Buffer): void;
  mountOverlayPaths(target: string, lowers: string[], upper: string | null, work: string | null, flags: string[]): void;
  bindMount(source: string, target: string, readonly: boolean): void;
  mountErofs(source: string, target: string): void;
  unmount(target: string, detach: boolean): void;
  digestCreate(fd: number, algorithm: string, dropBehind: boolean, name?: string): DigestHandle;
  dropCache(fd: number, offset: number, length: number): void;
  batchPoolThreads(): void;
  /** Resolves with the number of bytes written (write = true) or hashed. */
  digestWrite(handle: DigestHandle, buffers: Buffer[], write: boolean): Promise<number>;
  digestFinal(handle: DigestHandle): string;
  /** An OpenSSL client context (native/tls.c): trust exactly `ca`, verify unless rejectUnauthorized is false; `plain`: no TLS at all. */
  tlsContext(options: { ca: string[]; roots?: boolean; cert?: string; key?: string; rejectUnauthorized?: boolean } | { plain: true }): TlsContextHandle;
  /** Parses the roots every context may share (`roots: true`) on the pool, once per process; resolves with their count. */
  tlsLoadRoots(pems: string): Promise<number>;
  /** Connects, handshakes (peer name checked against `host`), sends `head`, resolves with the response head; `conn`: a kept-alive connection to send it on instead (a new one if the peer closed it). */
  tlsRequest(
    ctx: TlsContextHandle,
    options: { address: string; port: number; host: string; head: Buffer; connectTimeoutMs?: number; timeoutMs?: number; conn?: TlsConnHandle },
  ): Promise<{ conn: TlsConnHandle; head: Buffer; alpn: string; protocol: string }> & { conn: TlsConnHandle };
  /** Shuts the connection's socket down: a job waiting on it rejects with an AbortError (close it with tlsClose after). */
  tlsAbort(conn: TlsConnHandle): void;
  /** Receives what is ready of the body (waiting for the first bytes), up to maxBytes, into the digest handle's file and hash; 0 at end of stream. A rejection carries `bytes`. */
  tlsReceive(conn: TlsConnHandle, digest: DigestHandle, maxBytes: number): Promise<number>;
  /** What arrived (up to maxBytes), empty at end of stream: bodies JavaScript reads itself. */
  tlsRead(conn: TlsConnHandle, maxBytes: number): Promise<Buffer>;
  tlsClose(conn: TlsConnHandle): void;
}

export type TlsContextHandle = { readonly __tlsContext: unique symbol };
export type TlsConnHandle = { readonly __tlsConn: unique symbol };

/** Opaque N-API external holding an EVP_MD_CTX. */
export type DigestHandle = { readonly __digestHandle: unique symbol };

/** build/Release/stratum.node of the package this file belongs to (dist/src/sys → repo root). */
export const ADDON_PATH = fileURLToPath(new URL('../../../build/Release/stratum.node', import.meta.url));

let loaded: RawAddon | undefined;

/** Loads the addon once; missing or broken is an error, never a silent fallback. */
export function rawAddon(): RawAddon {
  if (loaded) return loaded;
  if (!existsSync(ADDON_PATH)) {
    throw new NativeAddonError(`native addon not built: ${ADDON_PATH} is missing; run npm rebuild (node-gyp, with nodedir=/usr)`);
  }
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as RawAddon;
  } catch (err) {
    throw new NativeAddonError(`native addon ${ADDON_PATH} does not load: ${(err as Error).message}; run npm rebuild`, { cause: err });
  }
  return loaded;
}
