import { InvalidArgumentError, StorageOptionError } from '../errors.js';
import type { SnapshotterName } from './names.js';

/**
 * One `--storage-opt KEY=VALUE` (daemon.json's `storage-opts`), split: the driver its prefix
 * names (Docker's `overlay2.`, `vfs.` and `dm.` are aliases of `overlay.`, `native.` and
 * `blockfile.`), the key after the prefix, lower-cased, and the value as given.
 */
export interface StorageOpt {
  driver: SnapshotterName;
  key: string;
  value: string;
  /** The option as the user wrote it, for messages. */
  raw: string;
}

const PREFIXES: Readonly<Record<string, SnapshotterName>> = {
  overlay: 'overlay',
  overlay2: 'overlay',
  'fuse-overlayfs': 'fuse-overlayfs',
  native: 'native',
  vfs: 'native',
  btrfs: 'btrfs',
  zfs: 'zfs',
  blockfile: 'blockfile',
  dm: 'blockfile',
  erofs: 'erofs',
};

export function splitStorageOpt(raw: string): StorageOpt {
  const eq = raw.indexOf('=');
  if (eq < 0) throw new StorageOptionError(raw, 'expected DRIVER.KEY=VALUE (e.g. zfs.compression=lz4)');
  const name = raw.slice(0, eq).trim().toLowerCase();
  const dot = name.indexOf('.');
  const driver = dot > 0 ? PREFIXES[name.slice(0, dot)] : undefined;
  if (driver === undefined || dot === name.length - 1) {
    throw new StorageOptionError(raw, `the key must start with a driver's name: ${Object.keys(PREFIXES).map((p) => `${p}.`).join(', ')}`);
  }
  return { driver, key: name.slice(dot + 1), value: raw.slice(eq + 1).trim(), raw };
}

/** The options among `storageOpts` that belong to `driver` (the others are another driver's business). */
export function optionsFor(driver: SnapshotterName, storageOpts: readonly string[] = []): StorageOpt[] {
  return storageOpts.map(splitStorageOpt).filter((o) => o.driver === driver);
}

/** The error for a key `driver` does not have, listing the keys it has. */
export function unknownOption(opt: StorageOpt, known: readonly string[]): StorageOptionError {
  const has = known.length > 0 ? `${opt.driver} takes ${known.map((k) => `${opt.driver}.${k}`).join(', ')}` : `${opt.driver} takes no options`;
  return new StorageOptionError(opt.raw, `unknown option for the ${opt.driver} driver (${has})`);
}

/** `true|false`, also `on|off`, `yes|no`, `1|0` (daemon.json's booleans are strings). */
export function parseBoolOption(opt: StorageOpt): boolean {
  const v = opt.value.toLowerCase();
  if (['true', 'on', 'yes', '1'].includes(v)) return true;
  if (['false', 'off', 'no', '0'].includes(v)) return false;
  throw new StorageOptionError(opt.raw, 'expected true or false (on/off)');
}

/** One of `choices` (case-insensitive), returned lower-cased. */
export function parseChoiceOption<T extends string>(opt: StorageOpt, choices: readonly T[]): T {
  const v = opt.value.toLowerCase();
  if ((choices as readonly string[]).includes(v)) return v as T;
  throw new StorageOptionError(opt.raw, `expected ${choices.length > 1 ? `${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}` : choices[0]}`);
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40 };

/** `512M`, `10G`, `1073741824`, also `10GB` / `10GiB` (powers of 1024 as Docker's sizes); an option's value, or a bare text. */
export function parseSize(input: string | StorageOpt): number {
  const text = typeof input === 'string' ? input : input.value;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) {
    const why = `invalid size ${JSON.stringify(text)} (e.g. 512M, 10G)`;
    throw typeof input === 'string' ? new InvalidArgumentError(why) : new StorageOptionError(input.raw, why);
  }
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}
