import type { Writable } from 'node:stream';
import { StratumError } from '../errors.js';
import { UsageError, type OptionValues } from './args.js';
import type { GlobalFlags } from './context.js';

/** The user pressed Ctrl-C or the process got SIGTERM: status 130 or 143 once cleanup is done. */
export class InterruptedError extends Error {
  readonly code = 'ERR_INTERRUPTED';
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** The reader of standard output went away (`| head -1`): the output stops quietly, status 0. */
export class OutputClosedError extends Error {
  readonly code = 'ERR_OUTPUT_CLOSED';
  constructor() {
    super('standard output was closed by its reader');
  }
}

/**
 * Standard output that survives its reader leaving: the first EPIPE marks it closed and later
 * writes are dropped (a pull goes on to the end, its lines unread, as docker's daemon does).
 * Commands whose product *is* the output (export, save) see `closed` through their stream.
 */
export class Output {
  closed = false;
  private readonly closedListeners: Array<() => void> = [];

  constructor(readonly stream: NodeJS.WriteStream | Writable) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') this.markClosed();
      // Any other error on stdout (EIO on a hung-up terminal) also only ends the output.
      else this.markClosed();
    });
  }

  get isTTY(): boolean {
    return (this.stream as NodeJS.WriteStream).isTTY === true;
  }

  write(text: string): void {
    if (this.closed) return;
    this.stream.write(text);
  }

  line(text: string): void {
    this.write(`${text}\n`);
  }

  onClosed(listener: () => void): void {
    if (this.closed) listener();
    else this.closedListeners.push(listener);
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.closedListeners.splice(0)) l();
  }
}

/** What a command receives: its parsed flags and arguments, where to write, and the cancel signal. */
export class Invocation {
  constructor(
    /** `['snapshot', 'ls']` */
    readonly path: readonly string[],
    readonly values: OptionValues,
    /** The global options (--store, --config FILE…), apart from a command option of the same name. */
    private readonly globalValues: OptionValues,
    readonly positionals: readonly string[],
    readonly stdout: Output,
    readonly stderr: Output,
    /** Aborted on SIGINT/SIGTERM with an InterruptedError as its reason. */
    readonly signal: AbortSignal,
  ) {}

  get globals(): GlobalFlags {
    return this.globalValues as GlobalFlags;
  }

  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === 'string' ? v : undefined;
  }

  strings(name: string): string[] {
    const v = this.values[name];
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }

  bool(name: string): boolean {
    return this.values[name] === true;
  }

  arg(index: number): string {
    const v = this.positionals[index];
    if (v === undefined) throw new UsageError(`${this.path.join(' ')}: missing argument ${index + 1}`);
    return v;
  }

  warn(message: string): void {
    this.stderr.line(`stratum: warning: ${message}`);
  }

  /** Throws the interruption if one came: long loops call it between steps. */
  checkInterrupted(): void {
    if (this.signal.aborted) throw this.signal.reason;
  }
}

/** Status and message for an error that ended a command. No stack unless `debug`. */
export function describeFailure(err: unknown, debug: boolean): { status: number; message?: string; code?: string } {
  if (err instanceof OutputClosedError || isClosedOutput(err)) return { status: 0 };
  if (err instanceof InterruptedError) return { status: err.signal === 'SIGINT' ? 130 : 143, message: `stratum: ${err.message}`, code: err.code };
  if (err instanceof UsageError) return { status: 2, message: `stratum: ${err.message}`, code: err.code };
  if (err instanceof StratumError) {
    return { status: 1, message: `stratum: error: ${err.message} (${err.code})${debug && err.stack ? `\n${err.stack}` : ''}`, code: err.code };
  }
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'ERR_UNEXPECTED';
  const message = err instanceof Error ? err.message : String(err);
  const detail = debug && err instanceof Error && err.stack ? `\n${err.stack}` : '; --debug shows where';
  return { status: 1, message: `stratum: unexpected error: ${message} (${code})${detail}`, code };
}

function isClosedOutput(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE';
}
