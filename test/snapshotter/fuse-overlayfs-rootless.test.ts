/**
 * fuse-overlayfs rootless: the helper runs a stratum scenario (unpack two layers with whiteouts
 * and an opaque dir, mount, read, write, unmount, commit, view) as the mapped root of a new user
 * namespace (`unshare --user --map-root-user --mount`), without any capability in the initial
 * namespace. Where the kernel refuses the user namespace, /dev/fuse, or a FUSE mount inside it,
 * the test skips loudly naming the refused step; any other failure fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, test, type TestContext } from 'node:test';
import { fuseOverlayfsMissing } from '../../src/snapshotter/fuse-overlayfs/fuse-overlayfs.js';
import { TempDirs } from '../helpers/tmp.js';

const run = promisify(execFile);
const tmp = new TempDirs();
after(() => tmp.cleanup());
const HELPER = fileURLToPath(new URL('./helpers/rootless-fuse.js', import.meta.url));
/** Steps the kernel or the machine may refuse to an unprivileged user; a refusal anywhere else is a bug. */
const REFUSABLE = new Set(['user namespace', 'open /dev/fuse', 'mount']);

/**
 * Runs the helper under `unshare --user --map-root-user --mount`, first as `asUser` when given
 * (through setpriv, with the temp directory handed to that user), and checks its report.
 */
async function scenario(t: TestContext, asUser?: number): Promise<void> {
  const who = asUser === undefined ? 'fuse-overlayfs rootless' : `fuse-overlayfs rootless as uid ${asUser}`;
  const skip = (why: string): void => {
    console.error(`LOUD SKIP ${who}: ${why}`);
    t.skip(`LOUD SKIP: ${why}`);
  };
  const missing = await fuseOverlayfsMissing();
  if (missing) return skip(missing);
  const base = await tmp.make('fuse-rootless');
  const [root, target] = [join(base, 'snapshots'), join(base, 'mnt')];
  await mkdir(target);
  const unshare = ['unshare', '--user', '--map-root-user', '--mount', process.execPath, HELPER, root, target];
  if (asUser !== undefined) await chown(base, asUser, asUser).then(() => chown(target, asUser, asUser));
  const [cmd, ...args] = asUser === undefined ? unshare : ['setpriv', `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', ...unshare];
  let stdout: string;
  try {
    ({ stdout } = await run(cmd!, args, { timeout: 100_000 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    stdout = e.stdout ?? '';
    if (!stdout.includes('STEP ')) return skip(`${args.join(' ').includes('setpriv') ? 'setpriv or ' : ''}unshare --user --map-root-user --mount was refused: ${(e.stderr || e.message).trim()}`);
  }
  t.diagnostic(stdout.trim().split('\n').join(' | '));
  const failed = /^FAILED (.+?): (.*)$/m.exec(stdout);
  if (failed && REFUSABLE.has(failed[1]!) && /EPERM|EACCES|not permitted|denied|refused/i.test(failed[2]!)) {
    return skip(`step "${failed[1]}" was refused inside the user namespace: ${failed[2]}`);
  }
  assert.equal(failed, null, `the rootless scenario failed: ${failed?.[0]}`);
  assert.match(stdout, /^OK$/m);
}

test('fuse-overlayfs inside an unprivileged user namespace (root mapped to itself, no capability outside): unpack, mount, read and write, unmount, commit, view', { timeout: 120_000 }, (t) => scenario(t));

// A user that is not root outside: needs /dev/fuse open to all (0666 on most distributions).
test('the same from uid 65534 (nobody) mapped to root', { timeout: 120_000 }, (t) => (process.getuid?.() === 0 ? scenario(t, 65534) : scenario(t)));
