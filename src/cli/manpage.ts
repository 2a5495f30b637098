import { COMMANDS } from './commands.js';
import { commandPaths } from './completion.js';
import { optionSynopsis } from './help.js';
import { GLOBAL_OPTIONS, usageLine, type CommandSpec, type OptionSpec } from './spec.js';
import { VERSION } from './version.js';

/** roff-escapes text: backslashes, and a leading dot or quote that troff would read as a request. */
function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');
}

function header(name: string, summary: string): string[] {
  return [`.TH ${name.toUpperCase()} 1 "" "stratum ${VERSION}" "stratum manual"`, '.SH NAME', `${roff(name)} \\- ${roff(summary)}`];
}

function optionSection(title: string, options: readonly OptionSpec[]): string[] {
  if (options.length === 0) return [];
  return [`.SH ${title}`, ...options.flatMap((o) => ['.TP', `\\fB${roff(optionSynopsis(o).trim())}\\fR`, roff(o.description)])];
}

/** The man page of one command (`stratum-pull(1)`), from the same definition as its --help. */
export function commandManPage(path: readonly string[], spec: CommandSpec): string {
  const name = ['stratum', ...path].join('-');
  const lines = [...header(name, spec.summary), '.SH SYNOPSIS', `\\fB${roff(usageLine(['stratum', ...path], spec))}\\fR`, '.SH DESCRIPTION', roff(spec.description ?? spec.summary)];
  if (spec.aliases?.length) lines.push('.PP', `Aliases: ${roff(spec.aliases.join(', '))}`);
  if (spec.commands) {
    lines.push('.SH COMMANDS', ...spec.commands.flatMap((c) => ['.TP', `\\fB${roff(c.name)}\\fR`, `${roff(c.summary)} (see \\fB${roff(['stratum', ...path, c.name].join('-'))}\\fR(1))`]));
  }
  lines.push(...optionSection('OPTIONS', spec.options ?? []), ...optionSection('GLOBAL OPTIONS', GLOBAL_OPTIONS));
  if (spec.examples?.length) lines.push('.SH EXAMPLES', ...spec.examples.flatMap((e) => ['.PP', `\\fB${roff(e)}\\fR`]));
  lines.push('.SH SEE ALSO', '\\fBstratum\\fR(1)');
  return `${lines.join('\n')}\n`;
}

/** stratum(1): the command list and global options. */
export function mainManPage(): string {
  const lines = [
    ...header('stratum', 'an OCI image layer engine: pull, store, unpack and mount container images'),
    '.SH SYNOPSIS',
    '\\fBstratum\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR',
    '.SH DESCRIPTION',
    roff('stratum pulls container images into a verified, content-addressed OCI image layout and unpacks their layers as copy-on-write snapshots (overlay, fuse-overlayfs, native, btrfs, zfs).'),
    '.SH COMMANDS',
    ...COMMANDS.flatMap((c) => ['.TP', `\\fB${roff(c.name)}\\fR`, `${roff(c.summary)} (see \\fBstratum\\-${roff(c.name)}\\fR(1))`]),
    ...optionSection('GLOBAL OPTIONS', GLOBAL_OPTIONS),
    '.SH ENVIRONMENT',
    '.TP',
    '\\fBSTRATUM_STORE\\fR',
    'The content store when \\-\\-store is not given.',
    '.TP',
    '\\fBSTRATUM_SNAPSHOTTER\\fR',
    "The storage driver for one command, like \\-\\-snapshotter.",
    '.TP',
    '\\fBDOCKER_CONFIG\\fR',
    'Where config.json with registry credentials is (default ~/.docker).',
  ];
  return `${lines.join('\n')}\n`;
}

/** Every page: `stratum.1` and `stratum-CMD[-SUB].1`. */
export function allManPages(): Array<{ file: string; text: string }> {
  return [{ file: 'stratum.1', text: mainManPage() }, ...commandPaths().map(([path, spec]) => ({ file: `${['stratum', ...path].join('-')}.1`, text: commandManPage(path, spec) }))];
}
