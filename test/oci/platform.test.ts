import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  compatiblePlatforms,
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from '../../src/oci/platform.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { Descriptor, ImageIndex, Platform } from '../../src/oci/types.js';
import { InvalidPlatformError, NoMatchingPlatformError, isStratumError } from '../../src/errors.js';

const SUBJECT = 'docker.io/library/x:1';

describe('parsePlatform', () => {
  const cases: Array<[string, string]> = [
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['Linux/AMD64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/arm64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/aarch64/8', 'linux/arm64'],
    ['linux/arm64/v8.2', 'linux/arm64/v8.2'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v7', 'linux/arm/v7'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/arm/v5', 'linux/arm/v5'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/i386', 'linux/386'],
    ['linux/i686', 'linux/386'],
    ['linux/386', 'linux/386'],
    ['linux/s390x', 'linux/s390x'],
    ['linux/ppc64le', 'linux/ppc64le'],
    ['linux/riscv64', 'linux/riscv64'],
    ['macos/arm64', 'darwin/arm64'],
    ['windows/amd64', 'windows/amd64'],
  ];
  for (const [spec, want] of cases) {
    it(`${spec} → ${want}`, () => assert.equal(formatPlatform(parsePlatform(spec)), want));
  }

  it('keeps an os version given in parentheses', () => {
    assert.deepEqual(parsePlatform('windows(10.0.17763)/amd64'), { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763' });
  });

  it('completes a lone os or architecture from the host', () => {
    const host = hostPlatform();
    assert.deepEqual(parsePlatform('linux'), { ...host, os: 'linux' });
    assert.deepEqual(parsePlatform('arm64'), { os: host.os, architecture: 'arm64' });
    assert.deepEqual(parsePlatform('armhf'), { os: host.os, architecture: 'arm', variant: 'v7' });
  });

  const invalid: Array<[string, RegExp]> = [
    ['', /empty platform/],
    ['   ', /empty platform/],
    ['linux/', /component 2 is empty/],
    ['/amd64', /component 1 is empty/],
    ['linux//v7', /component 2 is empty/],
    ['linux/arm/v7/extra', /too many components/],
    ['linux/am d64', /invalid component "am d64"/],
    ['linux/arm/v7!', /invalid component "v7!"/],
    ['lin:ux/amd64', /invalid component "lin:ux"/],
    ['plan10', /neither a known operating system nor a known architecture/],
  ];
  for (const [spec, reason] of invalid) {
    it(`rejects ${JSON.stringify(spec)}`, () => {
      assert.throws(
        () => parsePlatform(spec),
        (err: unknown) => {
          assert.ok(err instanceof InvalidPlatformError, String(err));
          assert.ok(isStratumError(err, 'ERR_INVALID_PLATFORM'));
          assert.ok(err.message.startsWith(`invalid platform ${JSON.stringify(spec)}: `), err.message);
          assert.match(err.message, reason);
          return true;
        },
      );
    });
  }
});

describe('normalizePlatform', () => {
  it('keeps os.version and os.features and drops an empty variant', () => {
    assert.deepEqual(
      normalizePlatform({ os: 'Windows', architecture: 'x86_64', variant: '', 'os.version': '10.0.20348', 'os.features': ['win32k'] }),
      { os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348', 'os.features': ['win32k'] },
    );
  });

  it('does not change its argument', () => {
    const p: Platform = { os: 'linux', architecture: 'aarch64', variant: 'v8' };
    normalizePlatform(p);
    assert.deepEqual(p, { os: 'linux', architecture: 'aarch64', variant: 'v8' });
  });
});

describe('hostPlatform', () => {
  it('agrees with uname on this machine', (t) => {
    let machine: string;
    try {
      machine = execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim();
    } catch {
      return t.skip('uname is not available');
    }
    const unameToGo: Record<string, string> = {
      x86_64: 'amd64',
      aarch64: 'arm64',
      armv7l: 'arm',
      armv6l: 'arm',
      i686: '386',
      s390x: 's390x',
      ppc64le: 'ppc64le',
      riscv64: 'riscv64',
    };
    const host = hostPlatform();
    assert.equal(host.os, process.platform === 'win32' ? 'windows' : process.platform);
    if (unameToGo[machine] === undefined) return t.skip(`no mapping for uname -m ${machine}`);
    assert.equal(host.architecture, unameToGo[machine]);
    if (host.architecture === 'arm') assert.match(host.variant ?? '', /^v[5-8]$/);
    if (host.architecture === 'amd64' || host.architecture === 'arm64') assert.equal(host.variant, undefined);
  });

  it('returns a copy each time', () => {
    const a = hostPlatform();
    a.os = 'plan9';
    assert.notEqual(hostPlatform().os, 'plan9');
  });
});

describe('compatiblePlatforms and platformMatches', () => {
  const vectors: Array<[string, string[]]> = [
    ['linux/amd64', ['linux/amd64', 'linux/386']],
    ['linux/amd64/v3', ['linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64', 'linux/386']],
    ['linux/arm/v7', ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']],
    ['linux/arm/v5', ['linux/arm/v5']],
    ['linux/arm64', ['linux/arm64', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']],
    ['linux/arm64/v8.2', ['linux/arm64/v8.2', 'linux/arm64/v8.1', 'linux/arm64', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']],
    ['linux/s390x', ['linux/s390x']],
  ];
  for (const [want, expected] of vectors) {
    it(`${want} runs ${expected.join(', ')}`, () => {
      assert.deepEqual(compatiblePlatforms(parsePlatform(want)).map(formatPlatform), expected);
    });
  }

  const matches: Array<[string, Platform, boolean]> = [
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }, true],
    ['linux/arm64', { os: 'linux', architecture: 'aarch64' }, true],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }, true],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm' }, true],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v7' }, false],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm64' }, false],
    ['linux/amd64', { os: 'linux', architecture: 'x86_64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v2' }, false],
    ['linux/amd64', { os: 'windows', architecture: 'amd64' }, false],
    ['linux/amd64', { os: 'linux', architecture: 'arm64' }, false],
  ];
  for (const [want, have, expected] of matches) {
    it(`${want} ${expected ? 'accepts' : 'refuses'} ${formatPlatform(have)}`, () => {
      assert.equal(platformMatches(parsePlatform(want), have), expected);
    });
  }
});

function entry(platform: Platform | undefined, label: string, annotations?: Record<string, string>): Descriptor {
  return {
    mediaType: MediaType.OciManifest,
    digest: digestOf(label),
    size: 100,
    ...(platform ? { platform } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

const multiArch: ImageIndex = {
  schemaVersion: 2,
  mediaType: MediaType.OciIndex,
  manifests: [
    entry({ os: 'linux', architecture: 'amd64' }, 'amd64'),
    entry({ os: 'unknown', architecture: 'unknown' }, 'attestation amd64', { 'vnd.docker.reference.type': 'attestation-manifest' }),
    entry({ os: 'linux', architecture: 'arm', variant: 'v6' }, 'arm v6'),
    entry({ os: 'linux', architecture: 'arm', variant: 'v7' }, 'arm v7'),
    entry({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 'arm64'),
    entry({ os: 'linux', architecture: '386' }, '386'),
    entry({ os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.1' }, 'windows'),
  ],
};

describe('selectManifest', () => {
  const picks: Array<[string, ImageIndex, string]> = [
    ['linux/amd64', multiArch, 'amd64'],
    ['linux/arm/v7', multiArch, 'arm v7'],
    ['linux/arm', multiArch, 'arm v7'],
    ['linux/arm/v6', multiArch, 'arm v6'],
    ['linux/arm/v8', multiArch, 'arm v7'],
    ['linux/arm64', multiArch, 'arm64'],
    ['linux/arm64/v8', multiArch, 'arm64'],
    ['linux/386', multiArch, '386'],
    ['windows/amd64', multiArch, 'windows'],
    // Without the exact platform, the best older relative wins, whatever the index order.
    ['linux/arm/v7', { ...multiArch, manifests: multiArch.manifests.filter((d) => d.platform?.variant !== 'v7') }, 'arm v6'],
    ['linux/arm64', { ...multiArch, manifests: multiArch.manifests.filter((d) => d.platform?.architecture !== 'arm64') }, 'arm v7'],
    ['linux/amd64', { ...multiArch, manifests: multiArch.manifests.filter((d) => d.platform?.architecture !== 'amd64') }, '386'],
    [
      'linux/arm/v7',
      { schemaVersion: 2, manifests: [entry({ os: 'linux', architecture: 'arm', variant: 'v5' }, 'v5'), entry({ os: 'linux', architecture: 'arm', variant: 'v6' }, 'v6')] },
      'v6',
    ],
    ['linux/arm64', { schemaVersion: 2, manifests: [entry({ os: 'linux', architecture: 'arm64' }, 'arm64 no variant')] }, 'arm64 no variant'],
    ['linux/amd64', { schemaVersion: 2, manifests: [entry(undefined, 'no platform')] }, 'no platform'],
  ];
  for (const [want, index, label] of picks) {
    it(`${want} from [${index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '-')).join(', ')}] → ${label}`, () => {
      assert.equal(selectManifest(index, parsePlatform(want), SUBJECT).digest, digestOf(label));
    });
  }

  it('lists the platforms on offer when none matches, skipping attestations', () => {
    const index: ImageIndex = {
      schemaVersion: 2,
      manifests: [
        entry({ os: 'linux', architecture: 'amd64' }, 'a'),
        entry({ os: 'unknown', architecture: 'unknown' }, 'att'),
        entry({ os: 'linux', architecture: 'arm', variant: 'v7' }, 'b'),
        entry({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 'c'),
      ],
    };
    assert.throws(
      () => selectManifest(index, parsePlatform('linux/s390x'), SUBJECT),
      (err: unknown) => {
        assert.ok(err instanceof NoMatchingPlatformError, String(err));
        assert.ok(isStratumError(err, 'ERR_NO_MATCHING_PLATFORM'));
        assert.equal(err.message, 'no manifest for linux/s390x in docker.io/library/x:1; available: linux/amd64, linux/arm/v7, linux/arm64/v8');
        assert.deepEqual(err.available, ['linux/amd64', 'linux/arm/v7', 'linux/arm64/v8']);
        return true;
      },
    );
  });

  it('an index holding only attestations offers nothing', () => {
    const index: ImageIndex = { schemaVersion: 2, manifests: [entry({ os: 'unknown', architecture: 'unknown' }, 'att')] };
    assert.throws(() => selectManifest(index, parsePlatform('linux/amd64'), SUBJECT), /no manifest for linux\/amd64 in .*; available: none$/);
  });

  it('arm/v6 does not take an arm/v7 image', () => {
    const index: ImageIndex = { schemaVersion: 2, manifests: [entry({ os: 'linux', architecture: 'arm', variant: 'v7' }, 'v7')] };
    assert.throws(() => selectManifest(index, parsePlatform('linux/arm/v6'), SUBJECT), /available: linux\/arm\/v7/);
  });
});
