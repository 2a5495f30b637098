import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { erofsUnavailable } from '../../../src/snapshotter/erofs/erofs.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';
import { registerErofsSpecifics } from './erofs-specifics.js';

runConformance(
  {
    name: 'erofs',
    open: (root) => openSnapshotter('erofs', root),
    convertsOnCommit: true,
    skipReason: erofsUnavailable,
  },
  registerErofsSpecifics,
);
