import type { Writable } from 'node:stream';

/**
 * Waits for `drain`, or fails when the output errors or closes first: a reader that went away
 * (`| head`, an aborted ingest) must end the writer's loop, so its caller's cleanup runs.
 */
export function drained(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (err?: Error) => {
      out.off('drain', onDrain);
      out.off('error', settle);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(out.errored ?? new Error('the output was closed before everything was written to it'));
    out.on('drain', onDrain);
    out.on('error', settle);
    out.on('close', onClose);
  });
}
