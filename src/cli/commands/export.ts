import { parsePlatform } from '../../oci/platform.js';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { PassThrough, type Writable } from 'node:stream';
import { openEngine, UsageError } from '../context.js';
import type { Invocation } from '../invocation.js';
import { openOutputFile } from '../output-file.js';

export async function run(inv: Invocation): Promise<number> {
  const output = inv.string('output');
  if (!output) throw new UsageError('"stratum export" requires -o FILE (or -o - for standard output)');
  const engine = await openEngine(inv.globals, { existing: true });
  try {
    const platformFlag = inv.string('platform');
    await writeOutput(inv, output, (out) => engine.export(inv.arg(0), out, platformFlag ? { platform: parsePlatform(platformFlag) } : {}));
  } finally {
    await engine.close();
  }
  return 0;
}

/**
 * Runs `produce` into FILE (written as FILE.partial, renamed when complete, removed on failure)
 * or standard output for `-`. An interrupt or the reader leaving destroys the stream, so the
 * producer's own cleanup (unmounting the view it exported from) runs before the exit.
 */
export async function writeOutput(inv: Invocation, output: string, produce: (out: Writable) => Promise<unknown>): Promise<void> {
  if (output === '-') {
    if (inv.stdout.isTTY) throw new UsageError('cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect standard output');
    const pass = new PassThrough({ highWaterMark: 1 << 20 });
    // Its failures reach the producer through its writes; an 'error' with no listener would
    // end the process before the producer's cleanup ran.
    pass.on('error', () => {});
    pass.pipe(inv.stdout.stream as Writable);
    const onAbort = () => pass.destroy(inv.signal.reason as Error);
    inv.signal.addEventListener('abort', onAbort, { once: true });
    inv.stdout.onClosed(() => pass.destroy(Object.assign(new Error('standard output closed'), { code: 'EPIPE' })));
    try {
      await produce(pass);
    } finally {
      inv.signal.removeEventListener('abort', onAbort);
    }
    return;
  }
  const partial = `${output}.partial`;
  const file = await openOutputFile(partial, output);
  const stream = createWriteStream('', { fd: file, highWaterMark: 1 << 20 });
  stream.on('error', () => {}); // seen by the producer's writes, as above
  const onAbort = () => stream.destroy(inv.signal.reason as Error);
  inv.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await produce(stream);
    await rename(partial, output);
  } catch (err) {
    stream.destroy();
    await rm(partial, { force: true });
    throw err;
  } finally {
    inv.signal.removeEventListener('abort', onAbort);
  }
}
