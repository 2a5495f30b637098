import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Engine } from '../engine/engine.js';

export interface GlobalFlags {
  store?: string;
  snapshotter?: string;
  'snapshot-root'?: string;
  config?: string;
  mirror?: string[];
  'insecure-registry'?: string[];
  concurrency?: string;
}

export const GLOBAL_OPTIONS = {
  store: { type: 'string' },
  snapshotter: { type: 'string' },
  'snapshot-root': { type: 'string' },
  config: { type: 'string' },
  mirror: { type: 'string', multiple: true },
  'insecure-registry': { type: 'string', multiple: true },
  concurrency: { type: 'string' },
} as const;

/** parseArgs with positionals allowed and the global options merged in: every command's start. */
export function parseCommand<const T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
): ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof GLOBAL_OPTIONS & T }>> {
  return parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS, ...options } });
}

/**
 * The Engine for the global flags: the CLI's only way into the store. Every policy (config file
 * lookup, mirror precedence, the store's storage driver, where snapshots live) is the Engine's.
 */
export function openEngine(flags: GlobalFlags): Promise<Engine> {
  return Engine.open({
    ...(flags.store !== undefined ? { root: flags.store } : {}),
    ...(flags.snapshotter !== undefined && flags.snapshotter !== '' ? { storageDriver: flags.snapshotter, storageDriverSource: '--snapshotter' } : {}),
    ...(flags['snapshot-root'] !== undefined ? { snapshotRoot: flags['snapshot-root'] } : {}),
    ...(flags.config !== undefined ? { configFile: flags.config } : {}),
    ...(flags.mirror !== undefined ? { mirrors: flags.mirror } : {}),
    ...(flags['insecure-registry'] !== undefined ? { insecureRegistries: flags['insecure-registry'] } : {}),
    ...(flags.concurrency !== undefined ? { concurrency: parsePositiveInt(flags.concurrency, '--concurrency') } : {}),
    // For commands that stream layers: the thread pool's bulk work yields to the main thread.
    batchPoolThreads: true,
    onWarning: (message) => process.stderr.write(`stratum: warning: ${message}\n`),
  });
}

/** Runs fn with the Engine for these flags, closing it after. */
export async function withEngine<T>(flags: GlobalFlags, fn: (engine: Engine) => Promise<T>): Promise<T> {
  const engine = await openEngine(flags);
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

export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
}
