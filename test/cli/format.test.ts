import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ellipsis, humanDuration, humanSize, table, timeAgo } from '../../src/cli/format.js';
import { progressBar } from '../../src/cli/progress.js';

describe('docker-style formatting', () => {
  it('humanSize matches go-units HumanSizeWithPrecision', () => {
    const cases: [number, number, string][] = [
      [0, 3, '0B'],
      [999, 3, '999B'],
      [1000, 3, '1kB'],
      [1500, 3, '1.5kB'],
      [131_300_000, 3, '131MB'],
      [131_300_000, 4, '131.3MB'],
      [65_536_000, 3, '65.5MB'],
      [1_234_567_890, 4, '1.235GB'],
      [32, 4, '32B'],
    ];
    for (const [bytes, precision, want] of cases) assert.equal(humanSize(bytes, precision), want, `${bytes}`);
  });

  it('humanDuration matches go-units HumanDuration', () => {
    const s = 1000;
    const h = 3600 * s;
    const cases: [number, string][] = [
      [500, 'Less than a second'],
      [1 * s, '1 second'],
      [45 * s, '45 seconds'],
      [61 * s, 'About a minute'],
      [30 * 60 * s, '30 minutes'],
      [h, 'About an hour'],
      [30 * h, '30 hours'],
      [5 * 24 * h, '5 days'],
      [3 * 7 * 24 * h, '3 weeks'],
      [100 * 24 * h, '3 months'],
      [10 * 365 * 24 * h, '10 years'],
    ];
    for (const [ms, want] of cases) assert.equal(humanDuration(ms), want, `${ms}`);
    assert.equal(timeAgo('2016-01-01T00:00:00Z', Date.parse('2026-01-02T00:00:00Z')), '10 years ago');
    assert.equal(timeAgo(undefined), 'N/A');
  });

  it('ellipsis, table and progress bar', () => {
    assert.equal(ellipsis('abcdef', 4), 'abc…');
    assert.equal(ellipsis('abc', 4), 'abc');
    assert.equal(table(['A', 'LONGER HEADER'], [['x', 'y']]), 'A         LONGER HEADER\nx         y');
    assert.equal(progressBar(50, 100), `[${'='.repeat(25)}>${' '.repeat(24)}]  50B/100B`);
    assert.equal(progressBar(100, 100), `[${'='.repeat(50)}>]  100B/100B`);
    assert.equal(progressBar(1234, undefined), '1.234kB');
  });
});
