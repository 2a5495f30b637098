import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../errors.js';

/**
 * TLS material for one registry host, found the way Docker, containerd and podman find it: a
 * directory per host under `certs.d/` holding `*.crt` (certificate authorities to trust, besides
 * the system's) and `*.cert` + `*.key` pairs (client certificates), e.g.
 * `/etc/docker/certs.d/registry.example:5000/ca.crt`.
 */
export interface HostTls {
  /** PEM certificate authorities, each with the file it came from. */
  ca: { pem: string; source: string }[];
  /** The client certificate presented to the host (Docker uses the first pair too). */
  client?: { cert: string; key: string; source: string };
}

/** Where certs.d directories are looked up, in order: stratum's own, then Docker's, then containers'. */
export function defaultCertsDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.STRATUM_CERTS_D !== undefined && env.STRATUM_CERTS_D !== '') return env.STRATUM_CERTS_D.split(':').filter(Boolean);
  const xdg = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return [join(xdg, 'stratum', 'certs.d'), '/etc/docker/certs.d', '/etc/containers/certs.d'];
}

/**
 * The certificates of `hostPort` (`host` or `host:port`, as references name registries) from the
 * first certs.d directory that has a directory for it. A `.cert` without its `.key` (or the
 * reverse) is an error naming both files, as Docker's is.
 */
export function certsDirFor(hostPort: string, certsDirs: readonly string[]): HostTls | undefined {
  for (const root of certsDirs) {
    const dir = join(root, hostPort);
    let names: string[];
    try {
      if (!statSync(dir).isDirectory()) continue;
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    const tls: HostTls = { ca: [] };
    for (const name of names) {
      const path = join(dir, name);
      if (name.endsWith('.crt')) tls.ca.push({ pem: readPem(path, 'a CA certificate'), source: path });
      else if (name.endsWith('.cert')) {
        const keyPath = join(dir, `${name.slice(0, -'.cert'.length)}.key`);
        if (!names.includes(`${name.slice(0, -'.cert'.length)}.key`)) throw new ConfigError(path, '(file)', `client certificate without its key: ${keyPath} is missing`);
        tls.client ??= { cert: readPem(path, 'a client certificate'), key: readPem(keyPath, 'a private key'), source: path };
      } else if (name.endsWith('.key')) {
        const certPath = join(dir, `${name.slice(0, -'.key'.length)}.cert`);
        if (!names.includes(`${name.slice(0, -'.key'.length)}.cert`)) throw new ConfigError(path, '(file)', `private key without its client certificate: ${certPath} is missing`);
      }
    }
    return tls;
  }
  return undefined;
}

/** Reads a PEM file (a config's `ca`, `client` paths too); an unreadable or non-PEM file is a ConfigError naming it. */
export function readPem(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, '(file)', `cannot read ${what}: ${(err as Error).message}`);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(path, '(file)', `not ${what} in PEM form (no -----BEGIN line)`);
  return text;
}
