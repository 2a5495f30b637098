/** The on-disk encoders of src/erofs/format.ts, byte for byte where the kernel reads them. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c, dirBlocks, encodeDev, encodeDirBlock, encodeXattrName, writeInode, writeXattrIbody, xattrIbodySize, xattrIcount, DataLayout, S_IFREG } from '../../src/erofs/format.js';

describe('EROFS format encoders', () => {
  test('crc32c is the kernel’s crc32c(~0, …): no final inversion', () => {
    assert.equal(crc32c(Buffer.from('123456789')), ~0xe3069283 >>> 0);
  });

  test('device numbers as new_encode_dev', () => {
    assert.equal(encodeDev(1, 3), 0x103);
    assert.equal(encodeDev(259, 70000), ((70000 & 0xff) | (259 << 8) | ((70000 & ~0xff) << 12)) >>> 0);
  });

  test('xattr names: the longest built-in prefix becomes the index; other namespaces are refused', () => {
    assert.deepEqual(encodeXattrName('trusted.overlay.opaque', Buffer.from('y'), 's'), { index: 4, suffix: Buffer.from('overlay.opaque'), value: Buffer.from('y') });
    assert.equal(encodeXattrName('security.capability', Buffer.alloc(20), 's').index, 6);
    assert.equal(encodeXattrName('user.x', Buffer.alloc(0), 's').index, 1);
    assert.equal(encodeXattrName('system.posix_acl_access', Buffer.alloc(4), 's').suffix.length, 0);
    assert.throws(() => encodeXattrName('system.other', Buffer.alloc(1), 's'), { code: 'ERR_EROFS' });
    const xs = [encodeXattrName('user.ab', Buffer.from('xyz'), 's')];
    const size = xattrIbodySize(xs);
    assert.equal(size, 12 + 12, 'header, then 4 + 2 + 3 bytes rounded up to 12');
    assert.equal(xattrIcount(size), 4);
    const buf = Buffer.alloc(size);
    assert.equal(writeXattrIbody(buf, 0, xs), size);
    assert.deepEqual([...buf.subarray(12, 21)], [2, 1, 3, 0, ...Buffer.from('abxyz')]);
  });

  test('inodes: compact (32 bytes, 16-bit owner) and extended (64-bit size above 4 GiB, 32-bit owner, own mtime)', () => {
    const compact = Buffer.alloc(32);
    writeInode(compact, 0, { extended: false, layout: DataLayout.FlatInline, xattrIcount: 0, mode: S_IFREG | 0o644, nlink: 2, size: 4097, u: 7, ino: 9, uid: 65535, gid: 1, mtimeSec: 0, mtimeNsec: 0 });
    assert.equal(compact.readUInt16LE(0), 2 << 1);
    assert.equal(compact.readUInt16LE(6), 2);
    assert.equal(compact.readUInt32LE(8), 4097);
    assert.equal(compact.readUInt32LE(16), 7);
    assert.equal(compact.readUInt16LE(24), 65535);
    const ext = Buffer.alloc(64);
    const size = 5 * 1024 ** 3 + 1;
    writeInode(ext, 0, { extended: true, layout: DataLayout.FlatPlain, xattrIcount: 3, mode: S_IFREG | 0o4755, nlink: 70000, size, u: 1, ino: 2, uid: 100000, gid: 4_000_000_000, mtimeSec: 1_612_325_106, mtimeNsec: 123_456_789 });
    assert.equal(ext.readUInt16LE(0), 1);
    assert.equal(ext.readUInt16LE(2), 3);
    assert.equal(Number(ext.readBigUInt64LE(8)), size);
    assert.equal(ext.readUInt32LE(24), 100000);
    assert.equal(ext.readUInt32LE(28), 4_000_000_000);
    assert.equal(Number(ext.readBigInt64LE(32)), 1_612_325_106);
    assert.equal(ext.readUInt32LE(40), 123_456_789);
    assert.equal(ext.readUInt32LE(44), 70000);
  });

  test('directory blocks: dirents then names, split so no entry crosses a block', () => {
    const names = Array.from({ length: 400 }, (_, i) => `name-${String(i).padStart(4, '0')}`);
    const { blocks, size } = dirBlocks(names);
    assert.ok(blocks.length > 1);
    for (const b of blocks.slice(0, -1)) assert.ok(b.length * 12 + b.reduce((n, i) => n + names[i]!.length, 0) <= 4096);
    const last = blocks.at(-1)!;
    assert.equal(size, (blocks.length - 1) * 4096 + last.length * 12 + last.reduce((n, i) => n + names[i]!.length, 0));
    const block = encodeDirBlock([{ name: '.', nid: 1, type: 2 }, { name: 'ab', nid: 5, type: 1 }]);
    assert.equal(block.length, 24 + 3);
    assert.equal(block.readUInt16LE(8), 24);
    assert.equal(block.readUInt16LE(20), 25);
    assert.equal(Number(block.readBigUInt64LE(12)), 5);
    assert.equal(block.subarray(24).toString(), '.ab');
  });
});
