import { loadNative, type NativeBinding } from '../../src/sys/native.js';

/** The native addon, or why a test file that needs it (and root) must skip. */
export function nativeOrSkip(needsRootFor: string): { binding?: NativeBinding; skip: string | false } {
  let binding: NativeBinding;
  try {
    binding = loadNative();
  } catch (err) {
    return { skip: `native addon unavailable: ${(err as Error).message}` };
  }
  return { binding, skip: process.getuid?.() !== 0 ? `needs root (${needsRootFor})` : false };
}
