import { Engine } from '../engine/engine.js';
import { NotFoundError } from '../errors.js';
import { UsageError } from './args.js';

export { UsageError };

export interface GlobalFlags {
  store?: string;
  snapshotter?: string;
  'snapshot-root'?: string;
  config?: string;
  mirror?: string[];
  'insecure-registry'?: string[];
  'storage-opt'?: string[];
  concurrency?: string;
  debug?: boolean;
}

export interface OpenOptions {
  /**
   * A command that only reads: a store named by --store or $STRATUM_STORE must already exist
   * (a mistyped path must not become a new, empty store).
   */
  existing?: boolean;
}

/**
 * The Engine for the global flags: the CLI's only way into the store. Every policy (config file
 * lookup, mirror precedence, the store's storage driver, where snapshots live) is the Engine's.
 */
export async function openEngine(flags: GlobalFlags, options: OpenOptions = {}): Promise<Engine> {
  const explicit = flags.store ?? (process.env.STRATUM_STORE || undefined);
  try {
    return await openWith(flags, options.existing === true && explicit !== undefined, explicit);
  } catch (err) {
    // Say which setting named the missing store.
    if (err instanceof NotFoundError && err.message.startsWith('no store at ')) throw new NotFoundError(err.message.replace(/:/, flags.store !== undefined ? ' (--store):' : ' ($STRATUM_STORE):'));
    throw err;
  }
}

function openWith(flags: GlobalFlags, mustExist: boolean, explicit: string | undefined): Promise<Engine> {
  return Engine.open({
    ...(explicit !== undefined ? { root: explicit } : {}),
    ...(mustExist ? { mustExist } : {}),
    ...(flags.snapshotter !== undefined && flags.snapshotter !== '' ? { storageDriver: flags.snapshotter, storageDriverSource: '--snapshotter' } : {}),
    ...(flags['storage-opt'] !== undefined ? { storageOpts: flags['storage-opt'] } : {}),
    ...(flags['snapshot-root'] !== undefined ? { snapshotRoot: flags['snapshot-root'] } : {}),
    ...(flags.config !== undefined ? { configFile: flags.config } : {}),
    ...(flags.mirror !== undefined ? { mirrors: flags.mirror } : {}),
    ...(flags['insecure-registry'] !== undefined ? { insecureRegistries: flags['insecure-registry'] } : {}),
    ...(flags.concurrency !== undefined ? { concurrency: parsePositiveInt(flags.concurrency, '--concurrency') } : {}),
    // For commands that stream layers: the thread pool's bulk work yields to the main thread.
    batchPoolThreads: true,
    onWarning: (message) => process.stderr.write(`stratum: warning: ${message}\n`),
    ...(flags.debug ? { onDebug: (message: string) => process.stderr.write(`stratum: debug: ${message}\n`) } : {}),
  });
}

/** Runs fn with the Engine for these flags, closing it after. */
export async function withEngine<T>(flags: GlobalFlags, fn: (engine: Engine) => Promise<T>, options: OpenOptions = { existing: true }): Promise<T> {
  const engine = await openEngine(flags, options);
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

export function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a whole number of at least 1, got ${JSON.stringify(value)}`);
  return n;
}
