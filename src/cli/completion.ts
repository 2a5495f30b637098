import { COMMANDS } from './commands.js';
import { GLOBAL_OPTIONS, type ArgSpec, type CommandSpec, type OptionSpec } from './spec.js';

/** Every command path with its spec: `[['pull'], spec]`, `[['snapshot', 'ls'], spec]`. */
export function commandPaths(commands: readonly CommandSpec[] = COMMANDS, prefix: string[] = []): Array<[string[], CommandSpec]> {
  return commands.flatMap((c) => [[[...prefix, c.name], c] as [string[], CommandSpec], ...(c.commands ? commandPaths(c.commands, [...prefix, c.name]) : [])]);
}

const IMAGES_CMD = "stratum images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null";
const SNAPSHOTS_CMD = 'stratum snapshot ls -q 2>/dev/null';

function optionsOf(spec: CommandSpec): OptionSpec[] {
  return [...(spec.options ?? []), ...GLOBAL_OPTIONS];
}

function flagWords(o: OptionSpec): string[] {
  return [`--${o.name}`, ...(o.short ? [`-${o.short}`] : [])];
}

function bashValue(kind: OptionSpec['complete'] | ArgSpec['complete'], choices?: readonly string[]): string {
  if (choices) return `COMPREPLY=($(compgen -W ${shellQuote(choices.join(' '))} -- "$cur"))`;
  if (Array.isArray(kind)) return `COMPREPLY=($(compgen -W ${shellQuote(kind.join(' '))} -- "$cur"))`;
  switch (kind) {
    case 'file':
      return 'COMPREPLY=($(compgen -f -- "$cur"))';
    case 'dir':
      return 'COMPREPLY=($(compgen -d -- "$cur"))';
    case 'image':
      return `COMPREPLY=($(compgen -W "$(${IMAGES_CMD})" -- "$cur"))`;
    case 'snapshot':
      return `COMPREPLY=($(compgen -W "$(${SNAPSHOTS_CMD})" -- "$cur"))`;
    default:
      return 'COMPREPLY=()';
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function bashCompletion(): string {
  const paths = commandPaths();
  const cases = paths.map(([path, spec]) => {
    const opts = optionsOf(spec);
    const valueFlags = opts.filter((o) => o.type === 'string');
    const valueCases = valueFlags.map((o) => `        ${flagWords(o).join('|')}) ${bashValue(o.complete, o.choices)}; return ;;`).join('\n');
    const words = spec.commands ? spec.commands.flatMap((c) => [c.name, ...(c.aliases ?? [])]) : [];
    const firstArg = spec.args?.[0];
    const argCompletion = spec.commands ? `COMPREPLY=($(compgen -W ${shellQuote(words.join(' '))} -- "$cur"))` : firstArg ? bashValue(firstArg.complete) : 'COMPREPLY=()';
    return `    ${shellQuote(path.join(' '))})
      case "$prev" in
${valueCases}
      esac
      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W ${shellQuote(opts.flatMap(flagWords).join(' '))} -- "$cur")); return; fi
      ${argCompletion}
      ;;`;
  });
  const top = COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]).concat('help');
  const withSubs = paths.filter(([, s]) => s.commands).map(([p]) => p[0]!);
  const globalValue = GLOBAL_OPTIONS.filter((o) => o.type === 'string').flatMap(flagWords);
  return `# bash completion for stratum, generated from its command definitions (stratum completion bash)
_stratum() {
  local cur prev path="" i w skip=0
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    case "$w" in
      ${globalValue.join('|')}) skip=1; continue ;;
      -*) continue ;;
    esac
    if [[ -z "$path" ]]; then path="$w"
    elif [[ " ${withSubs.join(' ')} " == *" $path "* && "$path" != *" "* ]]; then path="$path $w"; break
    else break
    fi
  done
  path="\${path/#ls/images}"; path="\${path/#umount/unmount}"
  case "$path" in
    "")
      case "$prev" in
${GLOBAL_OPTIONS.filter((o) => o.type === 'string').map((o) => `        ${flagWords(o).join('|')}) ${bashValue(o.complete, o.choices)}; return ;;`).join('\n')}
      esac
      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W ${shellQuote([...GLOBAL_OPTIONS.flatMap(flagWords), '--version', '-v'].join(' '))} -- "$cur")); return; fi
      COMPREPLY=($(compgen -W ${shellQuote(top.join(' '))} -- "$cur"))
      ;;
    help) COMPREPLY=($(compgen -W ${shellQuote(top.join(' '))} -- "$cur")) ;;
${cases.join('\n')}
  esac
}
complete -F _stratum stratum
`;
}

function zshEscape(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/'/g, `'\\''`).replace(/\[/g, '\\[').replace(/\]/g, '\\]').replace(/:/g, '\\:');
}

function zshAction(kind: OptionSpec['complete'] | ArgSpec['complete'], choices?: readonly string[]): string {
  if (choices) return `(${choices.join(' ')})`;
  if (Array.isArray(kind)) return `(${kind.join(' ')})`;
  switch (kind) {
    case 'file':
      return '_files';
    case 'dir':
      return '_files -/';
    case 'image':
      return `{compadd -- \${(f)"$(${IMAGES_CMD})"}}`;
    case 'snapshot':
      return `{compadd -- \${(f)"$(${SNAPSHOTS_CMD})"}}`;
    default:
      return ' ';
  }
}

function zshOption(o: OptionSpec): string {
  const desc = zshEscape(o.description.split('(')[0]!.trim());
  const value = o.type === 'string' ? `:${zshEscape((o.value ?? 'value').toLowerCase())}:${zshAction(o.complete, o.choices)}` : '';
  const repeat = o.multiple ? '*' : '';
  if (o.short) return `'${repeat}(-${o.short} --${o.name})'{-${o.short},--${o.name}}'[${desc}]${value}'`;
  return `'${repeat}--${o.name}[${desc}]${value}'`;
}

export function zshCompletion(): string {
  const fn = (path: string[]) => `_stratum_${path.join('_').replace(/-/g, '_')}`;
  const functions = commandPaths().map(([path, spec]) => {
    const opts = optionsOf(spec).map(zshOption);
    if (spec.commands) {
      const subs = spec.commands.map((c) => `'${c.name}:${zshEscape(c.summary)}'`).join(' ');
      return `${fn(path)}() {
  local -a subcommands; subcommands=(${subs})
  _arguments -C ${opts.join(' ')} '1:command:->cmd' '*::arg:->args'
  case $state in
    cmd) _describe -t commands 'stratum ${path.join(' ')} command' subcommands ;;
    args) case $words[1] in
${spec.commands.map((c) => `      ${[c.name, ...(c.aliases ?? [])].join('|')}) ${fn([...path, c.name])} ;;`).join('\n')}
    esac ;;
  esac
}`;
    }
    const args = (spec.args ?? []).map((a, i) => `'${a.variadic ? '*' : `${i + 1}`}:${zshEscape(a.name.toLowerCase())}:${zshAction(a.complete)}'`);
    return `${fn(path)}() {\n  _arguments ${[...opts, ...args].join(' \\\n    ')}\n}`;
  });
  return `#compdef stratum
# zsh completion for stratum, generated from its command definitions (stratum completion zsh)
${functions.join('\n\n')}

_stratum() {
  local -a commands; commands=(${COMMANDS.map((c) => `'${c.name}:${zshEscape(c.summary)}'`).join(' ')} 'help:Show help for a command')
  _arguments -C ${GLOBAL_OPTIONS.map(zshOption).join(' ')} '(- *)'{-v,--version}'[Print the version]' '1:command:->cmd' '*::arg:->args'
  case $state in
    cmd) _describe -t commands 'stratum command' commands ;;
    args) case $words[1] in
${COMMANDS.map((c) => `      ${[c.name, ...(c.aliases ?? [])].join('|')}) ${fn([c.name])} ;;`).join('\n')}
      help) _describe -t commands 'stratum command' commands ;;
    esac ;;
  esac
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _stratum "$@"; else compdef _stratum stratum; fi
`;
}

function fishQuote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function fishCompletion(): string {
  const lines = ['# fish completion for stratum, generated from its command definitions (stratum completion fish)', 'complete -c stratum -f'];
  const top = COMMANDS.map((c) => c.name);
  for (const o of GLOBAL_OPTIONS) lines.push(fishOption('', o));
  lines.push(`complete -c stratum -n '__fish_use_subcommand' -s v -l version -d 'Print the version'`);
  for (const c of COMMANDS) lines.push(`complete -c stratum -n '__fish_use_subcommand' -a ${c.name} -d ${fishQuote(c.summary)}`);
  lines.push(`complete -c stratum -n '__fish_seen_subcommand_from help' -a ${fishQuote(top.join(' '))}`);
  for (const [path, spec] of commandPaths()) {
    const cond = path.length === 1 ? `__fish_seen_subcommand_from ${[path[0], ...(spec.aliases ?? [])].join(' ')}` : `__fish_seen_subcommand_from ${path[0]}; and __fish_seen_subcommand_from ${path[1]}`;
    if (spec.commands) {
      for (const sub of spec.commands) lines.push(`complete -c stratum -n '__fish_seen_subcommand_from ${path[0]}; and not __fish_seen_subcommand_from ${spec.commands.map((s) => s.name).join(' ')}' -a ${sub.name} -d ${fishQuote(sub.summary)}`);
      continue;
    }
    for (const o of spec.options ?? []) lines.push(fishOption(cond, o));
    const arg = spec.args?.[0];
    if (arg?.complete === 'image') lines.push(`complete -c stratum -n '${cond}' -a '(${IMAGES_CMD})'`);
    else if (arg?.complete === 'snapshot') lines.push(`complete -c stratum -n '${cond}' -a '(${SNAPSHOTS_CMD})'`);
    else if (arg?.complete === 'file' || arg?.complete === 'dir') lines.push(`complete -c stratum -n '${cond}' -F`);
    else if (Array.isArray(arg?.complete)) lines.push(`complete -c stratum -n '${cond}' -a ${fishQuote((arg!.complete as string[]).join(' '))}`);
  }
  return `${lines.join('\n')}\n`;
}

function fishOption(cond: string, o: OptionSpec): string {
  const parts = ['complete -c stratum'];
  if (cond) parts.push(`-n '${cond}'`);
  if (o.short) parts.push(`-s ${o.short}`);
  parts.push(`-l ${o.name}`);
  if (o.type === 'string') {
    parts.push('-r');
    if (o.choices) parts.push(`-a ${fishQuote(o.choices.join(' '))}`);
    else if (o.complete === 'file' || o.complete === 'dir') parts.push('-F');
  }
  parts.push(`-d ${fishQuote(o.description)}`);
  return parts.join(' ');
}
