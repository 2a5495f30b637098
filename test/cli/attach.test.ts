// stratum attach / referrers / push --no-referrers as a user runs them, against the real registry.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

const SBOM = 'application/spdx+json';

describe('stratum attach / referrers (CLI)', () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  let env: NodeJS.ProcessEnv = {};
  let file = '';

  before(async () => {
    registry = await sharedRegistry();
    fixtures = await pushFixtures(registry);
    const home = await dirs.make('home');
    env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' };
    file = join(home, 'sbom.json');
    await writeFile(file, '{"spdxVersion":"SPDX-2.3"}');
  });
  after(async () => {
    await registry?.stop();
    await dirs.cleanup();
  });

  const cli = async (store: string, ...args: string[]) => runCli(['--store', store, ...args], env);

  it('attach to a stored image, list it as a table, as json and through a template; push carries it unless --no-referrers', async () => {
    const a = await dirs.make('store');
    const ref = `${registry.host}/cli/attach:1`;
    assert.equal((await cli(a, 'copy', '-q', `${registry.host}/library/app:1`, ref)).code, 0);
    assert.equal((await cli(a, 'pull', '-q', '--no-unpack', ref)).code, 0);
    const attached = await cli(a, 'attach', '--artifact-type', SBOM, '--annotation', 'org.example.by=ci', '--no-push', ref, file);
    assert.equal(attached.code, 0, attached.stderr);
    assert.match(attached.stdout, /^sha256:[0-9a-f]{64}\n$/);
    assert.match(attached.stderr, /stored with the image$/m);
    const digest = attached.stdout.trim();

    const table = await cli(a, 'referrers', ref);
    assert.equal(table.code, 0, table.stderr);
    const [header, row, ...rest] = table.stdout.trimEnd().split('\n');
    assert.match(header!, /^DIGEST\s+ARTIFACT TYPE\s+SIZE\s+CREATED\s+SOURCE$/);
    assert.match(row!, new RegExp(`^${digest}\\s+${SBOM.replace(/[+.]/g, '\\$&')}\\s+\\d+B\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+store$`));
    assert.deepEqual(rest, []);
    const json = await cli(a, 'referrers', '--format', 'json', ref);
    const parsed = JSON.parse(json.stdout) as { Digest: string; ArtifactType: string; Subject: string; Annotations: Record<string, string> };
    assert.equal(parsed.Digest, digest);
    assert.equal(parsed.Subject, fixtures.app.digest);
    assert.equal(parsed.Annotations['org.example.by'], 'ci');
    assert.equal((await cli(a, 'referrers', '--format', '{{.ArtifactType}}', ref)).stdout, `${SBOM}\n`);
    assert.equal((await cli(a, 'referrers', '--artifact-type', 'application/vnd.other', ref)).stdout.trimEnd().split('\n').length, 1, 'only the header');

    const bare = `${registry.host}/cli/attach-bare:1`;
    const skipped = await cli(a, 'push', '--no-referrers', ref, bare);
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.doesNotMatch(skipped.stdout, /referrer/);
    const b = await dirs.make('store');
    assert.equal((await cli(b, 'referrers', '--format', '{{.Digest}}', bare)).stdout, '');

    const dest = `${registry.host}/cli/attach-dst:1`;
    const pushed = await cli(a, 'push', ref, dest);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, new RegExp(`${digest.slice(7, 19)}: Pushed referrer ${SBOM.replace(/[+.]/g, '\\$&')} \\(referrers-tag\\)`));
    assert.equal((await cli(b, 'referrers', '--format', '{{.Digest}} {{.Source}}', dest)).stdout, `${digest} registry\n`);
  });

  it('bad input: no --artifact-type, a missing file, an unknown image', async () => {
    const a = await dirs.make('store');
    const noType = await cli(a, 'attach', `${registry.host}/library/app:1`, file);
    assert.equal(noType.code, 2);
    assert.match(noType.stderr, /--artifact-type/);
    const missing = await cli(a, 'attach', '--artifact-type', SBOM, `${registry.host}/library/app:1`, '/nonexistent/sbom.json');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\/nonexistent\/sbom\.json.*ENOENT/);
    const unknown = await cli(a, 'referrers', 'nosuch/image:1');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /nosuch\/image:1/);
  });
});
