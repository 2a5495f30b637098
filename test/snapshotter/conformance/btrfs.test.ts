import { after, before } from 'node:test';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { deleteSubvolumesUnder, mountLoopBtrfs, type LoopBtrfs } from '../../helpers/btrfs.js';
import { registerBtrfsSpecifics } from './btrfs-specifics.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';

let fs: LoopBtrfs | string = 'the btrfs was not set up';
before(async () => {
  fs = await mountLoopBtrfs(1024);
});
after(async () => {
  if (typeof fs !== 'string') await fs.unmount();
});

runConformance(
  {
    name: 'btrfs',
    open: (root) => openSnapshotter('btrfs', root),
    async skipReason() {
      return typeof fs === 'string' ? fs : undefined;
    },
    tempParent: () => (fs as LoopBtrfs).mnt,
    beforeRemove: deleteSubvolumesUnder,
  },
  registerBtrfsSpecifics,
);
