/**
 * xattr access for the suite through the project's native addon (Node has no xattr calls):
 * lgetxattrs to read, lsetxattr (or an applyBatch `setxattr` op) to write, checked by reading back. Undefined, with the reason, when
 * the addon cannot be loaded.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { NativeBinding } from '../../sys/native.js';
import type { XattrReader } from './tree.js';

export interface Xattrs {
  read: XattrReader;
  /** Sets name=value on root/rel (rel resolved inside root, never following a symlink). */
  set(root: string, rel: string, name: string, value: Buffer): Promise<void>;
}

let cached: Promise<Xattrs | string> | undefined;

/** The xattr calls, or a string saying why they are unavailable. */
export function xattrs(): Promise<Xattrs | string> {
  cached ??= load();
  return cached;
}

function usable(b: unknown): b is NativeBinding {
  const n = b as Partial<NativeBinding> | null;
  return typeof n === 'object' && n !== null && typeof n.lgetxattrs === 'function' && (typeof n.lsetxattr === 'function' || typeof n.applyBatch === 'function');
}

async function load(): Promise<Xattrs | string> {
  const reasons: string[] = [];
  let binding: NativeBinding | undefined;
  try {
    const mod = (await import('../../sys/native.js')) as Record<string, unknown>;
    for (const name of ['loadNative', 'getNative', 'nativeBinding', 'native', 'binding', 'default']) {
      let candidate = mod[name];
      try {
        if (typeof candidate === 'function') candidate = await (candidate as () => unknown)();
      } catch (err) {
        reasons.push(`src/sys/native.js ${name}(): ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      if (usable(candidate)) {
        binding = candidate;
        break;
      }
    }
  } catch (err) {
    reasons.push(`src/sys/native.js: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!binding) {
    const require = createRequire(import.meta.url);
    for (const rel of ['../../../../native/build/Release/stratum.node', '../../../../native/stratum.node', '../../../../build/Release/stratum.node']) {
      try {
        const candidate: unknown = require(rel);
        if (usable(candidate)) {
          binding = candidate;
          break;
        }
        reasons.push(`${rel}: lacks lgetxattrs and lsetxattr/applyBatch`);
      } catch (err) {
        reasons.push(`${rel}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  if (!binding) return `native addon with lgetxattrs not loadable (${reasons.join('; ')})`;
  const b = binding;
  return {
    read: (absPath) => b.lgetxattrs(absPath),
    async set(root, rel, name, value) {
      const abs = join(root, rel);
      if (typeof b.lsetxattr === 'function') b.lsetxattr(abs, name, value);
      else {
        const fd = b.openRoot(root);
        try {
          await b.applyBatch(fd, [{ op: 'setxattr', path: rel, name, value }]);
        } finally {
          b.closeFd(fd);
        }
      }
      // A setter that silently does nothing would make every xattr comparison vacuous.
      const back = b.lgetxattrs(abs)[name];
      if (!back || !back.equals(value)) throw new Error(`setting xattr ${name} on ${abs} did not take (read back: ${back?.toString('hex') ?? 'absent'})`);
    },
  };
}
