import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

describe('stratum pull with credentials from Docker config.json (real registry with htpasswd)', () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  const user = 'builder';
  const password = 's3cret-Pa55word';

  before(async () => {
    registry = await startRegistry({ htpasswd: { user, password } });
    fixtures = await pushFixtures(registry);
  });
  after(async () => {
    await registry?.stop();
    await dirs.cleanup();
  });

  async function dockerConfig(auths: Record<string, unknown>): Promise<NodeJS.ProcessEnv> {
    const dir = await dirs.make('docker');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths }));
    return { DOCKER_CONFIG: dir, XDG_CONFIG_HOME: dir, STRATUM_CONFIG: '' };
  }

  it('uses the auths entry for the registry', async () => {
    const env = await dockerConfig({ [registry.host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } });
    const r = await runCli(['pull', '--store', await dirs.make('store'), `${registry.host}/library/base:1`], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Digest: ${fixtures.base.digest}$`, 'm'));
  });

  it('wrong or missing credentials: a clear error naming the registry, never the secret', async () => {
    const wrong = 'not-the-password';
    for (const env of [await dockerConfig({ [registry.host]: { username: user, password: wrong } }), await dockerConfig({})]) {
      const store = await dirs.make('store');
      const r = await runCli(['pull', '--store', store, `${registry.host}/library/base:1`], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`authentication to ${registry.host.replace(/\./g, '\\.')} failed.*\\(ERR_UNAUTHORIZED\\)`));
      assert.doesNotMatch(r.stderr + r.stdout, new RegExp(wrong));
      assert.deepEqual(JSON.parse((await runCli(['images', '--store', store, '--format', 'json'])).stdout), []);
    }
  });
});
