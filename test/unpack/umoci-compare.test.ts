/**
 * The proof of issue 3: for every proof image, the rootfs stratum unpacks (the merged overlay
 * view, and the native snapshot of the image's top chainID) equals `umoci raw unpack`'s rootfs of
 * the same image pulled with skopeo, entry by entry (type, mode, uid, gid, size, content hash,
 * symlink target, xattrs, hardlink groups).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { openSnapshotter, type SnapshotterName } from '../../src/snapshotter/index.js';
import { OciStore } from '../../src/content/store.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pull } from '../../src/image/pull.js';
import { loadImageByName } from '../../src/image/image.js';
import { mountImage, unmountImage } from '../../src/image/rootfs.js';
import { checkExpectations, PROOF_IMAGE_NAMES, pushProofImages, type ProofImageName, type PushedProofImage } from '../fixtures/proof-images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { assertSameTree, snapshotTree, type TreeEntry } from '../helpers/tree.js';

const run = promisify(execFile);
const tmp = new TempDirs();

/** Why this file cannot run here, or undefined when it can. */
function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: umoci raw unpack must set real owners, devices and security.capability';
  for (const bin of ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry']) if (!existsSync(bin)) return `${bin} is not installed`;
  return undefined;
}
const MISSING = missing();

/**
 * stratum's rootfs of `ref` (pulled into `store`) with the given snapshotter: for overlay the
 * merged (read-only) overlay view of the image's top chainID, for native that snapshot's own
 * directory. `cleanup` unmounts and removes whatever it made.
 */
async function stratumRootfs(store: string, ref: string, snapshotterName: SnapshotterName): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const content = await OciStore.open(store);
  const snapshotter = await openSnapshotter(snapshotterName, join(store, 'snapshots', snapshotterName));
  const client = new RegistryClient();
  try {
    const pulled = await pull(ref, { store: content, client, unpack: { snapshotter } });
    assert.ok(pulled.unpacked?.chainId, `${ref} was not unpacked`);
    const dir = await tmp.make(`rootfs-${snapshotterName}`);
    await mountImage(content, snapshotter, await loadImageByName(content, ref), dir);
    return {
      dir,
      cleanup: async () => {
        await unmountImage([snapshotter], dir);
        await snapshotter.close();
      },
    };
  } catch (err) {
    await snapshotter.close();
    throw err;
  } finally {
    await client.close();
  }
}

let registry: TestRegistry | undefined;
let images: Record<ProofImageName, PushedProofImage> | undefined;
/** umoci's rootfs of each image, and its snapshot. */
const reference = new Map<ProofImageName, { dir: string; tree: TreeEntry[] }>();

before(async () => {
  if (MISSING) return;
  registry = await startRegistry();
  // the layer blobs stay in workDir for the naive-extraction check below
  images = await pushProofImages(registry, { workDir: await tmp.make('proof-images') });
});

after(async () => {
  await registry?.stop();
  await tmp.cleanup();
});

/**
 * skopeo copy from the registry into an OCI layout, then `umoci raw unpack` as root. umoci 0.4.7
 * refuses zstd layers, so skopeo recompresses those to gzip on the way (same diff_ids, same rootfs).
 */
async function umociRootfs(image: PushedProofImage): Promise<string> {
  const work = await tmp.make(`umoci-${image.name}`);
  const layout = join(work, 'layout');
  const rootfs = join(work, 'rootfs');
  const recompress = image.layers.some((l) => l.compression === 'zstd') ? ['--dest-compress', '--dest-compress-format', 'gzip'] : [];
  await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', ...recompress, `docker://${image.reference}`, `oci:${layout}:${image.tag}`]);
  await run('umoci', ['raw', 'unpack', '--image', `${layout}:${image.tag}`, rootfs]);
  return rootfs;
}

async function referenceOf(name: ProofImageName): Promise<{ dir: string; tree: TreeEntry[] }> {
  let ref = reference.get(name);
  if (!ref) {
    const dir = await umociRootfs(images![name]);
    ref = { dir, tree: await snapshotTree(dir) };
    reference.set(name, ref);
  }
  return ref;
}

test('the expectations catch an unpacker that ignores whiteouts (GNU tar -x of every layer into one dir)', async (t) => {
  if (MISSING) return t.skip(MISSING);
  for (const name of ['whiteouts', 'opaque'] as const) {
    const dir = await tmp.make(`naive-${name}`);
    for (const layer of images![name].layers) await run('tar', ['-xzf', layer.path, '-C', dir]);
    const failures = checkExpectations(await snapshotTree(dir), images![name].expectations);
    assert.ok(failures.length >= 3, `${name}: ${failures.join('; ')}`);
    assert.ok(failures.some((f) => /should be absent|holds \[/.test(f)), failures.join('; '));
  }
});

for (const name of PROOF_IMAGE_NAMES) {
  describe(`proof image ${name}`, () => {
    test('umoci raw unpack gives the rootfs the image describes (checks the reference itself)', async (t) => {
      if (MISSING) return t.skip(MISSING);
      const { tree } = await referenceOf(name);
      assert.deepEqual(checkExpectations(tree, images![name].expectations), []);
    });

    for (const snapshotter of ['overlay', 'native'] as const) {
      test(`stratum ${snapshotter} rootfs equals umoci's`, async (t) => {
        if (MISSING) return t.skip(MISSING);
        const ref = await referenceOf(name);
        const store = await tmp.make(`store-${name}-${snapshotter}`);
        const rootfs = await stratumRootfs(store, images![name].reference, snapshotter);
        try {
          assertSameTree(ref.tree, await snapshotTree(rootfs.dir), { names: ['umoci', `stratum ${snapshotter}`] });
        } finally {
          await rootfs.cleanup();
        }
      });
    }
  });
}
