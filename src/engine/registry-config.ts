import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { loadRegistryConfig, parseMirrorFlag, type RegistryConfig } from '../registry/hosts.js';

export interface RegistrySettings {
  /** Registry configuration file; default $STRATUM_CONFIG, else $XDG_CONFIG_HOME/stratum/config.json when it exists. */
  configFile?: string;
  /** Settings given directly; the file's are read under them. */
  config?: RegistryConfig;
  /** Mirrors as `--mirror` takes them (`[REGISTRY=]URL`): tried before the configured ones, in this order. */
  mirrors?: string[];
  /** Hosts allowed over plain HTTP (loopback always is). */
  insecureRegistries?: string[];
  /** Layers downloaded at once. */
  concurrency?: number;
}

/** The configuration file in effect: the one given, else $STRATUM_CONFIG, else the XDG one when it exists. */
export function registryConfigPath(configFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (configFile) return configFile;
  if (env.STRATUM_CONFIG) return env.STRATUM_CONFIG;
  const xdg = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  const path = join(xdg, 'stratum', 'config.json');
  return existsSync(path) ? path : undefined;
}

/**
 * The registry settings in effect, by precedence: mirrors named directly come first in the order
 * given, then the file's; insecure hosts add up; a concurrency given directly wins.
 */
export async function resolveRegistryConfig(settings: RegistrySettings, env: NodeJS.ProcessEnv = process.env): Promise<RegistryConfig> {
  const path = registryConfigPath(settings.configFile, env);
  const fromFile: RegistryConfig = path ? await loadRegistryConfig(path) : {};
  const config: RegistryConfig = { ...fromFile, ...(settings.config ?? {}) };
  const mirrors: Record<string, string[]> = { ...(fromFile.mirrors ?? {}), ...(settings.config?.mirrors ?? {}) };
  for (const flag of [...(settings.mirrors ?? [])].reverse()) {
    const { registry, url } = parseMirrorFlag(flag);
    mirrors[registry] = [url, ...(mirrors[registry] ?? []).filter((u) => u !== url)];
  }
  const insecure = [...(fromFile.insecure ?? []), ...(settings.config?.insecure ?? []), ...(settings.insecureRegistries ?? [])];
  if (settings.concurrency !== undefined && (!Number.isInteger(settings.concurrency) || settings.concurrency < 1)) {
    throw new InvalidArgumentError(`concurrency must be a whole number of at least 1, got ${settings.concurrency}`);
  }
  const concurrency = settings.concurrency ?? config.concurrency;
  return { ...config, mirrors, insecure, ...(concurrency !== undefined ? { concurrency } : {}) };
}
