import { createRequire } from 'node:module';
import { LayerApplyError } from '../errors.js';
import type { NativeBinding } from '../sys/native.js';

const require = createRequire(import.meta.url);
let cached: NativeBinding | Error | undefined;

/**
 * The addon behind the NativeBinding contract. src/sys/native.ts owns loading (and encoding the
 * batch program); until its loader export is settled, the known export names are tried first,
 * then a bare addon exposing the contract directly (STRATUM_NATIVE_ADDON names an explicit build).
 */
export async function tryNativeBinding(): Promise<NativeBinding | Error> {
  if (cached) return cached;
  const tried: string[] = [];
  try {
    const mod = (await import('../sys/native.js')) as Record<string, unknown>;
    for (const name of ['loadNative', 'nativeBinding', 'loadNativeBinding', 'getNative']) {
      const fn = mod[name];
      if (typeof fn === 'function') return (cached = (await fn()) as NativeBinding);
    }
    for (const name of ['native', 'binding']) {
      if (mod[name] && typeof (mod[name] as NativeBinding).applyBatch === 'function') return (cached = mod[name] as NativeBinding);
    }
    tried.push('src/sys/native.js: no loader export yet');
  } catch (err) {
    tried.push(`src/sys/native.js: ${(err as Error).message.split('\n')[0]}`);
  }
  const override = process.env.STRATUM_NATIVE_ADDON;
  for (const rel of [...(override ? [override] : []), '../../../native/stratum.node', '../../../native/build/Release/stratum.node']) {
    try {
      const b = require(rel) as NativeBinding;
      // A raw addon whose applyBatch takes an encoded program is not the contract: needs the sys wrapper.
      if (b.applyBatch.length === 2 || override) return (cached = b);
      tried.push(`${rel}: raw addon without the src/sys wrapper`);
    } catch (err) {
      tried.push(`${rel}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  cached = new Error(`native addon not loadable (${tried.join('; ')})`);
  return cached;
}

export async function nativeBinding(subject: string): Promise<NativeBinding> {
  const b = await tryNativeBinding();
  if (b instanceof Error) throw new LayerApplyError(subject, b.message);
  return b;
}
