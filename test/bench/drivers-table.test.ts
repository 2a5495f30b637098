import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cacheKey, DEFAULT_BIG_IMAGE, DRIVER_IMAGES } from '../../bench/lib/big-image-registry.js';
import { cellMedian, formatRatio, formatValue, ratio, ratios, renderTable, type Column, type Metric, type Samples } from '../../bench/lib/drivers-table.js';
import { PAUSE_ELF, TRUE_ELF } from '../fixtures/big-image.js';

const metrics: Metric[] = [
  { id: 'pull', label: 'pull', unit: 'seconds' },
  { id: 'disk', label: 'disk of 10', unit: 'bytes' },
];
const columns: Column[] = [
  { name: 'overlay', anchor: 'docker overlay2' },
  { name: 'zfs', anchorNote: 'none (no Docker zfs here)' },
  { name: 'erofs', anchor: 'docker overlay2', unavailable: 'not in this build' },
  { name: 'docker overlay2' },
];
const samples: Samples = {
  overlay: { pull: [1.2, 0.9, 1.0], disk: [400_000] },
  zfs: { pull: [3, 5] },
  'docker overlay2': { pull: [2.0, 2.0, 2.2], disk: [0] },
};

describe('drivers table', () => {
  test('medians, ratios and their guards', () => {
    assert.equal(cellMedian(samples, 'overlay', 'pull'), 1.0);
    assert.equal(cellMedian(samples, 'zfs', 'pull'), 4);
    assert.equal(cellMedian(samples, 'zfs', 'disk'), undefined);
    assert.equal(ratio(1, 2), 0.5);
    assert.equal(ratio(1, 0), undefined);
    assert.equal(ratio(undefined, 2), undefined);
    // disk: the anchor's 0 bytes gives no ratio; zfs has no anchor
    assert.deepEqual(ratios(columns, metrics, samples), { overlay: { pull: 0.5 } });
  });

  test('cells with the same reason share one note naming their columns', () => {
    const cols: Column[] = [{ name: 'a' }, { name: 'b' }, { name: 'c' }];
    const lines = renderTable(cols, [metrics[0]!], { b: { pull: [1] } }, { a: { pull: 'none here' }, c: { pull: 'none here' } });
    assert.equal(lines[3], '| pull | n/a [1] | 1.00 s | n/a [1] |');
    assert.equal(lines[5], '[1] a, c: pull: none here');
  });

  test('units', () => {
    assert.equal(formatValue('seconds', 0.0005), '500 µs');
    assert.equal(formatValue('seconds', 0.0123), '12.3 ms');
    assert.equal(formatValue('seconds', 0.456), '456 ms');
    assert.equal(formatValue('seconds', 1.234), '1.23 s');
    assert.equal(formatValue('seconds', 12.34), '12.3 s');
    assert.equal(formatValue('bytes', 420_000), '0.42 MB');
    assert.equal(formatValue('bytes', 152_400_000), '152 MB');
    assert.equal(formatRatio(0.5), '0.50×');
    assert.equal(formatRatio(12.34), '12.3×');
  });

  test('the table on fixed inputs, with notes for what did not run', () => {
    const lines = renderTable(columns, metrics, samples, { zfs: { disk: 'no anchor data' }, 'docker overlay2': {} });
    assert.deepEqual(lines, [
      '| measurement | overlay | zfs | erofs | docker overlay2 |',
      '| --- | --- | --- | --- | --- |',
      '| ratio to | docker overlay2 | none (no Docker zfs here) | docker overlay2 | (anchor) |',
      '| pull | 1.00 s (0.50×) | 4.00 s | n/a [1] | 2.00 s |',
      '| disk of 10 | 0.40 MB | n/a [2] | n/a [1] | 0.00 MB |',
      '',
      '[1] erofs: not in this build',
      '[2] zfs: disk of 10: no anchor data',
    ]);
  });
});

describe('drivers bench images', () => {
  test("bench/big:1's cache key is unchanged by the driverExtras option", () => {
    // The key bench:pull and bench:unpack have used since the cache format 1 (.bench/registry-<key>).
    assert.equal(cacheKey(DEFAULT_BIG_IMAGE), '8d10e6a51f923571');
    assert.notEqual(cacheKey(DRIVER_IMAGES.big.options, DRIVER_IMAGES.big.reference), cacheKey(DEFAULT_BIG_IMAGE));
  });

  test('the tiny static programs are ELF64 x86-64 executables', () => {
    for (const elf of [TRUE_ELF, PAUSE_ELF]) {
      assert.deepEqual([...elf.subarray(0, 5)], [0x7f, 0x45, 0x4c, 0x46, 2]);
      assert.equal(elf.readUInt16LE(18), 0x3e);
      assert.equal(elf.readBigUInt64LE(24), 0x400000n + 120n);
    }
  });
});
