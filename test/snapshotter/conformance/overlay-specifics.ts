/** snapshotter-conformance.md "Overlay specifics": the shape of the mounts the overlay backend returns. */
import assert from 'node:assert/strict';
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { parseOverlayOptions } from '../../../src/snapshotter/mount.js';
import type { Mount } from '../../../src/snapshotter/snapshotter.js';
import type { Register } from '../../../src/snapshotter/testsuite/suite.js';

const isBind = (m: Mount): boolean => m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');

async function inUserNamespace(): Promise<boolean> {
  const map = await readFile('/proc/self/uid_map', 'utf8');
  return !/^\s*0\s+0\s+4294967295\s*$/.test(map.trim());
}

export function registerOverlaySpecifics(test: Register): void {
  test('mount shapes: root active = rw bind; view of one = ro bind of its fs; view of two = overlay lowers only; active on parents = overlay upper/work/lowers newest first; index=off', async (h, t) => {
    for (const name of ['A', 'B', 'C']) {
      await h.layer(name, name === 'A' ? undefined : String.fromCharCode(name.charCodeAt(0) - 1), async (d) => {
        await writeFile(join(d, `marker-${name}`), name);
      });
    }
    const root = await h.sn.prepare('root-active');
    assert.equal(root.length, 1);
    assert.ok(isBind(root[0]!), `active without parent: a bind mount, got ${JSON.stringify(root)}`);
    assert.ok(!root[0]!.options.includes('ro'), 'writable');

    const one = await h.sn.view('view-one', 'A');
    assert.equal(one.length, 1);
    assert.ok(isBind(one[0]!) && one[0]!.options.includes('ro'), `view of one parent: a read-only bind, got ${JSON.stringify(one)}`);
    assert.ok((await readdir(one[0]!.source)).includes('marker-A'), 'the bind source is the parent\'s fs');

    const two = await h.sn.view('view-two', 'B');
    assert.equal(two.length, 1);
    assert.equal(two[0]!.type, 'overlay', `view of two: overlay, got ${JSON.stringify(two)}`);
    const twoSpec = parseOverlayOptions(two[0]!.options);
    assert.equal(twoSpec.upper, undefined, 'a view has no upperdir');
    assert.equal(twoSpec.work, undefined, 'a view has no workdir');
    assert.equal(twoSpec.lowers.length, 2);

    const active = await h.sn.prepare('on-C', 'C');
    assert.equal(active.length, 1);
    assert.equal(active[0]!.type, 'overlay');
    const spec = parseOverlayOptions(active[0]!.options);
    assert.ok(spec.upper && spec.work, `upperdir and workdir: ${JSON.stringify(active[0]!.options)}`);
    assert.equal(spec.lowers.length, 3);
    if (spec.lowers.every((l) => isAbsolute(l))) {
      const order = [];
      for (const l of spec.lowers) order.push((await readdir(l)).find((n) => n.startsWith('marker-')));
      assert.deepEqual(order, ['marker-C', 'marker-B', 'marker-A'], 'lowerdir newest first');
    } else t.diagnostic(`lowerdir paths are relative (${spec.lowers.join(':')}): order not checked`);

    const indexSupported = await access('/sys/module/overlay/parameters/index').then(() => true, () => false);
    if (indexSupported) {
      assert.ok(active[0]!.options.includes('index=off'), `index=off in ${JSON.stringify(active[0]!.options)}`);
      assert.ok(two[0]!.options.includes('index=off'), 'index=off on a view too');
    }
    const userns = await inUserNamespace();
    assert.equal(active[0]!.options.includes('userxattr'), userns, `userxattr exactly when in a user namespace (in one: ${userns})`);
  });

  test('500 layers (the kernel maximum) mount and read right; a 501-layer stack fails with an error that names the limit', async (h) => {
    let parent: string | undefined;
    for (let i = 0; i < 501; i++) {
      const key = `k${i}`;
      await h.sn.prepare(key, parent);
      await writeFile(join(await h.sn.applyDir(key), `f${i}`), String(i));
      await h.sn.commit(`c${i}`, key);
      parent = `c${i}`;
    }
    await h.withView('c499', async (v) => {
      const names = await readdir(v);
      assert.equal(names.length, 500);
      assert.equal(await readFile(join(v, 'f0'), 'utf8'), '0');
      assert.equal(await readFile(join(v, 'f499'), 'utf8'), '499');
    });
    let failure: unknown;
    try {
      await h.withView('c500', async () => {});
    } catch (err) {
      failure = err;
    }
    assert.ok(failure instanceof Error, 'a view of 501 layers must not mount silently');
    assert.match((failure as Error).message, /500/, `the error names the limit: ${(failure as Error).message}`);
  }, { timeout: 60_000 });
}
