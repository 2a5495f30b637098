import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { familiarName, parseReference, withDigest, withTag, withoutTag } from '../../src/oci/reference.js';
import { InvalidReferenceError, isStratumError } from '../../src/errors.js';

const D = 'sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c';
const F = 'sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff';
const D512 = `sha512:${'f'.repeat(128)}`;

interface Valid {
  input: string;
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  full: string;
  familiar: string;
}

// Modelled on distribution/reference's normalize_test.go and reference_test.go.
const valid: Valid[] = [
  { input: 'ubuntu', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest', full: 'docker.io/library/ubuntu:latest', familiar: 'ubuntu:latest' },
  { input: 'ubuntu:15.04', registry: 'docker.io', repository: 'library/ubuntu', tag: '15.04', full: 'docker.io/library/ubuntu:15.04', familiar: 'ubuntu:15.04' },
  { input: 'library/ubuntu:15.04', registry: 'docker.io', repository: 'library/ubuntu', tag: '15.04', full: 'docker.io/library/ubuntu:15.04', familiar: 'ubuntu:15.04' },
  { input: 'docker.io/ubuntu', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest', full: 'docker.io/library/ubuntu:latest', familiar: 'ubuntu:latest' },
  { input: 'docker.io/library/ubuntu', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest', full: 'docker.io/library/ubuntu:latest', familiar: 'ubuntu:latest' },
  { input: 'index.docker.io/debian', registry: 'docker.io', repository: 'library/debian', tag: 'latest', full: 'docker.io/library/debian:latest', familiar: 'debian:latest' },
  { input: 'index.docker.io/docker/docker', registry: 'docker.io', repository: 'docker/docker', tag: 'latest', full: 'docker.io/docker/docker:latest', familiar: 'docker/docker:latest' },
  { input: 'registry-1.docker.io/library/alpine:3', registry: 'docker.io', repository: 'library/alpine', tag: '3', full: 'docker.io/library/alpine:3', familiar: 'alpine:3' },
  { input: 'dmcgowan/myapp', registry: 'docker.io', repository: 'dmcgowan/myapp', tag: 'latest', full: 'docker.io/dmcgowan/myapp:latest', familiar: 'dmcgowan/myapp:latest' },
  { input: 'other/library', registry: 'docker.io', repository: 'other/library', tag: 'latest', full: 'docker.io/other/library:latest', familiar: 'other/library:latest' },
  { input: 'library/foo/bar', registry: 'docker.io', repository: 'library/foo/bar', tag: 'latest', full: 'docker.io/library/foo/bar:latest', familiar: 'library/foo/bar:latest' },
  { input: 'store/foo/bar', registry: 'docker.io', repository: 'store/foo/bar', tag: 'latest', full: 'docker.io/store/foo/bar:latest', familiar: 'store/foo/bar:latest' },
  { input: 'test_com/foo', registry: 'docker.io', repository: 'test_com/foo', tag: 'latest', full: 'docker.io/test_com/foo:latest', familiar: 'test_com/foo:latest' },
  { input: `redis@${D}`, registry: 'docker.io', repository: 'library/redis', digest: D, full: `docker.io/library/redis@${D}`, familiar: `redis@${D}` },
  { input: `busybox:latest@${D}`, registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: D, full: `docker.io/library/busybox:latest@${D}`, familiar: `busybox:latest@${D}` },
  { input: `dmcgowan/myapp@${D}`, registry: 'docker.io', repository: 'dmcgowan/myapp', digest: D, full: `docker.io/dmcgowan/myapp@${D}`, familiar: `dmcgowan/myapp@${D}` },
  { input: 'lowercase:Uppercase', registry: 'docker.io', repository: 'library/lowercase', tag: 'Uppercase', full: 'docker.io/library/lowercase:Uppercase', familiar: 'lowercase:Uppercase' },
  { input: 'test.com:tag', registry: 'docker.io', repository: 'library/test.com', tag: 'tag', full: 'docker.io/library/test.com:tag', familiar: 'test.com:tag' },
  { input: 'test.com:5000', registry: 'docker.io', repository: 'library/test.com', tag: '5000', full: 'docker.io/library/test.com:5000', familiar: 'test.com:5000' },
  { input: 'test.com/repo:tag', registry: 'test.com', repository: 'repo', tag: 'tag', full: 'test.com/repo:tag', familiar: 'test.com/repo:tag' },
  { input: 'test:5000/repo', registry: 'test:5000', repository: 'repo', tag: 'latest', full: 'test:5000/repo:latest', familiar: 'test:5000/repo:latest' },
  { input: `test:5000/repo@${F}`, registry: 'test:5000', repository: 'repo', digest: F, full: `test:5000/repo@${F}`, familiar: `test:5000/repo@${F}` },
  { input: `test:5000/repo:tag@${F}`, registry: 'test:5000', repository: 'repo', tag: 'tag', digest: F, full: `test:5000/repo:tag@${F}`, familiar: `test:5000/repo:tag@${F}` },
  { input: 'localhost/app', registry: 'localhost', repository: 'app', tag: 'latest', full: 'localhost/app:latest', familiar: 'localhost/app:latest' },
  { input: 'localhost:5000/x', registry: 'localhost:5000', repository: 'x', tag: 'latest', full: 'localhost:5000/x:latest', familiar: 'localhost:5000/x:latest' },
  { input: 'localhost:5000/a/b:1.0', registry: 'localhost:5000', repository: 'a/b', tag: '1.0', full: 'localhost:5000/a/b:1.0', familiar: 'localhost:5000/a/b:1.0' },
  // A bare `localhost` is a Hub name (upstream's documented FIXME), and `localhost:5000` is that name with a tag.
  { input: 'localhost:5000', registry: 'docker.io', repository: 'library/localhost', tag: '5000', full: 'docker.io/library/localhost:5000', familiar: 'localhost:5000' },
  { input: '127.0.0.1:5000/library/debian', registry: '127.0.0.1:5000', repository: 'library/debian', tag: 'latest', full: '127.0.0.1:5000/library/debian:latest', familiar: '127.0.0.1:5000/library/debian:latest' },
  { input: '127.0.0.1:8000/privatebase', registry: '127.0.0.1:8000', repository: 'privatebase', tag: 'latest', full: '127.0.0.1:8000/privatebase:latest', familiar: '127.0.0.1:8000/privatebase:latest' },
  { input: '192.168.1.1', registry: 'docker.io', repository: 'library/192.168.1.1', tag: 'latest', full: 'docker.io/library/192.168.1.1:latest', familiar: '192.168.1.1:latest' },
  { input: '192.168.1.1:5000/repo:5050', registry: '192.168.1.1:5000', repository: 'repo', tag: '5050', full: '192.168.1.1:5000/repo:5050', familiar: '192.168.1.1:5000/repo:5050' },
  { input: '[::1]:5000/x', registry: '[::1]:5000', repository: 'x', tag: 'latest', full: '[::1]:5000/x:latest', familiar: '[::1]:5000/x:latest' },
  { input: '[2001:db8::1]/repo', registry: '[2001:db8::1]', repository: 'repo', tag: 'latest', full: '[2001:db8::1]/repo:latest', familiar: '[2001:db8::1]/repo:latest' },
  { input: `[2001:db8::1]:5000/repo:tag@${F}`, registry: '[2001:db8::1]:5000', repository: 'repo', tag: 'tag', digest: F, full: `[2001:db8::1]:5000/repo:tag@${F}`, familiar: `[2001:db8::1]:5000/repo:tag@${F}` },
  { input: '[fc00:1:2:3:4:5:6:7]:5000/library/debian', registry: '[fc00:1:2:3:4:5:6:7]:5000', repository: 'library/debian', tag: 'latest', full: '[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest', familiar: '[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest' },
  { input: 'sub-dom1.foo.com/bar/baz/quux:some-long-tag', registry: 'sub-dom1.foo.com', repository: 'bar/baz/quux', tag: 'some-long-tag', full: 'sub-dom1.foo.com/bar/baz/quux:some-long-tag', familiar: 'sub-dom1.foo.com/bar/baz/quux:some-long-tag' },
  { input: 'b.gcr.io/test.example.com/my-app:test.example.com', registry: 'b.gcr.io', repository: 'test.example.com/my-app', tag: 'test.example.com', full: 'b.gcr.io/test.example.com/my-app:test.example.com', familiar: 'b.gcr.io/test.example.com/my-app:test.example.com' },
  { input: `xn--7o8h.com/myimage:xn--7o8h.com@${D512}`, registry: 'xn--7o8h.com', repository: 'myimage', tag: 'xn--7o8h.com', digest: D512, full: `xn--7o8h.com/myimage:xn--7o8h.com@${D512}`, familiar: `xn--7o8h.com/myimage:xn--7o8h.com@${D512}` },
  { input: 'test-com:8080/foo', registry: 'test-com:8080', repository: 'foo', tag: 'latest', full: 'test-com:8080/foo:latest', familiar: 'test-com:8080/foo:latest' },
  { input: 'foo/foo_bar.com:8080', registry: 'docker.io', repository: 'foo/foo_bar.com', tag: '8080', full: 'docker.io/foo/foo_bar.com:8080', familiar: 'foo/foo_bar.com:8080' },
  { input: 'docker---rules/dock__er', registry: 'docker.io', repository: 'docker---rules/dock__er', tag: 'latest', full: 'docker.io/docker---rules/dock__er:latest', familiar: 'docker---rules/dock__er:latest' },
  { input: 'd/docker', registry: 'docker.io', repository: 'd/docker', tag: 'latest', full: 'docker.io/d/docker:latest', familiar: 'd/docker:latest' },
  // Uppercase first components are taken for a registry host (upstream's rule), so this one is valid.
  { input: 'Docker/docker', registry: 'Docker', repository: 'docker', tag: 'latest', full: 'Docker/docker:latest', familiar: 'Docker/docker:latest' },
  // With a registry in front, 64 hex characters are a repository name, not an image id.
  { input: `docker.io/${'1a3f5e7d'.repeat(8)}`, registry: 'docker.io', repository: `library/${'1a3f5e7d'.repeat(8)}`, tag: 'latest', full: `docker.io/library/${'1a3f5e7d'.repeat(8)}:latest`, familiar: `${'1a3f5e7d'.repeat(8)}:latest` },
  { input: 'dbcc1', registry: 'docker.io', repository: 'library/dbcc1', tag: 'latest', full: 'docker.io/library/dbcc1:latest', familiar: 'dbcc1:latest' },
  { input: `x:${'a'.repeat(128)}`, registry: 'docker.io', repository: 'library/x', tag: 'a'.repeat(128), full: `docker.io/library/x:${'a'.repeat(128)}`, familiar: `x:${'a'.repeat(128)}` },
  { input: 'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', registry: 'docker.io', repository: 'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', tag: 'latest', full: 'docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest', familiar: 'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest' },
];

const invalid: Array<{ input: string; reason: RegExp }> = [
  { input: '', reason: /empty reference/ },
  { input: ':justtag', reason: /path component/ },
  { input: `@${F}`, reason: /path component/ },
  { input: 'repo@sha256:ffffffffffffffffffffffffffffffffff', reason: /64 hex/ },
  { input: `validname@invaliddigest:${'f'.repeat(64)}`, reason: /unsupported algorithm/ },
  { input: `repo@sha256:${'F'.repeat(64)}`, reason: /lowercase hex/ },
  { input: 'repo@', reason: /invalid digest/ },
  { input: 'Uppercase:tag', reason: /must be lowercase/ },
  { input: 'docker/Docker', reason: /must be lowercase/ },
  { input: 'docker.io/docker/Docker', reason: /must be lowercase/ },
  { input: 'test:5000/Uppercase/lowercase:tag', reason: /must be lowercase/ },
  { input: 'https://github.com/docker/docker', reason: /invalid registry host/ },
  { input: '-docker', reason: /path component "-docker"/ },
  { input: '-docker/docker', reason: /path component "-docker"/ },
  { input: 'docker-/docker', reason: /path component "docker-"/ },
  { input: '-docker.io/docker/docker', reason: /invalid registry host "-docker.io"/ },
  { input: 'docker///docker', reason: /empty path component/ },
  { input: 'docker.io/docker///docker', reason: /empty path component/ },
  { input: 'docker/', reason: /empty path component/ },
  { input: '____/____', reason: /path component "____"/ },
  { input: '_docker/_docker', reason: /path component "_docker"/ },
  // With a '.', the first component is taken for a registry host, which these are not.
  { input: 'dock..er/docker', reason: /invalid registry host "dock..er"/ },
  { input: 'dock_.er/docker', reason: /invalid registry host "dock_.er"/ },
  { input: 'dock-.er/docker', reason: /invalid registry host "dock-.er"/ },
  { input: 'docker/dock..er', reason: /path component "dock..er"/ },
  { input: 'aa/asdf$$^/aa', reason: /path component "asdf\$\$\^"/ },
  { input: '[fc00::1]', reason: /path component/ },
  { input: '[fc00::1]:5000', reason: /path component/ },
  { input: '[2001:db8::1]:tag', reason: /path component/ },
  { input: 'fc00::1:5000/debian', reason: /invalid registry host/ },
  { input: '[fe80::1%eth0]:5000/debian', reason: /invalid registry host/ },
  { input: '[2001:db8:3:4::192.0.2.33]:5000/debian', reason: /invalid registry host/ },
  { input: '[fe80::1%@invalidzone]:5000/repo', reason: /invalid digest/ },
  { input: '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a', reason: /image id/ },
  { input: 'ubuntu:-bad', reason: /invalid tag "-bad"/ },
  { input: 'ubuntu:.bad', reason: /invalid tag/ },
  { input: `ubuntu:${'a'.repeat(129)}`, reason: /invalid tag/ },
  { input: 'ubuntu:a:b', reason: /invalid tag "a:b"/ },
  { input: 'ubuntu:', reason: /invalid tag ""/ },
  { input: 'ubu ntu', reason: /path component/ },
  { input: `${'a/'.repeat(128)}a:tag`, reason: /longer than 255/ },
  { input: `${'a/'.repeat(123)}a`, reason: /longer than 255/ },
  {
    input:
      'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker',
    reason: /longer than 255/,
  },
];

describe('parseReference: valid references', () => {
  for (const tc of valid) {
    it(tc.input.length > 80 ? `${tc.input.slice(0, 77)}...` : tc.input, () => {
      const ref = parseReference(tc.input);
      assert.equal(ref.registry, tc.registry);
      assert.equal(ref.repository, tc.repository);
      assert.equal(ref.tag, tc.tag);
      assert.equal(ref.digest, tc.digest);
      assert.equal(ref.name, `${tc.registry}/${tc.repository}`);
      assert.equal(ref.toString(), tc.full);
      assert.equal(String(ref), tc.full);
      assert.equal(ref.familiar, tc.familiar);
      // Normalisation is idempotent: the full and the familiar form parse to the same reference.
      assert.equal(parseReference(tc.full).toString(), tc.full);
      assert.equal(parseReference(tc.familiar).toString(), tc.full);
    });
  }
});

describe('parseReference: invalid references', () => {
  for (const tc of invalid) {
    it(JSON.stringify(tc.input.length > 80 ? `${tc.input.slice(0, 77)}...` : tc.input), () => {
      assert.throws(
        () => parseReference(tc.input),
        (err: unknown) => {
          assert.ok(err instanceof InvalidReferenceError, `expected InvalidReferenceError, got ${String(err)}`);
          assert.ok(isStratumError(err, 'ERR_INVALID_REFERENCE'));
          assert.equal(err.reference, tc.input);
          assert.ok(err.message.includes(JSON.stringify(tc.input)), `message names the input: ${err.message}`);
          assert.match(err.message, tc.reason);
          return true;
        },
      );
    });
  }
});

describe('reference helpers', () => {
  it('has dozens of table cases', () => {
    assert.ok(valid.length + invalid.length >= 40);
  });

  it('withDigest pins a reference and keeps its tag', () => {
    const ref = withDigest(parseReference('ubuntu:15.04'), D);
    assert.equal(ref.toString(), `docker.io/library/ubuntu:15.04@${D}`);
    assert.equal(ref.familiar, `ubuntu:15.04@${D}`);
    assert.equal(ref.digest, D);
    assert.equal(withoutTag(ref).toString(), `docker.io/library/ubuntu@${D}`);
  });

  it('withDigest rejects an invalid digest', () => {
    assert.throws(() => withDigest(parseReference('busybox'), 'foo'), InvalidReferenceError);
    assert.throws(() => withDigest(parseReference('busybox'), `sha256:${'A'.repeat(64)}`), /lowercase hex/);
  });

  it('withTag replaces the tag and keeps a digest', () => {
    const base = parseReference(`localhost:5000/app:1@${F}`);
    const ref = withTag(base, 'TAG5');
    assert.equal(ref.toString(), `localhost:5000/app:TAG5@${F}`);
    assert.equal(base.tag, '1', 'the original reference is unchanged');
    assert.throws(() => withTag(base, '-foo'), /invalid tag "-foo"/);
  });

  it('references are immutable and serialise to their full form', () => {
    const ref = parseReference('alpine');
    assert.throws(() => {
      (ref as { tag?: string }).tag = 'x';
    }, TypeError);
    assert.equal(JSON.stringify({ ref }), '{"ref":"docker.io/library/alpine:latest"}');
  });

  it('familiarName drops docker.io and a one-component library/', () => {
    assert.equal(familiarName(parseReference('docker.io/library/redis')), 'redis');
    assert.equal(familiarName(parseReference('docker.io/library/foo/bar')), 'library/foo/bar');
    assert.equal(familiarName(parseReference('ghcr.io/library/redis')), 'ghcr.io/library/redis');
  });

  it('rejects non-strings with a typed error', () => {
    assert.throws(() => parseReference(undefined as unknown as string), InvalidReferenceError);
  });
});
