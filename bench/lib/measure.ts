import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GNU_TIME = '/usr/bin/time';

export interface Measurement {
  /** Wall time from spawn to exit, in seconds (hrtime; GNU time's own %e only has 10 ms resolution). */
  wallSeconds: number;
  /**
   * Peak resident set size in bytes, as GNU time reports it (%M: ru_maxrss of the waited-for
   * command; for a process that spawns children it is the largest one, not a sum).
   */
  peakRssBytes: number;
  /** GNU time's own wall clock (%e), kept as a cross-check. */
  timeWallSeconds: number;
}

export interface CommandSpec {
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Fails loudly when GNU time is missing (Debian package `time`); the shell builtin cannot report RSS. */
export function requireGnuTime(): void {
  if (!existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} is not installed (apt-get install time): needed for peak RSS`);
}

/**
 * Runs one command under GNU time and returns its wall time and peak RSS. The command's
 * output is collected and shown only when it fails (a non-zero exit is an error).
 */
export async function measureCommand(spec: CommandSpec): Promise<Measurement> {
  requireGnuTime();
  const dir = await mkdtemp(join(tmpdir(), 'stratum-bench-time-'));
  const report = join(dir, 'time.txt');
  try {
    const start = process.hrtime.bigint();
    const { code, signal, output } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve, reject) => {
      const child = spawn(GNU_TIME, ['-f', '%e %M', '-o', report, '--', spec.command, ...spec.args], {
        cwd: spec.cwd,
        env: spec.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const keep = (chunk: Buffer) => {
        output = (output + chunk.toString('utf8')).slice(-8000);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, output }));
    });
    const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    const text = await readFile(report, 'utf8').catch(() => '');
    if (code !== 0) {
      throw new Error(`${spec.command} ${spec.args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${output}${text}`);
    }
    // GNU time writes "Command exited with non-zero status" lines before the format on failure; the last line is ours.
    const last = text.trim().split('\n').pop() ?? '';
    const m = /^(\d+(?:\.\d+)?) (\d+)$/.exec(last.trim());
    if (!m) throw new Error(`cannot read GNU time's report for ${spec.command}: ${JSON.stringify(text)}`);
    return { wallSeconds, peakRssBytes: Number(m[2]) * 1024, timeWallSeconds: Number(m[1]) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs a command to completion without measuring it (setup steps such as `sync`); `silent` drops its stderr too. */
export async function runQuiet(command: string, args: string[], silent = false): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', silent ? 'ignore' : 'inherit'] });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}

/** Runs a setup command to completion and returns its stdout (stderr passes through). */
export async function runCapture(command: string, args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}

/** Total sectors written and I/Os in flight over all block devices (/proc/diskstats). */
async function diskActivity(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  let written = 0;
  let inFlight = 0;
  for (const line of (await readFile('/proc/diskstats', 'utf8')).split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 12) continue;
    written += Number(f[9]);
    inFlight += Number(f[11]);
  }
  return `${written}/${inFlight}`;
}

/**
 * `sync` (twice), then waits until the disks are idle (no sectors written and nothing in flight for a
 * whole second, at most `maxMs`): deleting the previous run's tree (with the `discard` mount
 * option here) keeps the disk busy for seconds after `rm` returns, which would land in the next
 * tool's timing.
 */
export async function settleDisk(maxMs = 30_000): Promise<void> {
  const { setTimeout: sleep } = await import('node:timers/promises');
  // Twice: syncing a loop-mounted filesystem leaves the pages it wrote into its backing file dirty
  // on the host filesystem, and their writeback would otherwise land in the next run.
  await runQuiet('sync', []);
  await runQuiet('sync', []);
  const deadline = Date.now() + maxMs;
  let last = await diskActivity();
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    await sleep(250);
    const now = await diskActivity();
    if (now !== last || !now.endsWith('/0')) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= 1000) return;
  }
}
