import { randomBytes } from 'node:crypto';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { parseReference, type Reference } from '../../src/oci/reference.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';
import { uploadBlob } from '../fixtures/push.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/** A real registry with the fixtures pushed, a fault proxy in front of it, and one bigger random blob. */
export interface RegistryRig {
  registry: TestRegistry;
  proxy: FaultProxy;
  fixtures: PushedFixtures;
  /** A random blob in library/app (big enough to be cut mid-stream). */
  blob: { digest: Digest; bytes: Buffer; ref: Reference };
  /** `<proxy host>/<repoAndTag>` */
  ref(repoAndTag: string): Reference;
  stop(): Promise<void>;
}

export const BIG_BLOB_SIZE = 3 * 1024 * 1024 + 123;

export async function startRig(opts: { schema1?: boolean } = {}): Promise<RegistryRig> {
  const registry = await startRegistry({ schema1: opts.schema1 ?? false });
  let proxy: FaultProxy | undefined;
  try {
    const fixtures = await withoutExplicitContentLength(() => pushFixtures(registry));
    const bytes = randomBytes(BIG_BLOB_SIZE);
    const digest = digestOf(bytes);
    await withoutExplicitContentLength(() => uploadBlob(registry, 'library/app', digest, { bytes }));
    proxy = await FaultProxy.start(registry.url);
    const p = proxy;
    const ref = (repoAndTag: string) => parseReference(`${p.host}/${repoAndTag}`);
    return {
      registry,
      proxy,
      fixtures,
      blob: { digest, bytes, ref: ref('library/app:1') },
      ref,
      stop: async () => {
        await p.stop();
        await registry.stop();
      },
    };
  } catch (err) {
    await proxy?.stop();
    await registry.stop();
    throw err;
  }
}

/** Fast retries for tests. */
export const FAST_RETRIES = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 5000 };

/**
 * Importing undici 7 installs its Agent as the global dispatcher, which Node 20's built-in fetch
 * then uses; that Agent refuses a request whose content-length was given by the caller and also
 * computed by fetch ("invalid content-length header"). The fixture pusher sets it on blob PUTs,
 * so while it runs, fetch calls with a Buffer body get the header dropped (fetch sets it itself).
 */
async function withoutExplicitContentLength<T>(fn: () => Promise<T>): Promise<T> {
  const original = globalThis.fetch;
  globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    if (init?.body instanceof Uint8Array && init.headers && !(init.headers instanceof Headers) && !Array.isArray(init.headers)) {
      const headers = Object.fromEntries(Object.entries(init.headers).filter(([k]) => k.toLowerCase() !== 'content-length'));
      init = { ...init, headers };
    }
    return original(input, init);
  }) as typeof fetch;
  try {
    return await fn();
  } finally {
    globalThis.fetch = original;
  }
}
