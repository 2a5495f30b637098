import { after, before } from 'node:test';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { blockfileUnavailable } from '../../../src/snapshotter/blockfile/blockfile.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';
import { mountLoopBtrfs, type LoopBtrfs } from '../../helpers/btrfs.js';
import { registerBlockfileSpecifics, TEST_STORAGE_OPTS } from './blockfile-specifics.js';

// The snapshot files on a loop-mounted btrfs: prepare's copies are reflinks (FICLONE).
let fs: LoopBtrfs | string = 'the btrfs was not set up';
before(async () => {
  fs = (await blockfileUnavailable()) ?? (await mountLoopBtrfs(2048));
});
after(async () => {
  if (typeof fs !== 'string') await fs.unmount();
});

runConformance(
  {
    name: 'blockfile (btrfs host, reflinks)',
    open: (root) => openSnapshotter('blockfile', root, { storageOpts: TEST_STORAGE_OPTS }),
    blockData: true,
    async skipReason() {
      return typeof fs === 'string' ? fs : undefined;
    },
    tempParent: () => (fs as LoopBtrfs).mnt,
  },
  registerBlockfileSpecifics(true),
);
