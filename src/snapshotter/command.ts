import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { StoreError } from '../errors.js';

const run = promisify(execFile);

/** Why a tool failed: that it is not installed (naming the Debian package), else its stderr. */
export function toolFailure(command: string, err: unknown, debianPackage?: string): string {
  const e = err as Error & { stderr?: string; code?: unknown };
  if (e.code === 'ENOENT') return `the ${command} command is not installed${debianPackage ? ` (Debian: ${debianPackage})` : ''}`;
  return e.stderr?.trim() || e.message;
}

/**
 * Runs a backend's tool (cp, btrfs, zfs) and returns its stdout; a failure is a StoreError that
 * says `what` was being done and why it failed.
 */
export async function runTool(command: string, args: string[], what: string, debianPackage?: string): Promise<string> {
  try {
    return (await run(command, args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    throw new StoreError(`${what}: ${toolFailure(command, err, debianPackage)}`, { cause: err });
  }
}
