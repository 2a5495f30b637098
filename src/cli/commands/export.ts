import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadImageByName } from '../../image/image.js';
import { withImageRootfs } from '../../image/rootfs.js';
import { writeTreeAsTar } from '../../image/export.js';
import { GLOBAL_OPTIONS, openImageSnapshotter, openStore, UsageError, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum export [--snapshotter NAME] [--store DIR] NAME[:TAG|@DIGEST] -o FILE

Write the image's flattened root filesystem as a tar file (- for standard output).`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...GLOBAL_OPTIONS, output: { type: 'string', short: 'o' } } });
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  if (!values.output) throw new UsageError('export needs -o FILE (or -o - for standard output)');
  const store = await openStore(values as GlobalFlags);
  const image = await loadImageByName(store, positionals[0]!);
  const snapshotter = await openImageSnapshotter(values as GlobalFlags, store);
  const toStdout = values.output === '-';
  const partial = `${values.output}.partial`;
  try {
    await withImageRootfs(store, snapshotter, image, (dir) => writeTreeAsTar(dir, toStdout ? process.stdout : createWriteStream(partial)));
    if (!toStdout) await rename(partial, values.output);
  } catch (err) {
    if (!toStdout) await rm(partial, { force: true });
    throw err;
  } finally {
    await snapshotter.close();
  }
  return 0;
}
