import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { NotFoundError, StratumError } from '../errors.js';

/** Opens `path` for writing; a missing directory or a denied write is an error that names `shownAs`. */
export async function openOutputFile(path: string, shownAs: string): Promise<FileHandle> {
  try {
    return await open(path, 'w', 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`cannot write ${shownAs}: directory ${dirname(shownAs)} does not exist`);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EISDIR') {
      throw new StratumError('ERR_INVALID_ARGUMENT', `cannot write ${shownAs}: ${(err as Error).message.replace(/^[A-Z]+: /, '').replace(/, open .*$/, '')}`);
    }
    throw err;
  }
}
