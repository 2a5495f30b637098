import { readFile } from 'node:fs/promises';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { registerOverlaySpecifics } from './overlay-specifics.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';

runConformance(
  {
    name: 'overlay',
    open: (root) => openSnapshotter('overlay', root),
    async skipReason() {
      const reasons = [];
      if (process.getuid?.() !== 0) reasons.push('not root');
      const fss = await readFile('/proc/filesystems', 'utf8').catch(() => '');
      if (!/\toverlay$/m.test(fss)) reasons.push('no overlay in /proc/filesystems');
      return reasons.length > 0 ? reasons.join(' / ') : undefined;
    },
  },
  registerOverlaySpecifics,
);
