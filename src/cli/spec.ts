/**
 * The one definition of the command line: every command, argument and flag with its help text.
 * The parser, `--help`, `stratum completion` and the man pages are all generated from it, so a
 * flag cannot exist in one and be missing from another.
 */

export interface OptionSpec {
  /** Long name without dashes: `no-trunc`. */
  name: string;
  /** One-letter alias without the dash: `q`. */
  short?: string;
  type: 'boolean' | 'string';
  /** A string option given several times collects every value. */
  multiple?: boolean;
  /** The value's placeholder in help: `DIR`, `os/arch[/variant]`. */
  value?: string;
  description: string;
  /** Values offered by completion (and checked by the parser when `strict`). */
  choices?: readonly string[];
  /** Refuse values outside `choices` (status 2). */
  strict?: boolean;
  /** What completion offers for the value: files, directories, or nothing special. */
  complete?: 'file' | 'dir';
}

export interface ArgSpec {
  /** As shown in usage: `NAME[:TAG|@DIGEST]`. */
  name: string;
  /** Required unless false. */
  required?: boolean;
  /** Takes every remaining positional (one at least when required). */
  variadic?: boolean;
  /** What completion offers: stored image names, files, directories, snapshot keys. */
  complete?: 'image' | 'file' | 'dir' | 'snapshot' | readonly string[];
}

/** The module that runs a command: loaded on demand so start-up pays only for what it uses. */
export interface CommandModule {
  run(invocation: import('./invocation.js').Invocation): Promise<number>;
}

export interface CommandSpec {
  name: string;
  aliases?: readonly string[];
  /** One line, shown in the command list. */
  summary: string;
  /** Paragraphs after the usage line in `--help` and in the man page's DESCRIPTION. */
  description?: string;
  args?: readonly ArgSpec[];
  options?: readonly OptionSpec[];
  /** Sub-commands (`snapshot ls`, `manifest inspect`); the parent then has no `load`. */
  commands?: readonly CommandSpec[];
  /** Examples for the man page and `--help`. */
  examples?: readonly string[];
  load?: () => Promise<CommandModule>;
}

/** Storage driver names the CLI offers: stratum's backends and Docker's overlay2 and vfs. */
export const SNAPSHOTTER_CHOICES: readonly string[] = ['overlay', 'fuse-overlayfs', 'native', 'btrfs', 'zfs', 'blockfile', 'erofs', 'overlay2', 'vfs'];

/** Options every command takes, before or after the command name. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'store', type: 'string', value: 'DIR', complete: 'dir', description: 'Content store (default: $STRATUM_STORE or $XDG_DATA_HOME/stratum)' },
  {
    name: 'snapshotter',
    type: 'string',
    value: 'NAME',
    choices: SNAPSHOTTER_CHOICES,
    description: "Storage driver for this command (default: the store's)",
  },
  {
    name: 'storage-opt',
    type: 'string',
    multiple: true,
    value: 'KEY=VALUE',
    description:
      "Storage driver option, recorded with a new store's driver (and by migrate); repeatable: overlay.metacopy=on|off, overlay.redirect_dir=on|off|follow|nofollow, overlay.index=on|off (overlay2. too); btrfs.compression=zstd[:1-15]|zlib[:1-9]|lzo|no, btrfs.size=SIZE, btrfs.min_space=SIZE; zfs.compression=lz4|zstd|gzip|off…, zfs.recordsize=SIZE, zfs.fsname=DATASET; native.reflink=true|false (vfs. too); blockfile.size=SIZE, blockfile.fs=ext4|xfs, blockfile.mkfsarg=ARGS (dm. too)",
  },
  { name: 'snapshot-root', type: 'string', value: 'DIR', complete: 'dir', description: 'Where snapshots live (default: STORE/snapshots/DRIVER)' },
  { name: 'config', type: 'string', value: 'FILE', complete: 'file', description: 'Registry configuration (mirrors, insecure hosts, concurrency)' },
  { name: 'mirror', type: 'string', multiple: true, value: '[REGISTRY=]URL', description: 'Try this mirror first (repeatable; REGISTRY defaults to docker.io)' },
  { name: 'insecure-registry', type: 'string', multiple: true, value: 'HOST', description: 'Allow plain HTTP to HOST (loopback is always allowed)' },
  { name: 'concurrency', type: 'string', value: 'N', description: 'Blobs transferred at once (default 3)' },
  { name: 'debug', short: 'D', type: 'boolean', description: 'Show stack traces of unexpected errors and how registries are reached (TLS or plain HTTP, proxy, certificates)' },
  { name: 'help', short: 'h', type: 'boolean', description: 'Show help for the command' },
];

/** Shown as the value list of `--format` on listing commands. */
export function formatOption(fields: readonly string[]): OptionSpec {
  return {
    name: 'format',
    type: 'string',
    value: 'FORMAT',
    choices: ['table', 'json'],
    description: `table, json (one object per line) or a Go template: '{{.${fields[0]}}}', 'table {{.${fields[0]}}}\\t{{.${fields[1] ?? fields[0]}}}' (fields: ${fields.join(', ')})`,
  };
}

/** The command a path of names leads to (`['snapshot', 'ls']`), with aliases. */
export function findCommand(commands: readonly CommandSpec[], name: string): CommandSpec | undefined {
  return commands.find((c) => c.name === name || c.aliases?.includes(name));
}

/** `pull [OPTIONS] NAME[:TAG|@DIGEST]` */
export function usageLine(path: readonly string[], spec: CommandSpec): string {
  const parts = [...path];
  if (spec.commands) parts.push('COMMAND');
  else {
    parts.push('[OPTIONS]');
    for (const a of spec.args ?? []) {
      const name = a.variadic ? `${a.name}...` : a.name;
      parts.push(a.required === false ? `[${name}]` : name);
    }
  }
  return parts.join(' ');
}
