/**
 * The snapshotter conformance suite (snapshotter-conformance.md): one set of tests that every
 * backend runs unchanged. A backend test file calls runConformance with a way to open the
 * backend on a root and, if its prerequisites can be missing, a skipReason that says which.
 */
import { before, describe, it, type TestContext } from 'node:test';
import { registerChains } from './chains.js';
import { registerExtras } from './extras.js';
import { registerFilesystem } from './filesystem.js';
import { Harness, type Backend } from './harness.js';
import { registerMetadataRules } from './metadata.js';

export type { Backend } from './harness.js';

export type TestFn = (h: Harness, t: TestContext) => Promise<void>;
/** Registers one test that gets a snapshotter on a fresh root, torn down (mounts included) after. */
export type Register = (name: string, fn: TestFn, options?: { timeout?: number }) => void;

export function runConformance(backend: Backend, specifics?: (test: Register) => void): void {
  describe(`snapshotter conformance: ${backend.name}`, () => {
    let skip: string | undefined;
    before(async () => {
      skip = await backend.skipReason?.();
      if (skip) console.error(`SKIP ${backend.name}: ${skip}`);
    });
    const test: Register = (name, fn, options = {}) => {
      it(name, { timeout: options.timeout ?? 30_000 }, async (t) => {
        if (skip) {
          t.skip(`SKIP ${backend.name}: ${skip}`);
          return;
        }
        const h = await Harness.open(backend);
        let passed = false;
        try {
          await fn(h, t);
          passed = true;
        } finally {
          try {
            await h.dispose();
          } catch (err) {
            if (passed) throw err; // else the test's own failure is the one to see
          }
        }
      });
    };
    describe('metadata rules', () => registerMetadataRules(test));
    describe('filesystem behaviour through real mounts', () => registerFilesystem(test));
    describe('long chains', () => registerChains(test));
    describe('usage, cleanup, commit and concurrency', () => registerExtras(test));
    if (specifics) describe(`${backend.name} specifics`, () => specifics(test));
  });
}
