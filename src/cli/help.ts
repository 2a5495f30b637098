import { GLOBAL_OPTIONS, usageLine, type CommandSpec, type OptionSpec } from './spec.js';

const WIDTH = 100;

export function topLevelHelp(commands: readonly CommandSpec[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 3;
  return [
    'Usage: stratum [OPTIONS] COMMAND',
    '',
    'An OCI image layer engine: pull, store, unpack and mount container images.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Global options (before or after the command):',
    ...optionLines(GLOBAL_OPTIONS),
    '  -v, --version                  Print the version and exit',
    '',
    "Run 'stratum COMMAND --help' (or 'stratum help COMMAND') for more information on a command.",
  ].join('\n');
}

export function commandHelp(path: readonly string[], spec: CommandSpec): string {
  const out = [`Usage: ${usageLine(['stratum', ...path], spec)}`, ''];
  if (spec.description ?? spec.summary) out.push(wrap(spec.description ?? spec.summary, WIDTH), '');
  if (spec.aliases?.length) out.push(`Aliases: ${spec.aliases.map((a) => [...path.slice(0, -1), a].join(' ')).join(', ')}`, '');
  if (spec.commands) {
    const width = Math.max(...spec.commands.map((c) => c.name.length)) + 3;
    out.push('Commands:', ...spec.commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`), '');
    out.push(`Run 'stratum ${path.join(' ')} COMMAND --help' for more information on a command.`, '');
  }
  if (spec.options?.length) out.push('Options:', ...optionLines(spec.options), '');
  out.push('Global options:', ...optionLines(GLOBAL_OPTIONS));
  if (spec.examples?.length) out.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return out.join('\n');
}

/** `  -q, --quiet                    Print only…` lines, aligned as docker's help aligns them. */
export function optionLines(options: readonly OptionSpec[]): string[] {
  const left = options.map(optionSynopsis);
  const width = Math.max(31, ...left.map((l) => l.length + 2));
  return options.map((o, i) => {
    const pad = `  ${left[i]!.padEnd(width)}`;
    const lines = wrap(o.description, WIDTH - pad.length).split('\n');
    return [pad + lines[0], ...lines.slice(1).map((l) => ' '.repeat(pad.length) + l)].join('\n');
  });
}

export function optionSynopsis(o: OptionSpec): string {
  const names = o.short ? `-${o.short}, --${o.name}` : `    --${o.name}`;
  return o.type === 'string' ? `${names} ${o.value ?? 'VALUE'}` : names;
}

function wrap(text: string, width: number): string {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    out.push(line);
  }
  return out.join('\n');
}
