import { UsageError } from './args.js';
import type { Invocation } from './invocation.js';

/** The repeatable `--annotation KEY=VALUE` flag as a record. */
export function annotationsFlag(inv: Invocation): Record<string, string> {
  const annotations: Record<string, string> = {};
  for (const kv of inv.strings('annotation')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`annotation ${JSON.stringify(kv)} is not KEY=VALUE`);
    annotations[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return annotations;
}
