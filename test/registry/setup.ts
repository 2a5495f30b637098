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
    const fixtures = await pushFixtures(registry);
    const bytes = randomBytes(BIG_BLOB_SIZE);
    const digest = digestOf(bytes);
    await uploadBlob(registry, 'library/app', digest, { bytes });
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
