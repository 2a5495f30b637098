import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { NotFoundError } from '../../errors.js';
import { UsageError } from '../args.js';
import { openEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** docker load: -i FILE or standard input; "Loaded image: NAME" per image (its ID when it has no name). */
export async function run(inv: Invocation): Promise<number> {
  const file = inv.string('input');
  if (file === undefined && process.stdin.isTTY) throw new UsageError('requested load from standard input, but it is a terminal: use -i FILE or redirect');
  const input: Readable = file === undefined || file === '-' ? process.stdin : createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    if (input === process.stdin) return resolve();
    input.once('open', () => resolve());
    input.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new NotFoundError(`cannot read ${file}: no such file`) : err));
  });
  await opened;
  const onAbort = () => input.destroy(inv.signal.reason as Error);
  inv.signal.addEventListener('abort', onAbort, { once: true });
  const baseName = inv.string('base-name');
  const engine = await openEngine(inv.globals);
  try {
    const result = await engine.load(input, baseName !== undefined ? { baseName } : {});
    for (const image of result.images) inv.stdout.line(inv.bool('quiet') ? (image.name ?? image.id) : image.name ? `Loaded image: ${image.name}` : `Loaded image ID: ${image.id}`);
  } finally {
    inv.signal.removeEventListener('abort', onAbort);
    await engine.close();
  }
  return 0;
}
