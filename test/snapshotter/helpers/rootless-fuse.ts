/**
 * Run inside `unshare --user --map-root-user --mount` by fuse-overlayfs-rootless.test.ts: a small
 * stratum scenario on the fuse-overlayfs snapshotter as a mapped root, which has no capability in
 * the initial namespace. Prints `STEP <name>` before each step and `OK` at the end; on a failure
 * `FAILED <step>: <message>` and exit status 1.
 * Usage: node rootless-fuse.js <snapshot root> <mount target>
 */
import { open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { mountAll, openSnapshotter, unmountAll } from '../../../src/snapshotter/index.js';
import { inUserNamespace } from '../../../src/snapshotter/overlay/kernel.js';
import { applyLayer } from '../../../src/unpack/apply.js';
import { entry, tarOf } from '../../fixtures/hostile/tar-writer.js';

const [root, target] = process.argv.slice(2) as [string, string];
let step = 'start';
const say = (line: string): boolean => process.stdout.write(`${line}\n`);
const expect = (cond: boolean, what: string): void => {
  if (!cond) throw new Error(what);
};

try {
  step = 'user namespace';
  say(`STEP ${step}`);
  expect(inUserNamespace(), `not in a user namespace: uid_map ${(await readFile('/proc/self/uid_map', 'utf8')).trim()}`);
  say(`uid_map ${(await readFile('/proc/self/uid_map', 'utf8')).trim().replace(/\s+/g, ' ')}`);

  step = 'open /dev/fuse';
  say(`STEP ${step}`);
  await (await open('/dev/fuse', 'r+')).close();

  step = 'unpack two layers';
  say(`STEP ${step}`);
  const s = await openSnapshotter('fuse-overlayfs', root);
  expect(s.userxattr === true, 'in a user namespace the applier must write user.overlay.* xattrs');
  const apply = async (key: string, parent: string | undefined, layer: Buffer): Promise<void> => {
    await s.prepare(key, parent);
    await applyLayer(Readable.from([layer]), await s.applyDir(key), { mode: 'overlay', userxattr: true, subject: key });
  };
  await apply('l1', undefined, tarOf(entry({ name: 'keep' }, 'keep'), entry({ name: 'gone' }, 'gone'), entry({ name: 'dir/', type: '5' }), entry({ name: 'dir/old' }, 'old'), entry({ name: 'opq/', type: '5' }), entry({ name: 'opq/old' }, 'old')));
  await s.commit('L1', 'l1');
  await apply('l2', 'L1', tarOf(entry({ name: '.wh.gone' }), entry({ name: 'opq/', type: '5' }), entry({ name: 'opq/.wh..wh..opq' }), entry({ name: 'opq/new' }, 'new')));
  await s.commit('L2', 'l2');

  step = 'mount';
  say(`STEP ${step}`);
  await mountAll(await s.prepare('rw', 'L2'), target);

  step = 'read and write through the mount';
  say(`STEP ${step}`);
  expect(JSON.stringify((await readdir(target)).sort()) === '["dir","keep","opq"]', `merged root: ${(await readdir(target)).sort().join(', ')} (the whiteout must hide "gone")`);
  expect(JSON.stringify(await readdir(join(target, 'opq'))) === '["new"]', `opaque dir shows ${(await readdir(join(target, 'opq'))).join(', ')}`);
  expect((await readFile(join(target, 'dir', 'old'), 'utf8')) === 'old', 'dir/old from the first layer');
  await writeFile(join(target, 'written'), 'rootless');
  await rm(join(target, 'keep'));

  step = 'unmount';
  say(`STEP ${step}`);
  await unmountAll(target);

  step = 'commit and view';
  say(`STEP ${step}`);
  await s.commit('L3', 'rw');
  await mountAll(await s.view('v', 'L3'), target);
  try {
    expect(JSON.stringify((await readdir(target)).sort()) === '["dir","opq","written"]', `view of the commit: ${(await readdir(target)).sort().join(', ')}`);
    expect((await readFile(join(target, 'written'), 'utf8')) === 'rootless', 'the file written through the mount');
  } finally {
    await unmountAll(target);
  }
  say('OK');
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  say(`FAILED ${step}: ${e.code ? `${e.code} ` : ''}${e.message.replace(/\n/g, ' ')}`);
  await unmountAll(target, true).catch(() => {});
  process.exitCode = 1;
}
