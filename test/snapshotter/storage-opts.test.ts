import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isStratumError, StorageOptionError } from '../../src/errors.js';
import { parseBtrfsOptions, parseNativeOptions, parseOverlayOptions, parseZfsOptions } from '../../src/snapshotter/backends.js';
import { splitStorageOpt, validateStorageOpts } from '../../src/snapshotter/index.js';
import { overlayMountOptions } from '../../src/snapshotter/overlay/overlay.js';

/** The error names the option as given, and is an ERR_INVALID_ARGUMENT. */
function refusal(option: string, reason: RegExp): (err: unknown) => true {
  return (err: unknown) => {
    assert.ok(err instanceof StorageOptionError, String(err));
    assert.ok(isStratumError(err, 'ERR_INVALID_ARGUMENT'));
    assert.equal(err.option, option);
    assert.match(err.message, new RegExp(`storage option ${JSON.stringify(option).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(err.message, reason);
    return true;
  };
}

function refuses(fn: () => unknown, option: string, reason: RegExp): void {
  assert.throws(fn, refusal(option, reason));
}

describe('storage options per driver', () => {
  test("a prefix names the driver; Docker's overlay2., vfs. and dm. are aliases", () => {
    assert.deepEqual(splitStorageOpt('overlay2.metacopy=on'), { driver: 'overlay', key: 'metacopy', value: 'on', raw: 'overlay2.metacopy=on' });
    assert.equal(splitStorageOpt('vfs.reflink=false').driver, 'native');
    assert.equal(splitStorageOpt('dm.basesize=1G').driver, 'blockfile');
    assert.equal(splitStorageOpt('ZFS.Compression=LZ4').key, 'compression');
    refuses(() => splitStorageOpt('compression=lz4'), 'compression=lz4', /must start with a driver's name/);
    refuses(() => splitStorageOpt('aufs.mountopt=x'), 'aufs.mountopt=x', /must start with a driver's name/);
    refuses(() => splitStorageOpt('zfs.compression'), 'zfs.compression', /KEY=VALUE/);
  });

  test('zfs: compression, recordsize, fsname; each bad value and unknown key named', () => {
    assert.deepEqual(parseZfsOptions(['zfs.compression=lz4', 'zfs.recordsize=64K', 'zfs.fsname=tank/stratum', 'btrfs.compression=zstd']), { compression: 'lz4', recordsize: 65536, fsname: 'tank/stratum' });
    for (const c of ['off', 'on', 'gzip', 'gzip-9', 'zstd', 'zstd-19', 'lzjb', 'zle']) assert.equal(parseZfsOptions([`zfs.compression=${c}`]).compression, c);
    refuses(() => parseZfsOptions(['zfs.compression=brotli']), 'zfs.compression=brotli', /lz4/);
    refuses(() => parseZfsOptions(['zfs.recordsize=100K']), 'zfs.recordsize=100K', /power of two/);
    refuses(() => parseZfsOptions(['zfs.recordsize=lots']), 'zfs.recordsize=lots', /invalid size/);
    refuses(() => parseZfsOptions(['zfs.dedup=on']), 'zfs.dedup=on', /unknown option for the zfs driver \(zfs takes zfs.compression, zfs.recordsize, zfs.fsname\)/);
  });

  test('btrfs: compression (levels checked), size and min_space (Docker: size never below min_space)', () => {
    assert.deepEqual(parseBtrfsOptions(['btrfs.compression=zstd:1', 'btrfs.size=1G', 'btrfs.min_space=100M']), { compression: 'zstd:1', size: 1 << 30, minSpace: 100 << 20 });
    assert.equal(parseBtrfsOptions(['btrfs.compression=none']).compression, 'no');
    refuses(() => parseBtrfsOptions(['btrfs.compression=zstd:30']), 'btrfs.compression=zstd:30', /zstd:1\.\.15/);
    refuses(() => parseBtrfsOptions(['btrfs.size=10M', 'btrfs.min_space=20M']), 'btrfs.size=10M', /min_space/);
    refuses(() => parseBtrfsOptions(['btrfs.quota=on']), 'btrfs.quota=on', /unknown option for the btrfs driver/);
  });

  test('overlay: metacopy, redirect_dir, index as mount options; overlay2.size refused with the reason', () => {
    const options = parseOverlayOptions(['overlay2.metacopy=on', 'overlay.redirect_dir=on', 'overlay.index=off', 'overlay2.override_kernel_check=true']);
    assert.deepEqual(options, { metacopy: true, redirectDir: 'on', index: false });
    assert.deepEqual(overlayMountOptions(options), ['index=off', 'redirect_dir=on', 'metacopy=on']);
    refuses(() => parseOverlayOptions(['overlay.metacopy=maybe']), 'overlay.metacopy=maybe', /true or false/);
    refuses(() => parseOverlayOptions(['overlay.redirect_dir=sideways']), 'overlay.redirect_dir=sideways', /on, off, follow or nofollow/);
    refuses(() => parseOverlayOptions(['overlay2.size=10G']), 'overlay2.size=10G', /project quotas/);
    refuses(() => parseOverlayOptions(['overlay.volatile=on']), 'overlay.volatile=on', /unknown option for the overlay driver/);
  });

  test('native: reflink true|false (vfs. too)', () => {
    assert.deepEqual(parseNativeOptions(['native.reflink=false']), { reflink: false });
    assert.deepEqual(parseNativeOptions(['vfs.reflink=true']), { reflink: true });
    refuses(() => parseNativeOptions(['vfs.size=10G']), 'vfs.size=10G', /native takes native.reflink/);
  });

  test("validateStorageOpts checks every driver's options, not only the one in use, and returns that one's", async () => {
    assert.deepEqual(await validateStorageOpts(['zfs.compression=lz4', 'native.reflink=false'], 'native'), { reflink: false });
    await assert.rejects(validateStorageOpts(['native.reflink=false', 'zfs.compression=fast'], 'native'), refusal('zfs.compression=fast', /lz4/));
    await assert.rejects(validateStorageOpts(['fuse-overlayfs.mountopt=x']), refusal('fuse-overlayfs.mountopt=x', /fuse-overlayfs takes no options/));
  });
});
