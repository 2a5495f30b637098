import type { ArgSpec, OptionSpec } from './spec.js';

/** A mistake on the command line: status 2, the message names the flag or argument at fault. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
  /** The command's usage line, shown under the message as docker shows it. */
  usage?: string;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface ParsedArgs {
  values: OptionValues;
  positionals: string[];
}

/**
 * Parses argv against a command's options the way docker's (pflag) parser does: `--flag value`,
 * `--flag=value`, `-q`, bundled `-qa`, `-o value`, `-ovalue`, `--bool=false`, and `--` ending the
 * options. Options may come anywhere among the positionals. An unknown flag is refused with the
 * closest known one suggested.
 */
export function parseArgs(argv: readonly string[], options: readonly OptionSpec[], what: string): ParsedArgs {
  const byLong = new Map(options.map((o) => [o.name, o]));
  const byShort = new Map(options.filter((o) => o.short).map((o) => [o.short!, o]));
  const values: OptionValues = {};
  const positionals: string[] = [];
  const set = (o: OptionSpec, value: string | boolean) => {
    if (o.type === 'string' && o.strict && o.choices && !o.choices.includes(value as string)) {
      throw new UsageError(`invalid value ${JSON.stringify(value)} for --${o.name} of ${what}: one of ${o.choices.join(', ')}`);
    }
    if (o.multiple) values[o.name] = [...((values[o.name] as string[] | undefined) ?? []), value as string];
    else values[o.name] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const o = byLong.get(name);
      if (!o) throw new UsageError(`unknown flag: --${name} for ${what}${suggest(name, options.map((x) => x.name), '--')}`);
      if (o.type === 'boolean') {
        if (eq < 0) set(o, true);
        else set(o, parseBool(arg.slice(eq + 1), `--${name}`));
      } else if (eq >= 0) set(o, arg.slice(eq + 1));
      else {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${name}${o.value ? ` ${o.value}` : ''}`);
        set(o, argv[++i]!);
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // Bundled short flags: -qa; a string flag takes the rest of the word or the next one.
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j]!;
        const o = byShort.get(letter);
        if (!o) throw new UsageError(`unknown shorthand flag: '${letter}' in ${arg} for ${what}${suggestShort(letter, arg, options)}`);
        if (o.type === 'boolean') {
          if (arg[j + 1] === '=') {
            set(o, parseBool(arg.slice(j + 2), `-${letter}`));
            break;
          }
          set(o, true);
          continue;
        }
        const rest = arg.slice(j + 1).replace(/^=/, '');
        if (rest !== '') set(o, rest);
        else {
          if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: '${letter}' in -${letter}`);
          set(o, argv[++i]!);
        }
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { values, positionals };
}

/** Checks the positionals against the command's arguments: says which one is missing or extra. */
export function checkPositionals(positionals: readonly string[], args: readonly ArgSpec[], what: string): void {
  const required = args.filter((a) => a.required !== false);
  if (positionals.length < required.length) {
    const missing = required.slice(positionals.length).map((a) => a.name);
    throw new UsageError(`${what} requires ${required.length === 1 ? 'an argument' : `${required.length} arguments`}: missing ${missing.join(' and ')}`);
  }
  const variadic = args.some((a) => a.variadic);
  if (!variadic && positionals.length > args.length) {
    const extra = positionals.slice(args.length);
    throw new UsageError(`${what} accepts ${args.length === 0 ? 'no arguments' : `at most ${args.length} argument${args.length === 1 ? '' : 's'}`}: unexpected ${extra.map((e) => JSON.stringify(e)).join(', ')}`);
  }
}

function parseBool(text: string, flag: string): boolean {
  if (['true', '1', 't', 'T', 'TRUE', 'True'].includes(text)) return true;
  if (['false', '0', 'f', 'F', 'FALSE', 'False'].includes(text)) return false;
  throw new UsageError(`invalid value ${JSON.stringify(text)} for ${flag}: true or false`);
}

/** `, did you mean --platform?` for the nearest name within a small edit distance. */
export function suggest(input: string, candidates: readonly string[], prefix = ''): string {
  const best = closest(input, candidates);
  return best ? `; did you mean ${prefix}${best}?` : '';
}

function suggestShort(letter: string, arg: string, options: readonly OptionSpec[]): string {
  // `-platform` is almost always a long flag typed with one dash.
  const long = arg.slice(1);
  if (long.length > 1) {
    const best = closest(long, options.map((o) => o.name));
    if (best) return `; did you mean --${best}?`;
  }
  return letter ? '' : '';
}

/** The candidate within edit distance 2 (or that starts with the input), if one stands out. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(input) && input.length >= 2 ? 1 : distance(input, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(input.length / 3)) ? best : undefined;
}

/** Damerau–Levenshtein (optimal string alignment): a swapped pair counts as one edit. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
