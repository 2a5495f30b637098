import assert from 'node:assert/strict';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { acquireFileLock, isLockHeld, readLockOwner, tryAcquireFileLock } from '../../src/content/lock.js';
import { makeTempDir, removeDir, startChild, type Child } from './store-fixtures.js';

describe('file locks', () => {
  let dir: string;
  const children: Child[] = [];
  before(async () => {
    dir = await makeTempDir('lock');
  });
  after(async () => {
    for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
    await removeDir(dir);
  });

  it('is exclusive within a process, records its owner, and is released', async () => {
    const path = join(dir, 'a', 'x.lock'); // the directory is created on demand
    const release = await acquireFileLock(path);
    const owner = await readLockOwner(path);
    assert.equal(owner?.pid, process.pid);
    assert.equal(owner?.hostname, hostname());
    assert.ok(await isLockHeld(path));
    assert.equal(await tryAcquireFileLock(path), null);
    await assert.rejects(acquireFileLock(path, { timeoutMs: 80 }), (err: unknown) => {
      assert.ok(isStratumError(err, 'ERR_LOCKED'));
      assert.match((err as Error).message, new RegExp(`x\\.lock: still locked by pid ${process.pid}`));
      return true;
    });
    await release();
    await release(); // idempotent
    await assert.rejects(stat(path), /ENOENT/);
    const again = await tryAcquireFileLock(path);
    assert.ok(again);
    await again();
  });

  it('a waiter gets the lock as soon as the holder releases it', async () => {
    const path = join(dir, 'wait.lock');
    const release = await acquireFileLock(path);
    const t0 = Date.now();
    setTimeout(() => void release(), 150);
    const second = await acquireFileLock(path, { timeoutMs: 5000, pollMs: 5, maxPollMs: 20 });
    const waited = Date.now() - t0;
    assert.ok(waited >= 140 && waited < 1500, `waited ${waited} ms`);
    await second();
  });

  it('breaks the lock of a SIGKILLed process', async () => {
    const path = join(dir, 'killed.lock');
    const child = startChild(['lock-hold', path]);
    children.push(child);
    await child.firstReport;
    assert.equal((await readLockOwner(path))?.pid, child.process.pid);
    assert.equal(await tryAcquireFileLock(path), null, 'live holder must not be broken');
    child.process.kill('SIGKILL');
    await child.exit;
    const release = await acquireFileLock(path, { timeoutMs: 2000 });
    assert.equal((await readLockOwner(path))?.pid, process.pid);
    await release();
  });

  it('treats a reused pid (different process start time) as stale', async () => {
    const path = join(dir, 'reused.lock');
    const owner = { pid: process.pid, hostname: hostname(), processStart: '1', acquiredAt: new Date().toISOString(), nonce: 'old' };
    await writeFile(path, JSON.stringify(owner));
    const release = await acquireFileLock(path, { timeoutMs: 1000 });
    assert.notEqual((await readLockOwner(path))?.nonce, 'old');
    await release();
  });

  it('never breaks a lock held by another host, and breaks an unreadable one only after a grace period', async () => {
    const foreign = join(dir, 'foreign.lock');
    await writeFile(foreign, JSON.stringify({ pid: 999999, hostname: 'some-other-host', acquiredAt: '', nonce: 'n' }));
    assert.equal(await tryAcquireFileLock(foreign), null);

    const empty = join(dir, 'empty.lock');
    await writeFile(empty, '');
    assert.equal(await tryAcquireFileLock(empty), null, 'a just-created empty lock may be mid-write');
    const old = new Date(Date.now() - 60_000);
    await utimes(empty, old, old);
    const release = await tryAcquireFileLock(empty);
    assert.ok(release);
    await release();
  });

  it('keeps mutual exclusion when several processes break the same stale lock at once', async () => {
    // A dead child's pid on this host makes a stale lock.
    const dead = startChild(['lock-hold', join(dir, 'unused.lock')]);
    children.push(dead);
    await dead.firstReport;
    dead.process.kill('SIGKILL');
    await dead.exit;
    for (let round = 0; round < 4; round++) {
      const path = join(dir, `contended-${round}.lock`);
      const log = join(dir, `contended-${round}.log`);
      await writeFile(log, '');
      await writeFile(path, JSON.stringify({ pid: dead.process.pid, hostname: hostname(), acquiredAt: '', nonce: 'stale' }));
      const workers = [1, 2, 3, 4].map(() => startChild(['lock-mutex', path, log, '3']));
      children.push(...workers);
      const exits = await Promise.all(workers.map((w) => w.exit));
      for (const e of exits) assert.equal(e.code, 0, e.stderr);
      const lines = (await readFile(log, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 4 * 3 * 2);
      for (let i = 0; i < lines.length; i += 2) {
        const [enter, exit] = [lines[i]!, lines[i + 1]!];
        assert.match(enter, /^enter /, `round ${round} line ${i}: ${enter}`);
        assert.equal(exit, enter.replace('enter', 'exit'), `round ${round}: critical sections overlapped at line ${i}`);
      }
      await assert.rejects(stat(path), /ENOENT/);
    }
  });
});
