import { checkPositionals, parseArgs, suggest, UsageError, type OptionValues } from './args.js';
import { COMMANDS } from './commands.js';
import { commandHelp, topLevelHelp } from './help.js';
import { describeFailure, InterruptedError, Invocation, Output } from './invocation.js';
import { findCommand, GLOBAL_OPTIONS, usageLine, type CommandSpec } from './spec.js';
import { VERSION } from './version.js';

export interface RunStreams {
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
}

/**
 * The CLI: finds the command, parses its flags (global ones before or after the command),
 * runs it, and turns every outcome into a status: 0 success, 1 failure, 2 usage, 130/143
 * interrupted. No stack trace reaches the user unless --debug.
 */
export async function run(argv: readonly string[], streams: RunStreams = {}): Promise<number> {
  const stdout = new Output(streams.stdout ?? process.stdout);
  const stderr = new Output(streams.stderr ?? process.stderr);
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let debug = argv.includes('--debug') || argv.includes('-D');
  let json = false;
  let usage: string | undefined;
  try {
    const found = resolveCommand(argv);
    if (found.kind === 'help') {
      stdout.line(found.text);
      return found.status;
    }
    if (found.kind === 'version') {
      stdout.line(`stratum version ${VERSION}`);
      return 0;
    }
    const { path, spec, rest, leading } = found;
    const what = `"stratum ${path.join(' ')}"`;
    usage = usageLine(['stratum', ...path], spec);
    const parsed = parseArgs(rest, [...GLOBAL_OPTIONS, ...(spec.options ?? [])], what);
    // A command's own option may share a global's name (inspect --config, as skopeo has it): after
    // the command the name is the command's; before it, the global's.
    const own = new Set((spec.options ?? []).map((o) => o.name));
    const globals: OptionValues = { ...leading };
    const values: OptionValues = {};
    for (const [k, v] of Object.entries(parsed.values)) {
      if (own.has(k)) values[k] = v;
      else globals[k] = Array.isArray(v) && Array.isArray(globals[k]) ? [...(globals[k] as string[]), ...v] : v;
    }
    for (const [k, v] of Object.entries(globals)) if (!own.has(k)) values[k] = v;
    debug = globals.debug === true;
    json = values.json === true;
    if (values.help === true) {
      stdout.line(commandHelp(path, spec));
      return 0;
    }
    checkPositionals(parsed.positionals, spec.args ?? [], what);
    const module = await spec.load!();
    const invocation = new Invocation(path, values, globals, parsed.positionals, stdout, stderr, controller.signal);
    const status = await module.run(invocation);
    if (controller.signal.aborted) throw controller.signal.reason;
    return status;
  } catch (err) {
    const reason = controller.signal.aborted && !(err instanceof UsageError) ? (controller.signal.reason as InterruptedError) : err;
    const failure = describeFailure(reason, debug);
    if (failure.message) {
      if (json && failure.status !== 2) stdout.line(JSON.stringify({ type: 'error', code: failure.code, message: failure.message.replace(/^stratum: (error: )?/, '').split('\n')[0] }));
      const shownUsage = (err as UsageError).usage ?? usage;
      stderr.line(
        failure.status === 2 && !/--help/.test(failure.message)
          ? `${failure.message}\nSee 'stratum ${helpPath(argv)}--help'.${shownUsage ? `\n\nUsage: ${shownUsage}` : ''}`
          : failure.message,
      );
    }
    return failure.status;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

type Resolved =
  | { kind: 'help'; text: string; status: number }
  | { kind: 'version' }
  | { kind: 'command'; path: string[]; spec: CommandSpec; rest: string[]; leading: OptionValues };

/** Splits argv into leading global options, the command path (with sub-command) and the rest. */
export function resolveCommand(argv: readonly string[]): Resolved {
  const leading: OptionValues = {};
  let i = 0;
  // Global options before the command: `stratum --store DIR images`.
  for (; i < argv.length && argv[i]!.startsWith('-'); i++) {
    const arg = argv[i]!;
    if (arg === '-v' || arg === '--version') return { kind: 'version' };
    if (arg === '-h' || arg === '--help') return { kind: 'help', text: topLevelHelp(COMMANDS), status: 0 };
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : undefined;
    const option = GLOBAL_OPTIONS.find((o) => o.name === name || (arg.length === 2 && o.short === arg[1]));
    if (!option) throw new UsageError(`unknown flag: ${arg}${name ? suggest(name, GLOBAL_OPTIONS.map((o) => o.name), '--') : ''} (a command's own flags go after the command)`);
    const hasValue = option.type === 'string' && !arg.includes('=');
    const parsed = parseArgs(hasValue ? [arg, argv[i + 1] ?? ''] : [arg], GLOBAL_OPTIONS, '"stratum"');
    if (hasValue) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: ${arg}`);
      i++;
    }
    for (const [k, v] of Object.entries(parsed.values)) leading[k] = Array.isArray(v) ? [...((leading[k] as string[]) ?? []), ...v] : v;
  }
  const name = argv[i];
  if (name === undefined) return { kind: 'help', text: topLevelHelp(COMMANDS), status: 2 };
  if (name === 'help') {
    const path = argv.slice(i + 1).filter((a) => !a.startsWith('-'));
    if (path.length === 0) return { kind: 'help', text: topLevelHelp(COMMANDS), status: 0 };
    const target = walk(path, 0);
    return { kind: 'help', text: commandHelp(target.path, target.spec), status: 0 };
  }
  const target = walk(argv.slice(i), 0);
  return { kind: 'command', path: target.path, spec: target.spec, rest: target.rest, leading };
}

/** Follows command names (and sub-command names past global flags) down the spec tree. */
function walk(words: readonly string[], start: number): { path: string[]; spec: CommandSpec; rest: string[] } {
  const [name, ...rest] = words.slice(start);
  const spec = findCommand(COMMANDS, name!);
  if (!spec) throw new UsageError(`unknown command ${JSON.stringify(name)}${suggest(name!, COMMANDS.map((c) => c.name))}\nRun 'stratum --help' for the list of commands.`);
  const path = [spec.name];
  if (!spec.commands) return { path, spec, rest };
  // The sub-command is the first word that is not a flag or a global flag's value.
  const before: string[] = [];
  for (let j = 0; j < rest.length; j++) {
    const w = rest[j]!;
    if (w === '-h' || w === '--help') return { path, spec: { ...spec, load: undefined }, rest: ['--help'] };
    if (w.startsWith('-')) {
      before.push(w);
      const option = GLOBAL_OPTIONS.find((o) => `--${o.name}` === w);
      if (option?.type === 'string' && j + 1 < rest.length) before.push(rest[++j]!);
      continue;
    }
    const sub = findCommand(spec.commands, w);
    if (!sub) throw new UsageError(`unknown ${spec.name} command ${JSON.stringify(w)}${suggest(w, spec.commands.map((c) => c.name))}`);
    return { path: [...path, sub.name], spec: sub, rest: [...before, ...rest.slice(j + 1)] };
  }
  const missing = new UsageError(`"stratum ${spec.name}" requires a command: ${spec.commands.map((c) => c.name).join(', ')}`);
  missing.usage = usageLine(['stratum', spec.name], spec);
  throw missing;
}

function helpPath(argv: readonly string[]): string {
  try {
    const r = resolveCommand(argv);
    return r.kind === 'command' ? `${r.path.join(' ')} ` : '';
  } catch {
    const word = argv.find((a) => !a.startsWith('-'));
    return word && findCommand(COMMANDS, word) ? `${findCommand(COMMANDS, word)!.name} ` : '';
  }
}
