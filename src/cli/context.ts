import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OciStore, defaultStoreRoot } from '../oci/store.js';
import { RegistryClient } from '../registry/client.js';
import { loadNative } from '../sys/native.js';
import { defaultSnapshotter, openSnapshotter, type SnapshotterName } from '../snapshotter/index.js';
import type { Snapshotter } from '../snapshotter/snapshotter.js';
import { DockerConfigCredentials } from '../registry/credentials.js';
import { loadRegistryConfig, parseMirrorFlag, type RegistryConfig } from '../registry/hosts.js';

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

export function openStore(flags: GlobalFlags, env = process.env): Promise<OciStore> {
  return OciStore.open(flags.store ?? defaultStoreRoot(env));
}

/** `--config`, else $STRATUM_CONFIG, else $XDG_CONFIG_HOME/stratum/config.json when it exists. */
export function configPath(flags: GlobalFlags, env = process.env): string | undefined {
  if (flags.config) return flags.config;
  if (env.STRATUM_CONFIG) return env.STRATUM_CONFIG;
  const xdg = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  const path = join(xdg, 'stratum', 'config.json');
  return existsSync(path) ? path : undefined;
}

export async function registryConfig(flags: GlobalFlags, env = process.env): Promise<RegistryConfig> {
  const path = configPath(flags, env);
  const config: RegistryConfig = path ? await loadRegistryConfig(path) : {};
  const mirrors: Record<string, string[]> = { ...(config.mirrors ?? {}) };
  // Mirrors named on the command line come before those of the config file, in the order given.
  for (const flag of [...(flags.mirror ?? [])].reverse()) {
    const { registry, url } = parseMirrorFlag(flag);
    mirrors[registry] = [url, ...(mirrors[registry] ?? []).filter((u) => u !== url)];
  }
  const insecure = [...(config.insecure ?? []), ...(flags['insecure-registry'] ?? [])];
  const concurrency = flags.concurrency !== undefined ? parsePositiveInt(flags.concurrency, '--concurrency') : config.concurrency;
  return { ...config, mirrors, insecure, ...(concurrency !== undefined ? { concurrency } : {}) };
}

export async function registryClient(flags: GlobalFlags): Promise<{ client: RegistryClient; config: RegistryConfig }> {
  const config = await registryConfig(flags);
  // Credentials come from Docker's config.json ($DOCKER_CONFIG or ~/.docker): auths, credsStore, credHelpers.
  return { client: new RegistryClient({ config, credentials: new DockerConfigCredentials() }), config };
}

export function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a whole number of at least 1, got ${JSON.stringify(value)}`);
  return n;
}

export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
}

const SNAPSHOTTERS: readonly SnapshotterName[] = ['overlay', 'native', 'btrfs', 'zfs'];

/** `--snapshotter`, else $STRATUM_SNAPSHOTTER, else overlay where the kernel allows it, else native. */
export async function snapshotterName(flags: GlobalFlags, env = process.env): Promise<SnapshotterName> {
  const name = flags.snapshotter ?? env.STRATUM_SNAPSHOTTER;
  if (name === undefined || name === '') return defaultSnapshotter();
  if (!(SNAPSHOTTERS as readonly string[]).includes(name)) throw new UsageError(`--snapshotter must be one of ${SNAPSHOTTERS.join(', ')}, got ${JSON.stringify(name)}`);
  return name as SnapshotterName;
}

/** Snapshots live beside the content: `<store>/snapshots/<name>`, or `--snapshot-root` / $STRATUM_SNAPSHOT_ROOT. */
export function snapshotRoot(store: OciStore, name: SnapshotterName, flags: GlobalFlags, env = process.env): string {
  return flags['snapshot-root'] ?? (env.STRATUM_SNAPSHOT_ROOT || join(store.root, 'snapshots', name));
}

/** For commands that stream layers: the thread pool's bulk work yields to the main thread (batchPoolThreads). */
export function preferMainThread(): void {
  loadNative().batchPoolThreads();
}

/**
 * Every snapshotter this store has used (`STORE/snapshots/<name>`, and the `--snapshot-root` one),
 * opened without reclaiming anything, for commands that look after the whole store (gc, fsck).
 * One that cannot be opened here (a btrfs root off btrfs) is skipped with a warning.
 */
export async function openExistingSnapshotters(store: OciStore, flags: GlobalFlags, env = process.env): Promise<Snapshotter[]> {
  const roots = new Map<string, SnapshotterName>();
  for (const name of SNAPSHOTTERS) {
    const root = join(store.root, 'snapshots', name);
    if (existsSync(root)) roots.set(root, name);
  }
  const chosen = await snapshotterName(flags, env);
  const explicit = snapshotRoot(store, chosen, flags, env);
  if (existsSync(explicit)) roots.set(explicit, chosen);
  const out: Snapshotter[] = [];
  for (const [root, name] of roots) {
    try {
      out.push(await openSnapshotter(name, root, { reclaim: false }));
    } catch (err) {
      process.stderr.write(`stratum: warning: cannot open the ${name} snapshotter at ${root}: ${(err as Error).message}\n`);
    }
  }
  return out;
}

export async function openImageSnapshotter(flags: GlobalFlags, store: OciStore, env = process.env): Promise<Snapshotter> {
  preferMainThread();
  const name = await snapshotterName(flags, env);
  return openSnapshotter(name, snapshotRoot(store, name, flags, env));
}
