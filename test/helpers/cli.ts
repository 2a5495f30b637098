import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI as installed: the bundle of the compiled entry point (dist/src/bin/stratum.js, scripts/bundle.mjs). */
export const CLI = fileURLToPath(new URL('../../src/bin/stratum.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `stratum ARGS` as a real child process. Asynchronous on purpose: a fault proxy or
 * token issuer in the test's own process must keep answering while the CLI runs.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `stratum ARGS` that must succeed: its stdout, or an assertion failure with its stderr. */
export async function runCliOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCli(args, env);
  if (r.code !== 0) throw new Error(`stratum ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** One event of a `--json` run. */
export type JsonEvent = Record<string, unknown> & { type: string };

/** The events a `--json` run printed, one JSON object per line (other lines are skipped). */
export function jsonEvents(r: CliResult): JsonEvent[] {
  return r.stdout
    .trimEnd()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as JsonEvent);
}

export interface SnapshotLsRow {
  name: string;
  parent: string;
  kind: string;
  /** Present when the listing covers every backend of the store (no --snapshotter). */
  snapshotter?: string;
}

/** The rows of `stratum snapshot ls` output, cut at the header's column positions (PARENT may be empty). */
export function parseSnapshotLs(stdout: string): SnapshotLsRow[] {
  const lines = stdout.trimEnd().split('\n');
  const header = lines[0]!;
  if (!/^KEY\s+PARENT\s+KIND(\s+SNAPSHOTTER)?$/.test(header)) throw new Error(`not a snapshot ls header: ${JSON.stringify(header)}`);
  const p = header.indexOf('PARENT');
  const k = header.indexOf('KIND');
  const s = header.includes('SNAPSHOTTER') ? header.indexOf('SNAPSHOTTER') : undefined;
  return lines.slice(1).map((l) => ({
    name: l.slice(0, p).trim(),
    parent: l.slice(p, k).trim(),
    kind: l.slice(k, s).trim(),
    ...(s !== undefined ? { snapshotter: l.slice(s).trim() } : {}),
  }));
}

/** Every file under `dir` with the sha256 of its content, for "nothing changed" assertions. */
export async function treeDigest(dir: string, skip: (rel: string) => boolean = () => false): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string): Promise<void> {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      const rel = relative(dir, path);
      if (skip(rel)) continue;
      if (entry.isDirectory()) await walk(path);
      else out[rel] = createHash('sha256').update(await readFile(path)).digest('hex');
    }
  }
  await walk(dir);
  return out;
}

/** `stratum ARGS` started as a child process that the test may kill; `done` settles when it exits. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<CliResult & { signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr }));
  });
  return { child, done };
}

/** The environment for CLI runs that no user config, docker credentials or snapshotter choice leaks into. */
export function isolatedCliEnv(home: string): NodeJS.ProcessEnv {
  return { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '', STRATUM_SNAPSHOTTER: '', STRATUM_SNAPSHOT_ROOT: '' };
}

/** Why CLI tests with real mounts and a real registry cannot run here, or undefined when they can. */
export function needsRootAndRegistry(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: overlay and bind mounts';
  if (!existsSync('/usr/bin/docker-registry')) return '/usr/bin/docker-registry is not installed';
  return undefined;
}

/** Runs the CLI under a pseudo-terminal (util-linux script), as a user at a terminal would. */
export async function underPty(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number; output: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, output }));
  });
}
