#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { StratumError } from '../errors.js';
import { UsageError } from './context.js';

interface Command {
  usage: string;
  run(argv: string[]): Promise<number>;
}

// A pull allocates many short-lived objects around the bytes it streams; V8 would grow the young
// generation for them to 16 MiB semi-spaces, which only adds resident memory (~15-30 MB measured)
// without making the pull faster. Kept at its initial size in the CLI; library users keep theirs.
setFlagsFromString('--semi-space-growth-factor=1');
// undici parses HTTP with llhttp compiled to WebAssembly. V8 would also recompile it with its
// optimising tier in the background, on every start: CPU taken from the transfer on a small
// machine, and ~15-20 MB of resident memory, for a parser that mostly skips over blob bodies.
// Its baseline (Liftoff) code is as fast for that (bench:pull: 0.52 s against 0.54 s).
setFlagsFromString('--liftoff-only');
// V8 optimises a function with TurboFan once it has run for a budget of 132 KB of bytecode; the
// compile runs on a background thread. A pull's hot loops are few and most of its code runs a
// handful of times, so at the default budget many functions are compiled for nothing, on cores
// the transfer and extraction need (bench:unpack on 2 cores: 1.24 s median at the default, 1.07 s
// at 600 KB, the floor 1.02 s). A larger budget keeps TurboFan for the really hot code.
setFlagsFromString('--interrupt-budget=600000');

/** Loaded on demand: a command pays only for the modules it uses (undici, the addon…) at start-up. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  pull: () => import('./commands/pull.js'),
  push: () => import('./commands/push.js'),
  commit: () => import('./commands/commit.js'),
  images: () => import('./commands/images.js'),
  inspect: () => import('./commands/inspect.js'),
  history: () => import('./commands/history.js'),
  df: () => import('./commands/df.js'),
  gc: () => import('./commands/gc.js'),
  fsck: () => import('./commands/fsck.js'),
  rmi: () => import('./commands/rmi.js'),
  mount: () => import('./commands/mount.js'),
  unmount: () => import('./commands/unmount.js'),
  snapshot: () => import('./commands/snapshot.js'),
  export: () => import('./commands/export.js'),
  info: () => import('./commands/info.js'),
};

const USAGE = `Usage: stratum COMMAND [OPTIONS]

An OCI image layer engine: pull, store, unpack and mount container images.

Commands:
  pull       Download an image into the store (verified, deduplicated)
  push       Upload an image from the store to a registry
  commit     Create an image from the changes in a writable snapshot
  images     List images in the store
  inspect    Show an image's manifest and config
  history    Show the history of an image
  df         Show store disk usage and sharing between images
  mount      Mount an image's root filesystem (read-only view or --rw snapshot)
  unmount    Unmount what mount mounted
  snapshot   List, prepare, view, commit, remove snapshots
  export     Write an image's flattened root filesystem as a tar
  rmi        Remove image tags
  gc         Delete blobs, snapshots and leftovers nothing needs
  fsck       Check blobs, references and snapshots (--repair)
  info       Show the store's storage driver, backing filesystem and contents

Global options: --store DIR, --snapshotter overlay|native|btrfs|zfs (overlay2, vfs), --snapshot-root DIR, --config FILE,
                --mirror [REGISTRY=]URL, --insecure-registry HOST
Run 'stratum COMMAND --help' for more information on a command.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write('stratum 0.1.0\n');
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`stratum: unknown command ${JSON.stringify(name)}\n\n${USAGE}\n`);
    return 2;
  }
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    return reportError(err, command);
  }
}

function reportError(err: unknown, command: Command): number {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`stratum: ${(err as Error).message}\n\n${command.usage}\n`);
    return 2;
  }
  if (err instanceof StratumError) {
    process.stderr.write(`stratum: error: ${err.message} (${err.code})\n`);
    return 1;
  }
  process.stderr.write(`stratum: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}

process.exitCode = await main(process.argv.slice(2));
