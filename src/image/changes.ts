import { posix } from 'node:path';
import { InvalidChangeError } from '../errors.js';

/**
 * The runtime fields of an image config (its `config` object) that a build sets, under Docker's
 * names. In `withConfig`, a field given replaces the old value, `null` removes it, and a field
 * left out is kept.
 */
export interface ContainerConfig {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  User?: string | null;
  WorkingDir?: string | null;
  Labels?: Record<string, string> | null;
  /** `"80/tcp": {}` */
  ExposedPorts?: Record<string, object> | null;
  /** `"/data": {}` */
  Volumes?: Record<string, object> | null;
  StopSignal?: string | null;
}

/** The instructions `docker commit --change` accepts. */
export const CHANGE_INSTRUCTIONS = ['ENV', 'CMD', 'ENTRYPOINT', 'USER', 'WORKDIR', 'LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL'] as const;

/**
 * Applies `docker commit --change` instructions, in order, to a copy of an image config's
 * `config` object, as Docker's Dockerfile dispatchers do: ENV and LABEL add or replace keys
 * (`K=V …`, quotes and backslashes as the shell has them, or the legacy `ENV K V…`), EXPOSE
 * (`80`, `53/udp`, `8000-8002`) and VOLUME (JSON array or words) add, CMD and ENTRYPOINT take
 * the JSON form or the shell form (`["/bin/sh", "-c", …]`, or the config's Shell), and an
 * ENTRYPOINT clears an inherited Cmd unless a CMD came before it in the same changes. A relative
 * WORKDIR is joined onto the current one. `$VAR` is not expanded.
 */
export function applyChanges(config: Record<string, unknown>, changes: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  let cmdSet = false;
  for (const change of changes) {
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(change);
    if (!m) throw new InvalidChangeError(change, `expected INSTRUCTION ARGUMENTS, one of ${CHANGE_INSTRUCTIONS.join(', ')}`);
    const instruction = m[1]!.toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (!(CHANGE_INSTRUCTIONS as readonly string[]).includes(instruction)) {
      throw new InvalidChangeError(change, `${instruction} is not a change docker commit accepts (${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
    if (rest === '') throw new InvalidChangeError(change, `${instruction} needs an argument`);
    switch (instruction) {
      case 'ENV': {
        const env = [...((out.Env as string[] | undefined) ?? [])];
        for (const [key, value] of keyValues(change, rest, true)) {
          const at = env.findIndex((e) => e.split('=', 1)[0] === key);
          if (at >= 0) env[at] = `${key}=${value}`;
          else env.push(`${key}=${value}`);
        }
        out.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...((out.Labels as Record<string, string> | null | undefined) ?? {}) };
        for (const [key, value] of keyValues(change, rest, false)) labels[key] = value;
        out.Labels = labels;
        break;
      }
      case 'CMD':
        out.Cmd = commandForm(rest, out);
        cmdSet = true;
        break;
      case 'ENTRYPOINT':
        out.Entrypoint = commandForm(rest, out);
        if (!cmdSet) delete out.Cmd;
        break;
      case 'USER':
        out.User = single(change, rest);
        break;
      case 'WORKDIR': {
        const dir = single(change, rest);
        out.WorkingDir = posix.isAbsolute(dir) ? posix.normalize(dir) : posix.join('/', (out.WorkingDir as string | undefined) ?? '/', dir);
        break;
      }
      case 'STOPSIGNAL':
        out.StopSignal = single(change, rest);
        break;
      case 'EXPOSE': {
        const ports = { ...((out.ExposedPorts as Record<string, object> | null | undefined) ?? {}) };
        for (const word of words(change, rest)) for (const port of exposedPorts(change, word)) ports[port] = {};
        out.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const volumes = { ...((out.Volumes as Record<string, object> | null | undefined) ?? {}) };
        const list = rest.startsWith('[') ? jsonArray(change, rest) : words(change, rest);
        for (const v of list) {
          if (v === '') throw new InvalidChangeError(change, 'VOLUME specified can not be an empty string');
          volumes[v] = {};
        }
        out.Volumes = volumes;
        break;
      }
    }
  }
  return out;
}

/** `docker commit`'s changes are applied to the image config's `config`; this sets given fields of a ContainerConfig. */
export function mergeContainerConfig(config: Record<string, unknown>, changes: ContainerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    if (value === null) delete out[key];
    else out[key] = Array.isArray(value) ? [...(value as unknown[])] : typeof value === 'object' ? { ...(value as object) } : value;
  }
  return out;
}

function single(change: string, rest: string): string {
  const list = words(change, rest);
  if (list.length !== 1) throw new InvalidChangeError(change, `expects one argument, got ${list.length}`);
  return list[0]!;
}

function jsonArray(change: string, rest: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(rest);
  } catch (err) {
    throw new InvalidChangeError(change, `not a JSON array of strings: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string')) throw new InvalidChangeError(change, 'not a JSON array of strings');
  return parsed;
}

/** The exec (JSON) form as it is, else the shell form run by the config's Shell (default `/bin/sh -c`). */
function commandForm(rest: string, config: Record<string, unknown>): string[] {
  if (rest.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(rest);
      if (Array.isArray(parsed) && parsed.every((s) => typeof s === 'string')) return parsed;
    } catch {
      // Docker too runs a line that only looks like JSON in the shell form.
    }
  }
  const shell = Array.isArray(config.Shell) && config.Shell.length > 0 ? (config.Shell as string[]) : ['/bin/sh', '-c'];
  return [...shell, rest];
}

/**
 * Words split as Docker's shell lexer splits them (without variable expansion): whitespace
 * separates, single quotes keep everything, double quotes keep all but `\"` `\\` `\$`, a
 * backslash outside quotes escapes the next character.
 */
export function words(change: string, input: string): string[] {
  const out: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      if (inWord) out.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\') {
      if (i + 1 < input.length) word += input[++i];
    } else if (c === "'") {
      const end = input.indexOf("'", i + 1);
      if (end < 0) throw new InvalidChangeError(change, 'unexpected end of statement while looking for matching single-quote');
      word += input.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < input.length && input[j] !== '"'; j++) {
        if (input[j] === '\\' && j + 1 < input.length && '"\\$'.includes(input[j + 1]!)) j++;
        word += input[j];
      }
      if (j >= input.length) throw new InvalidChangeError(change, 'unexpected end of statement while looking for matching double-quote');
      i = j;
    } else {
      word += c;
    }
  }
  if (inWord) out.push(word);
  return out;
}

/** `K=V K2="v 2"`, or (ENV only, a single pair) the legacy `K some value`. */
function keyValues(change: string, rest: string, legacy: boolean): Array<[string, string]> {
  const first = rest.split(/\s+/, 1)[0]!;
  if (!first.includes('=')) {
    if (!legacy) throw new InvalidChangeError(change, 'LABEL takes KEY=VALUE pairs');
    const value = rest.slice(first.length).trim();
    if (value === '') throw new InvalidChangeError(change, 'ENV must have two arguments');
    return [[first, words(change, value).join(' ')]];
  }
  return words(change, rest).map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidChangeError(change, `${JSON.stringify(w)} is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** `80` → `80/tcp`; `53/udp`; `8000-8002/tcp` → three ports, as Docker's nat.ParsePortSpecs. */
function exposedPorts(change: string, spec: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  if (!m) throw new InvalidChangeError(change, `invalid port ${JSON.stringify(spec)}: give PORT[-PORT][/tcp|udp|sctp]`);
  const start = Number(m[1]);
  const end = m[2] !== undefined ? Number(m[2]) : start;
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (start > 65535 || end > 65535 || end < start) throw new InvalidChangeError(change, `invalid port range ${JSON.stringify(spec)}`);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}
