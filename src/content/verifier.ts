import { Transform } from 'node:stream';
import { DigestMismatchError, SizeMismatchError } from '../errors.js';
import { digestAlgorithm, Digester, type Digest } from '../oci/digest.js';

export interface VerifierOptions {
  /** The size the descriptor promises; more bytes fail at once, fewer at the end. Unknown: digest only. */
  size?: number;
  /** Called with the bytes seen so far, at most every 100 ms and once at the end. */
  progress?: (current: number) => void;
}

/**
 * A verifying pass-through: counts and hashes every byte, and holds the last chunk back until the
 * end proves size and digest, so a wrong blob never reaches its reader whole (a registry would
 * commit an upload whose last byte arrived; a file would be renamed into place). Errors with
 * SizeMismatchError / DigestMismatchError naming `subject`.
 */
export function verifier(digest: Digest, subject: string, options: VerifierOptions = {}): Transform {
  const digester = new Digester(digestAlgorithm(digest));
  const { size, progress } = options;
  let held: Buffer | undefined;
  let lastReport = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      digester.update(chunk);
      if (size !== undefined && digester.size > size) {
        done(new SizeMismatchError(subject, size, digester.size, true));
        return;
      }
      if (progress) {
        const now = Date.now();
        if (now - lastReport >= 100) {
          lastReport = now;
          progress(digester.size);
        }
      }
      const out = held;
      held = chunk;
      done(null, out);
    },
    flush(done) {
      if (size !== undefined && digester.size !== size) {
        done(new SizeMismatchError(subject, size, digester.size));
        return;
      }
      const actual = digester.digest();
      if (actual !== digest) {
        done(new DigestMismatchError(subject, digest, actual));
        return;
      }
      progress?.(digester.size);
      done(null, held);
    },
  });
}
