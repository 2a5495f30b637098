import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';

runConformance({
  name: 'native',
  open: (root) => openSnapshotter('native', root),
  async skipReason() {
    // Views and actives are bind mounts, and the tests chown to other users.
    return process.getuid?.() !== 0 ? 'not root (bind mounts and chown need it)' : undefined;
  },
});
