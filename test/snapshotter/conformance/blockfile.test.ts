import { tmpdir } from 'node:os';
import { backingFilesystem } from '../../../src/snapshotter/driver.js';
import { openSnapshotter } from '../../../src/snapshotter/index.js';
import { blockfileUnavailable } from '../../../src/snapshotter/blockfile/blockfile.js';
import { runConformance } from '../../../src/snapshotter/testsuite/suite.js';
import { registerBlockfileSpecifics, TEST_STORAGE_OPTS } from './blockfile-specifics.js';

// On the OS temp dir, which must not reflink (ext4 here): prepare's copies are sparse copy_file_range copies.
runConformance(
  {
    name: 'blockfile (ext4 host, copies)',
    open: (root) => openSnapshotter('blockfile', root, { storageOpts: TEST_STORAGE_OPTS }),
    blockData: true,
    async skipReason() {
      const backing = await backingFilesystem(tmpdir());
      if (backing === 'btrfs' || backing === 'xfs') return `the temp dir ${tmpdir()} is on ${backing}, which reflinks: this run is for a host without reflinks`;
      return blockfileUnavailable();
    },
  },
  registerBlockfileSpecifics(false),
);
