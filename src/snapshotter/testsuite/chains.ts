/** Long chains: 128 random layers against a flat reference tree (behaviour 15), and a 130-layer chain mounted and read. */
import assert from 'node:assert/strict';
import { chmod, readFile, readdir, writeFile, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { changeSet, fixTimes, Model, rng } from './changes.js';
import type { Register } from './suite.js';
import { diffTrees, snapshotTree } from './tree.js';
import { xattrs } from './xattr.js';

const LAYERS = 128;
const SEED = Number(process.env.STRATUM_CONFORMANCE_SEED ?? 0x5eed);

export function registerChains(test: Register): void {
  test(`15 ${LAYERS} chained layers of random changes: every layer's view equals a flat reference tree (mode, owner, xattrs, content, link targets, mtimes)`, async (h, t) => {
    const x = await xattrs();
    if (typeof x === 'string') t.diagnostic(`xattrs NOT set or compared in this run: ${x}`);
    const xa = typeof x === 'string' ? undefined : x;
    const ref = await h.mkScratch('reference');
    await chmod(ref, 0o755);
    const r = rng(SEED);
    const model = new Model();
    let parent: string | undefined;
    const kinds = new Map<string, number>();
    /** Known defects of the backend's mount (Backend.knownDefect) → how many differences they explain. */
    const defects = new Map<string, number>();
    for (let layer = 1; layer <= LAYERS; layer++) {
      const cs = changeSet(r, model, layer, xa);
      for (const op of cs.ops) {
        const kind = op.desc.split(' ')[0]!;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      const seconds = 1_600_000_000 + layer * 1000 + 0.25;
      const name = `layer-${layer}`;
      const log = (): string => `seed ${SEED}, layer ${layer}, its changes:\n  ${cs.ops.map((o) => o.desc).join('\n  ')}`;
      for (const op of cs.ops) await op.apply(ref);
      await fixTimes(ref, cs.touched, seconds);
      await h.layer(name, parent, async (dir) => {
        for (const op of cs.ops) {
          try {
            await op.apply(dir);
          } catch (err) {
            throw new Error(`applying "${op.desc}" through the mount failed (it worked on the reference): ${(err as Error).message}\n${log()}`);
          }
        }
        await fixTimes(dir, cs.touched, seconds);
      });
      parent = name;
      const want = await snapshotTree(ref, xa?.read);
      const got = await h.withView(name, (v) => snapshotTree(v, xa?.read));
      const diffs = diffTrees(want, got).filter((line) => {
        const path = line.slice(0, line.indexOf(': '));
        const defect = h.backend.knownDefect?.({ path, line, expected: want });
        if (defect !== undefined) defects.set(defect, (defects.get(defect) ?? 0) + 1);
        return defect === undefined;
      });
      assert.deepEqual(diffs, [], `view of ${name} differs from the reference:\n${diffs.slice(0, 25).join('\n')}\n${log()}`);
    }
    for (const [defect, count] of defects) {
      const line = `KNOWN DEFECT ${h.sn.name}: ${count} differences (summed over the views) not counted as failures: ${defect}`;
      console.error(line);
      t.diagnostic(line);
    }
    t.diagnostic(`ops applied: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}; final tree ${model.entries.size} entries`);
    for (const kind of ['create', 'overwrite', 'remove', 'mkdir', 're-create', 'symlink', 'chown', 'lchown', 'hardlink', 'rename']) {
      assert.ok((kinds.get(kind) ?? 0) > 0, `the change sets exercised no "${kind}" op`);
    }
    if (xa) assert.ok((kinds.get('setxattr') ?? 0) > 0, 'the change sets exercised no setxattr op');
  }, { timeout: 300_000 }); // zfs-fuse takes 66 s alone, over 90 s beside other tests on 2 cores

  test('a chain of 130 committed layers mounts (view and active) and reads right, also past the 4 KiB mount-option page', async (h) => {
    const N = 130;
    let parent: string | undefined;
    for (let i = 0; i < N; i++) {
      // chainID-like names: the lowerdir option of a naive overlay would far exceed 4095 bytes
      const name = `sha256:${createHash('sha256').update(String(i)).digest('hex')}`;
      await h.layer(name, parent, async (d) => {
        await writeFile(join(d, `l${String(i).padStart(3, '0')}`), `layer ${i}`);
        await writeFile(join(d, 'top'), `top from ${i}`);
        if (i % 10 === 9) await rm(join(d, `l${String(i - 5).padStart(3, '0')}`));
      });
      parent = name;
    }
    const expected: string[] = [];
    for (let i = 0; i < N; i++) if (!(i % 10 === 4 && i + 5 < N)) expected.push(`l${String(i).padStart(3, '0')}`);
    const check = async (d: string): Promise<void> => {
      const names = (await readdir(d)).filter((n) => /^l\d+$/.test(n)).sort();
      assert.deepEqual(names, expected);
      for (const n of names) assert.equal(await readFile(join(d, n), 'utf8'), `layer ${Number(n.slice(1))}`, n);
      assert.equal(await readFile(join(d, 'top'), 'utf8'), `top from ${N - 1}`);
    };
    await h.withView(parent, check);
    const active = await h.prepare('on-top', parent);
    await check(active);
    await writeFile(join(active, 'written'), 'on top of 130');
    await h.commit('top-131', 'on-top');
    await h.withView('top-131', async (v) => {
      await check(v);
      assert.equal(await readFile(join(v, 'written'), 'utf8'), 'on top of 130');
    });
  }, { timeout: 180_000 });
}
