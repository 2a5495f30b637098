/**
 * The snapshotter conformance suite, for backends written outside stratum (containerd's
 * `snapshots/testsuite`): metadata rules with their exact errors, filesystem behaviour through
 * real mounts, long random chains against a flat reference, usage, cleanup and concurrency.
 * stratum's overlay, native, btrfs and zfs backends all run it unchanged. It registers
 * `node:test` tests, so call it from a test file run by `node --test`:
 *
 *   import { runConformance } from 'stratum/snapshotter/testsuite';
 *   runConformance({ name: 'mine', open: (root) => MySnapshotter.open(root) });
 *
 * Mount tests need root (CAP_SYS_ADMIN); see shared/snapshotter-conformance.md for the contract.
 *
 * @packageDocumentation
 */
export { runConformance, type Register, type TestFn } from './suite.js';
export { Harness, type Backend } from './harness.js';
