import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChunkedDecoder } from '../../../src/registry/transport/chunked.js';

/** Feeds `wire` to a decoder in pieces of `step` bytes; the decoded body and whether it ended. */
function decode(wire: string, step: number): { body: string; done: boolean } {
  const d = new ChunkedDecoder();
  const bytes = Buffer.from(wire, 'latin1');
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += step) out.push(...d.push(bytes.subarray(i, i + step)));
  return { body: Buffer.concat(out).toString('latin1'), done: d.done };
}

describe('ChunkedDecoder', () => {
  const wire = '7\r\n{"a":1}\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: y\r\n\r\n';
  test('decodes sizes in hex, drops extensions and trailers, whatever the piece boundaries', () => {
    for (const step of [1, 2, 3, 7, 1000]) assert.deepEqual(decode(wire, step), { body: '{"a":1}abcdefghijklmnopqrstuvwxyz', done: true }, `step ${step}`);
  });
  test('an empty body and an unfinished one', () => {
    assert.deepEqual(decode('0\r\n\r\n', 1), { body: '', done: true });
    assert.deepEqual(decode('5\r\nhel', 2), { body: 'hel', done: false });
  });
  test('malformed framing is an error naming what is wrong', () => {
    assert.throws(() => decode('zz\r\n', 10), /bad chunk size line "zz"/);
    assert.throws(() => decode('2\r\nabX\r\n', 10), /no CRLF after a chunk/);
    assert.throws(() => decode('1'.repeat(5000), 5000), /over 4096 bytes/);
  });
});
