import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rawAddon, type RawAddon } from '../../src/sys/addon.js';

/** Every export, called with too few arguments, throws naming its usage (none returns undefined in silence). */
describe('addon argument checks', () => {
  const calls: Array<[keyof RawAddon, string]> = [
    ['openRoot', 'openRoot(path)'],
    ['closeFd', 'closeFd(fd)'],
    ['createFile', 'createFile(rootFd, path, mode?)'],
    ['finishFile', 'finishFile(fd, meta, path?)'],
    ['lgetxattrs', 'lgetxattrs(path)'],
    ['lsetxattr', 'lsetxattr(path, name, value: Buffer)'],
    ['dropCache', 'dropCache(fd, offset, length)'],
    ['unmount', 'unmount(target, detach?)'],
    ['applyProgram', 'applyProgram(rootFd, program, datas)'],
    ['digestCreate', 'digestCreate(fd, algorithm, dropBehind?, name?)'],
    ['digestFinal', 'digestFinal(handle)'],
    ['tlsContext', 'tlsContext({ca, cert?, key?, rejectUnauthorized?})'],
    ['tlsRequest', 'tlsRequest(ctx, {address, port, host, head: Buffer, connectTimeoutMs?, timeoutMs?, conn?})'],
    ['tlsReceive', 'tlsReceive(conn, digestHandle, maxBytes)'],
    ['tlsRead', 'tlsRead(conn, maxBytes)'],
    ['tlsClose', 'tlsClose(conn)'],
  ];
  for (const [name, usage] of calls) {
    test(name, () => {
      const fn = rawAddon()[name] as (...args: unknown[]) => unknown;
      assert.throws(() => fn(), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_ARGUMENT' && err.message === usage);
    });
  }
});
