/**
 * fuse-overlayfs rootless: the helper runs a stratum scenario (unpack two layers with whiteouts
 * and an opaque dir, mount, read, write, unmount, commit, view) as the mapped root of a new user
 * namespace (`unshare --user --map-root-user --mount`), without any capability in the initial
 * namespace. Where the kernel refuses the user namespace, /dev/fuse, or a FUSE mount inside it,
 * the test skips loudly naming the refused step; any other failure fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { fuseOverlayfsMissing } from '../../src/snapshotter/fuse-overlayfs/fuse-overlayfs.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());
const HELPER = fileURLToPath(new URL('./helpers/rootless-fuse.js', import.meta.url));
/** Steps the kernel or the machine may refuse to an unprivileged user; a refusal anywhere else is a bug. */
const REFUSABLE = new Set(['user namespace', 'open /dev/fuse', 'mount']);

test('fuse-overlayfs inside an unprivileged user namespace: unpack, mount, read and write, unmount, commit, view', { timeout: 120_000 }, async (t) => {
  const missing = await fuseOverlayfsMissing();
  if (missing) {
    console.error(`LOUD SKIP fuse-overlayfs rootless: ${missing}`);
    return t.skip(`LOUD SKIP: ${missing}`);
  }
  const base = await tmp.make('fuse-rootless');
  const [root, target] = [join(base, 'snapshots'), join(base, 'mnt')];
  await mkdir(target);
  let stdout: string;
  try {
    ({ stdout } = await run('unshare', ['--user', '--map-root-user', '--mount', process.execPath, HELPER, root, target], { timeout: 100_000 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    stdout = e.stdout ?? '';
    if (!stdout.includes('STEP ')) {
      const why = `unshare --user --map-root-user --mount was refused: ${(e.stderr || e.message).trim()}`;
      console.error(`LOUD SKIP fuse-overlayfs rootless: ${why}`);
      return t.skip(`LOUD SKIP: ${why}`);
    }
  }
  t.diagnostic(stdout.trim().split('\n').join(' | '));
  const failed = /^FAILED (.+?): (.*)$/m.exec(stdout);
  if (failed && REFUSABLE.has(failed[1]!) && /EPERM|EACCES|not permitted|denied|refused/i.test(failed[2]!)) {
    const why = `step "${failed[1]}" was refused inside the user namespace: ${failed[2]}`;
    console.error(`LOUD SKIP fuse-overlayfs rootless: ${why}`);
    return t.skip(`LOUD SKIP: ${why}`);
  }
  assert.equal(failed, null, `the rootless scenario failed: ${failed?.[0]}`);
  assert.match(stdout, /^OK$/m);
});
