import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { parseBlockfileOptions, parseSize } from '../../src/snapshotter/blockfile/blockfile.js';

describe('blockfile storage options', () => {
  test('sizes: plain bytes and K/M/G/T suffixes (powers of 1024, with or without B / iB)', () => {
    assert.equal(parseSize('1073741824'), 1 << 30);
    assert.equal(parseSize('512M'), 512 << 20);
    assert.equal(parseSize('10G'), 10 * 2 ** 30);
    assert.equal(parseSize('10GiB'), 10 * 2 ** 30);
    assert.equal(parseSize('1.5g'), 1.5 * 2 ** 30);
    for (const bad of ['', 'ten', '10X', '-1G']) assert.throws(() => parseSize(bad), (err: unknown) => isStratumError(err, 'ERR_INVALID_ARGUMENT'));
  });

  test("blockfile.* and Docker's dm.* names; other drivers' options ignored; unknown blockfile ones refused", () => {
    assert.deepEqual(parseBlockfileOptions(['blockfile.size=256M', 'blockfile.fs=xfs', 'blockfile.mkfsarg=-m 0', 'blockfile.mkfsarg=-L x', 'overlay.metacopy=on']), {
      size: 256 << 20,
      fsType: 'xfs',
      mkfsOptions: ['-m', '0', '-L', 'x'],
    });
    assert.deepEqual(parseBlockfileOptions(['dm.basesize=20G', 'dm.fs=ext4', 'dm.mkfsarg=-O ^has_journal']), { size: 20 * 2 ** 30, fsType: 'ext4', mkfsOptions: ['-O', '^has_journal'] });
    assert.deepEqual(parseBlockfileOptions([]), {});
    assert.throws(() => parseBlockfileOptions(['blockfile.fs=btrfs']), /ext4 or xfs/);
    assert.throws(() => parseBlockfileOptions(['blockfile.thinpool=x']), /unknown option for the blockfile driver/);
  });
});
