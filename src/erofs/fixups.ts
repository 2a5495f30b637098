import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { UnsafeEntryError } from '../errors.js';
import { loadNative } from '../sys/native.js';
import { quoteName, showName, underDir } from '../sys/byte-path.js';
import { ancestors } from '../unpack/entry-path.js';
import type { OverlayFixups } from '../unpack/types.js';
import { metaOf } from '../unpack/overlay-fixups.js';
import type { ErofsTree } from './tree.js';

const lstatBig = (path: Buffer) => lstat(path, { bigint: true }).catch(() => undefined);

/**
 * The overlay fixups (src/unpack/overlay-fixups.ts) done on an image's tree before its metadata is
 * written: hardlinks to files of the layers below become a copy of the file plus the link,
 * whiteouts that hide nothing go, and directories the layer only implied take the metadata the
 * layers below give them. `lowerView` is the merged view of the layers below, or undefined for a
 * chain's first layer (nothing below).
 */
export async function applyErofsFixups(tree: ErofsTree, fixups: OverlayFixups, lowerView: string | undefined, subject: string): Promise<void> {
  const below = (path: string) => (lowerView === undefined ? Promise.resolve(undefined) : lstatBig(underDir(lowerView, path)));
  const inherit = new Set(fixups.inheritDirs);
  const copied = new Set<string>();
  for (const { path, target, meta } of fixups.lowerLinks) {
    if (!copied.has(target)) {
      const st = await below(target);
      if (!st) throw new UnsafeEntryError(subject, showName(path), `hardlink target ${quoteName(target)} is neither in this layer nor in the layers below`);
      if (!st.isFile()) throw new UnsafeEntryError(subject, showName(path), `hardlink target ${quoteName(target)} in the layers below is not a regular file`);
      for (const dir of ancestors(target)) if (tree.lookup(dir) === undefined) inherit.add(dir);
      const abs = underDir(lowerView!, target);
      await tree.addStreamedFile(target, metaOf(st, abs, loadNative()), createReadStream(abs, { highWaterMark: 1 << 20 }));
      copied.add(target);
    }
    await tree.applyBatch(0, [{ op: 'hardlink', path, target }, { op: 'times', path, meta }]);
  }
  const hidingNothing: string[] = [];
  for (const path of fixups.whiteouts) if ((await below(path)) === undefined) hidingNothing.push(path);
  for (const path of hidingNothing) tree.remove(path);
  for (const dir of inherit) {
    const st = await below(dir);
    if (st?.isDirectory()) await tree.applyBatch(0, [{ op: 'mkdir', path: dir, meta: metaOf(st, underDir(lowerView!, dir), loadNative()) }]);
  }
}
