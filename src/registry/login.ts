/**
 * `docker login` / `docker logout` as library functions: credentials are checked against the
 * registry first, then stored the way docker stores them, so docker, skopeo and stratum's own
 * reader (DockerConfigCredentials) all find them.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CredentialsError, InvalidArgumentError } from '../errors.js';
import { writeFileAtomic } from '../content/layout.js';
import { RegistryClient } from './client.js';
import { credentialServerUrl, dockerConfigPath, normaliseAuthKey, StaticCredentials } from './credentials.js';
import type { RegistryConfig } from './hosts.js';

export interface LoginCredentials {
  username: string;
  password: string;
}

export interface CredentialFileOptions {
  /** config.json to read and write; default dockerConfigPath(env) ($DOCKER_CONFIG or ~/.docker). */
  configPath?: string;
  /** Environment for the credential helpers (PATH) and the default config path. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Kill a helper that takes longer. Default 30 s. */
  helperTimeoutMs?: number;
}

export interface LoginOptions extends CredentialFileOptions {
  /** Mirrors are never used; `insecure` and retries are (which hosts speak plain HTTP). */
  registryConfig?: RegistryConfig;
  /** Skip the check against the registry (store only). Default false. */
  skipCheck?: boolean;
  signal?: AbortSignal;
}

export interface LoginResult {
  /** The registry host as stratum names it (`docker.io`, `127.0.0.1:5000`). */
  registry: string;
  /** The key docker uses for it (`https://index.docker.io/v1/` for Docker Hub). */
  serverUrl: string;
  /** Where the secret went: `docker-credential-<helper>`, or the config file's path. */
  storedIn: string;
  /** False when the registry asked for no credentials at all (they are stored anyway, as docker does). */
  authenticated: boolean;
}

export interface LogoutResult {
  registry: string;
  serverUrl: string;
  /** Whether there were credentials to remove (in the helper or in the file). */
  removed: boolean;
  /** The helper asked to erase, when one is configured. */
  helper?: string;
}

interface ConfigFile {
  [key: string]: unknown;
  auths?: Record<string, Record<string, unknown>>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** `registry` as users type it (`docker.io`, `https://index.docker.io/v1/`, `127.0.0.1:5000`) → the host stratum uses. */
function registryHost(registry: string): string {
  const host = normaliseAuthKey(registry);
  if (host === '' || /\s/.test(host)) throw new InvalidArgumentError(`invalid registry ${JSON.stringify(registry)}`);
  return host;
}

/**
 * Checks `credentials` against the registry (GET /v2/, answering its 401 challenge: a token
 * requested with Basic auth, or Basic auth itself) and, when it accepts them, stores them as
 * docker does: with the credential helper config.json names for this registry (`credHelpers`,
 * else `credsStore`; docker then also leaves an empty `auths` entry naming the server), else as
 * `auths[<server url>].auth` = base64(user:password) in config.json, written atomically with
 * mode 0600 and every other key kept. Other spellings of the same registry in `auths` are
 * replaced (the reader would find them first). Refused credentials throw UnauthorizedError
 * naming the registry, and nothing is written. The password is never logged or put in an error.
 */
export async function login(registry: string, credentials: LoginCredentials, options: LoginOptions = {}): Promise<LoginResult> {
  const host = registryHost(registry);
  const { username, password } = credentials;
  if (typeof username !== 'string' || username === '' || username.includes(':')) throw new InvalidArgumentError('login needs a user name without ":"');
  if (typeof password !== 'string' || password === '') throw new InvalidArgumentError('login needs a non-empty password');
  let authenticated = true;
  if (!options.skipCheck) {
    const { mirrors: _mirrors, ...config } = options.registryConfig ?? {};
    const client = new RegistryClient({ config, credentials: new StaticCredentials({ [host]: { username, password } }) });
    try {
      authenticated = (await client.checkLogin(host, options.signal)).authenticated;
    } finally {
      await client.close();
    }
  }
  const env = options.env ?? process.env;
  const path = options.configPath ?? dockerConfigPath(env);
  const serverUrl = credentialServerUrl(host);
  const file = await readConfig(path);
  const helper = helperFor(file, host);
  if (helper) {
    await runHelper(helper, 'store', JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: password }), serverUrl, env, options.helperTimeoutMs, password);
    await updateConfig(path, (f) => setAuthsEntry(f, host, serverUrl, {}));
    return { registry: host, serverUrl, storedIn: `docker-credential-${helper}`, authenticated };
  }
  await updateConfig(path, (f) => setAuthsEntry(f, host, serverUrl, { auth: Buffer.from(`${username}:${password}`).toString('base64') }));
  return { registry: host, serverUrl, storedIn: path, authenticated };
}

/**
 * Removes the stored credentials of `registry`, as `docker logout`: `erase` in its credential
 * helper (when one is configured) and every `auths` entry for it in config.json (the other keys
 * untouched). `removed` says whether there was anything.
 */
export async function logout(registry: string, options: CredentialFileOptions = {}): Promise<LogoutResult> {
  const host = registryHost(registry);
  const env = options.env ?? process.env;
  const path = options.configPath ?? dockerConfigPath(env);
  const serverUrl = credentialServerUrl(host);
  const file = await readConfig(path);
  const helper = helperFor(file, host);
  let removed = false;
  if (helper) removed = await runHelper(helper, 'erase', serverUrl, serverUrl, env, options.helperTimeoutMs).then(
    () => true,
    (err: unknown) => {
      if (err instanceof NotStored) return false;
      throw err;
    },
  );
  if (file && Object.keys(file.auths ?? {}).some((k) => normaliseAuthKey(k) === host)) {
    await updateConfig(path, (f) => {
      const had = f.auths ? Object.entries(f.auths).filter(([k]) => normaliseAuthKey(k) === host) : [];
      for (const [k, entry] of had) {
        // An entry that held a secret counts; docker's empty `{}` beside a helper does not.
        if (!helper || Object.keys(entry ?? {}).length > 0) removed = true;
        delete f.auths![k];
      }
      return had.length > 0;
    });
  }
  return { registry: host, serverUrl, removed, ...(helper ? { helper } : {}) };
}

function helperFor(file: ConfigFile | undefined, host: string): string | undefined {
  if (!file) return undefined;
  for (const [key, name] of Object.entries(file.credHelpers ?? {})) if (normaliseAuthKey(key) === host && typeof name === 'string' && name !== '') return name;
  return typeof file.credsStore === 'string' && file.credsStore !== '' ? file.credsStore : undefined;
}

function setAuthsEntry(file: ConfigFile, host: string, serverUrl: string, entry: Record<string, unknown>): boolean {
  const auths = (file.auths ??= {});
  for (const key of Object.keys(auths)) if (key !== serverUrl && normaliseAuthKey(key) === host) delete auths[key];
  auths[serverUrl] = entry;
  return true;
}

async function readConfig(path: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CredentialsError(`cannot read ${path}: ${(err as Error).message}`);
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message can quote the file, which holds secrets.
    throw new CredentialsError(`${path} is not valid JSON; not changing it`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CredentialsError(`${path}: expected a JSON object; not changing it`);
  const file = parsed as ConfigFile;
  if (file.auths !== undefined && (typeof file.auths !== 'object' || file.auths === null || Array.isArray(file.auths))) throw new CredentialsError(`${path}: "auths" is not an object; not changing it`);
  return file;
}

/**
 * Reads config.json again, lets `change` edit it (returning whether it changed anything) and
 * writes it back atomically: a temp file beside it (mode 0600), fsynced, renamed over it. A
 * symlinked config.json is written through (its target replaced), as docker does.
 */
async function updateConfig(path: string, change: (file: ConfigFile) => boolean): Promise<void> {
  const file = (await readConfig(path)) ?? {};
  if (!change(file)) return;
  let target = path;
  try {
    target = await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CredentialsError(`cannot resolve ${path}: ${(err as Error).message}`);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  }
  try {
    await writeFileAtomic(target, JSON.stringify(file, null, '\t') + '\n');
  } catch (err) {
    throw new CredentialsError(`cannot write ${target}: ${(err as Error).message}`);
  }
}

/** The helper said it has nothing for this server (erase of an unknown one). */
class NotStored extends Error {}

/**
 * Runs `docker-credential-<helper> <action>` with `input` on stdin. Errors name the helper, the
 * action and the server, never stdin (it holds the secret for `store`).
 */
function runHelper(helper: string, action: 'store' | 'erase', input: string, serverUrl: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000, secret?: string): Promise<void> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    const output: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => output.push(c));
    child.stderr.on('data', (c: Buffer) => output.push(c));
    child.stdin.on('error', () => {});
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new CredentialsError(`credential helper ${program} ${action} for ${serverUrl} failed: ${err.code === 'ENOENT' ? `${program} is not on PATH` : err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve();
        return;
      }
      const text = Buffer.concat(output).toString('utf8');
      if (action === 'erase' && /credentials not found/i.test(text)) {
        reject(new NotStored());
        return;
      }
      // The helper's own message helps (one line, capped; the secret masked should it echo it).
      let said = text.trim().split('\n')[0]?.slice(0, 200);
      if (said && secret && said.includes(secret)) said = said.split(secret).join('***');
      reject(new CredentialsError(`credential helper ${program} ${action} for ${serverUrl} failed: ${signal ? `killed by ${signal}` : `exit code ${code}`}${said ? ` (${said})` : ''}`));
    });
    child.stdin.end(input);
  });
}
