import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CredentialsError } from '../errors.js';
import { DOCKER_HUB } from './hosts.js';

/** Either a user name + password, or an OAuth2 identity (refresh) token as `docker login` stores for some registries. */
export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
}

export interface CredentialSource {
  /** Credentials for a registry host (`docker.io`, `127.0.0.1:5000`), or undefined to go anonymous. */
  get(registry: string): Promise<Credentials | undefined>;
}

/** Fixed credentials per registry host (tests, flags, library callers). */
export class StaticCredentials implements CredentialSource {
  constructor(private readonly table: Record<string, Credentials>) {}
  async get(registry: string): Promise<Credentials | undefined> {
    return this.table[registry];
  }
}

export const NO_CREDENTIALS: CredentialSource = { get: async () => undefined };

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG ? env.DOCKER_CONFIG : join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/** The server URL docker hands to credential helpers and uses as the `auths` key. */
export function credentialServerUrl(registry: string): string {
  return registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
}

/** `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/path` → `host:5000`. */
export function normaliseAuthKey(key: string): string {
  let host = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  if (host === 'index.docker.io' || host === 'registry-1.docker.io' || host === 'registry.hub.docker.com') return DOCKER_HUB;
  return host;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

export interface DockerConfigCredentialsOptions {
  /** Path of config.json; default dockerConfigPath(env). */
  configPath?: string;
  /** Environment for the helpers (PATH decides which docker-credential-* runs). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Kill a helper that takes longer. Default 30 s. */
  helperTimeoutMs?: number;
}

/**
 * Docker's own credential lookup: `credHelpers[registry]`, else `credsStore`, else `auths`.
 * A missing config.json means anonymous. Results are cached per registry for the life of the object.
 */
export class DockerConfigCredentials implements CredentialSource {
  private readonly configPath: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly helperTimeoutMs: number;
  private config?: Promise<DockerConfigFile | undefined>;
  private readonly cache = new Map<string, Promise<Credentials | undefined>>();

  constructor(options: DockerConfigCredentialsOptions = {}) {
    this.env = options.env ?? process.env;
    this.configPath = options.configPath ?? dockerConfigPath(this.env);
    this.helperTimeoutMs = options.helperTimeoutMs ?? 30_000;
  }

  get(registry: string): Promise<Credentials | undefined> {
    const key = normaliseAuthKey(registry);
    let hit = this.cache.get(key);
    if (!hit) {
      hit = this.lookup(key);
      this.cache.set(key, hit);
      hit.catch(() => this.cache.delete(key));
    }
    return hit;
  }

  private async lookup(registry: string): Promise<Credentials | undefined> {
    const config = await this.loadConfig();
    if (!config) return undefined;
    const helper = findByRegistry(config.credHelpers, registry) ?? config.credsStore;
    if (helper) {
      const fromHelper = await runCredentialHelper(helper, credentialServerUrl(registry), this.env, this.helperTimeoutMs);
      if (fromHelper) return fromHelper;
    }
    const entry = findByRegistry(config.auths, registry);
    if (!entry) return undefined;
    const out: Credentials = {};
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new CredentialsError(`${this.configPath}: auths entry for ${registry}: "auth" is not base64 of user:password`);
      out.username = decoded.slice(0, colon);
      out.password = decoded.slice(colon + 1);
    }
    if (entry.username) out.username = entry.username;
    if (entry.password) out.password = entry.password;
    if (entry.identitytoken) out.identityToken = entry.identitytoken;
    return out.username || out.identityToken ? out : undefined;
  }

  private loadConfig(): Promise<DockerConfigFile | undefined> {
    this.config ??= (async () => {
      let text: string;
      try {
        text = await readFile(this.configPath, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new CredentialsError(`cannot read ${this.configPath}: ${(err as Error).message}`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        // The parser's message can quote the file's content, which may hold secrets.
        throw new CredentialsError(`${this.configPath} is not valid JSON`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new CredentialsError(`${this.configPath}: expected a JSON object`);
      }
      return parsed as DockerConfigFile;
    })();
    return this.config;
  }
}

function findByRegistry<T>(table: Record<string, T> | undefined, registry: string): T | undefined {
  if (!table) return undefined;
  for (const [key, value] of Object.entries(table)) {
    if (normaliseAuthKey(key) === registry) return value;
  }
  return undefined;
}

/**
 * Runs `docker-credential-<helper> get` with the server URL on stdin. Returns undefined when the
 * helper has nothing for this server ("credentials not found"). Errors name the helper and the
 * server, never stdout (which would hold the secret).
 */
export function runCredentialHelper(
  helper: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 30_000,
): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    // Own timer rather than spawn's `timeout`, whose timer outlives a helper that failed to start.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.stdin.on('error', () => {}); // a helper that exits without reading stdin
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ENOENT' ? `${program} is not on PATH` : err.message;
      reject(new CredentialsError(`credential helper ${program} for ${serverUrl} failed: ${why}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout).toString('utf8').trim();
      if (code !== 0) {
        // docker-credential-helpers print this exact text on stdout for an unknown server.
        if (/credentials not found/i.test(out) || /credentials not found/i.test(Buffer.concat(stderr).toString('utf8'))) {
          resolve(undefined);
          return;
        }
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        reject(new CredentialsError(`credential helper ${program} for ${serverUrl} failed: ${why}`));
        return;
      }
      let parsed: { Username?: unknown; Secret?: unknown };
      try {
        parsed = JSON.parse(out);
      } catch {
        reject(new CredentialsError(`credential helper ${program} for ${serverUrl} printed something that is not JSON`));
        return;
      }
      if (typeof parsed.Secret !== 'string' || parsed.Secret === '') {
        resolve(undefined);
        return;
      }
      const username = typeof parsed.Username === 'string' ? parsed.Username : '';
      // Docker's convention: Username "<token>" means Secret is an identity token.
      resolve(username === '<token>' ? { identityToken: parsed.Secret } : { username, password: parsed.Secret });
    });
    child.stdin.end(serverUrl);
  });
}
