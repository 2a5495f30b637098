import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { openEngine, parseCommand, UsageError, type GlobalFlags } from '../context.js';

export const usage = `Usage: stratum export [--snapshotter NAME] [--store DIR] IMAGE -o FILE

Write the image's flattened root filesystem as a tar file (- for standard output).`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(argv, { output: { type: 'string', short: 'o' } });
  if (positionals.length !== 1) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  if (!values.output) throw new UsageError('export needs -o FILE (or -o - for standard output)');
  const engine = await openEngine(values as GlobalFlags);
  const toStdout = values.output === '-';
  const partial = `${values.output}.partial`;
  try {
    await engine.export(positionals[0]!, toStdout ? process.stdout : createWriteStream(partial));
    if (!toStdout) await rename(partial, values.output);
  } catch (err) {
    if (!toStdout) await rm(partial, { force: true });
    throw err;
  } finally {
    await engine.close();
  }
  return 0;
}
