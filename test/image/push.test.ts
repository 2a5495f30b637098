/**
 * stratum push against the real registry, through the fault proxy: what skopeo reads back is
 * the stored image byte for byte; blobs the repository has are not uploaded again; uploads are
 * retried; a token is asked for with push scope; bad input fails clearly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readlink } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isStratumError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { OciStore } from '../../src/content/store.js';
import { loadImageByName } from '../../src/image/image.js';
import { pushImage, type PushEvent } from '../../src/image/push.js';
import { RegistryClient } from '../../src/registry/client.js';
import { jsonEvents, runCli } from '../helpers/cli.js';
import { TempDirs } from '../helpers/tmp.js';
import { TokenIssuer } from '../helpers/token-issuer.js';
import { FAST_RETRIES, startRig, type RegistryRig } from '../registry/setup.js';

const exec = promisify(execFile);
const tmp = new TempDirs();
let rig: RegistryRig;
let env: NodeJS.ProcessEnv;
const clients: RegistryClient[] = [];

before(async () => {
  rig = await startRig();
  const home = await tmp.make('push-home');
  env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' };
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await rig?.stop();
  await tmp.cleanup();
});

function client(): RegistryClient {
  const c = new RegistryClient({ config: { retries: FAST_RETRIES } });
  clients.push(c);
  return c;
}

/** A store holding library/app:1, pulled from the registry through the proxy. */
async function storeWithApp(): Promise<{ store: string; name: string }> {
  const store = await tmp.make('push-store');
  const name = `${rig.proxy.host}/library/app:1`;
  const r = await runCli(['pull', '--store', store, '--no-unpack', '--quiet', name], env);
  assert.equal(r.code, 0, r.stderr);
  return { store, name };
}

async function skopeoRaw(ref: string): Promise<Buffer> {
  const { stdout } = await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'buffer', maxBuffer: 1 << 20 });
  return stdout;
}

/** Files under `dir` this process holds open. */
async function openFilesUnder(dir: string): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t.startsWith(`${dir}/`));
}

const blobUploads = () => rig.proxy.requests('POST', /\/blobs\/uploads\/$/).length;

describe('stratum push (real registry through the fault proxy)', () => {
  test('pushes a stored image to another registry: skopeo reads back the same manifest bytes; a second push uploads nothing', async () => {
    const { store, name } = await storeWithApp();
    const s = await OciStore.open(store);
    const image = await loadImageByName(s, name);
    // The same proxy under another name is another registry to stratum: blobs are uploaded, not mounted.
    const other = `localhost:${rig.proxy.port}`;
    const dest = `${other}/pushed/app:2`;
    rig.proxy.reset().clearLog();
    const r = await runCli(['push', '--store', store, name, dest], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], `The push refers to repository [${other}/pushed/app]`);
    const layerIds = image.manifest.layers.map((l) => l.digest.slice(7, 19));
    assert.deepEqual(lines.slice(1, -1).sort(), layerIds.map((id) => `${id}: Pushed`).sort());
    assert.equal(lines.at(-1), `2: digest: ${image.descriptor.digest} size: ${image.descriptor.size}`);
    assert.equal(blobUploads(), image.manifest.layers.length + 1, 'every layer and the config uploaded once');
    assert.equal(rig.proxy.requests('PUT', /\/blobs\/uploads\/.+/).length, image.manifest.layers.length + 1);

    const raw = await skopeoRaw(`${rig.registry.host}/pushed/app:2`);
    assert.ok(raw.equals(await s.read(image.descriptor.digest)), 'the registry holds the stored manifest byte for byte');
    assert.equal(digestOf(raw), image.descriptor.digest);
    const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${rig.registry.host}/pushed/app:2`]);
    assert.deepEqual(JSON.parse(stdout).Layers, image.manifest.layers.map((l) => l.digest));

    rig.proxy.clearLog();
    const again = await runCli(['push', '--store', store, '--json', name, dest], env);
    assert.equal(again.code, 0, again.stderr);
    const events = jsonEvents(again);
    assert.equal(events.filter((e) => e.type === 'exists').length, image.manifest.layers.length + 1);
    assert.equal(events.filter((e) => e.type === 'pushed').length, 0);
    assert.deepEqual(events.at(-1), {
      type: 'done',
      source: name,
      destination: dest,
      digest: image.descriptor.digest,
      size: image.descriptor.size,
      pushed: 0,
      mounted: 0,
      existed: image.manifest.layers.length + 1,
      bytesUploaded: 0,
    });
    assert.equal(blobUploads(), 0);
    assert.equal(rig.proxy.requests('PUT', /\/manifests\/2$/).length, 1);

    const quiet = await runCli(['push', '--store', store, '-q', name, dest], env);
    assert.equal(quiet.stdout, `${dest}\n`);
  });

  test('library: a failed upload (503) is retried from a new session; a Bearer token is asked for with push scope', async () => {
    const { store, name } = await storeWithApp();
    const s = await OciStore.open(store);
    const tokens = await TokenIssuer.start();
    try {
      rig.proxy.reset().clearLog();
      rig.proxy.requireBearer({ issuer: tokens });
      rig.proxy.respond(503, {}, { path: /\/blobs\/uploads\/.+/, method: 'PUT', count: 1 });
      const events: PushEvent[] = [];
      const dest = parseReference(`localhost:${rig.proxy.port}/pushed/retry:1`);
      const result = await pushImage(name, dest, { store: s, client: client(), onEvent: (e) => events.push(e) });
      const image = await loadImageByName(s, name);
      assert.equal(result.digest, image.descriptor.digest);
      assert.equal(result.pushed, image.manifest.layers.length + 1);
      assert.equal(rig.proxy.requests('PUT', /\/blobs\/uploads\/.+/).filter((e) => e.status === 503).length, 1);
      assert.ok(tokens.requests.some((t) => t.scope === 'repository:pushed/retry:pull,push'), JSON.stringify(tokens.requests));
      assert.ok(tokens.requests.every((t) => t.scope?.endsWith(':pull,push')));
      assert.ok((await skopeoRaw(`${rig.registry.host}/pushed/retry:1`)).equals(await s.read(image.descriptor.digest)));
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await openFilesUnder(store), [], 'every blob read stream was closed, the 503ed one too');
    } finally {
      rig.proxy.reset();
      await tokens.stop();
    }
  });

  test('to another repository of the same registry, blobs are mounted from the image’s own repository, not uploaded', async () => {
    const { store, name } = await storeWithApp();
    const s = await OciStore.open(store);
    const image = await loadImageByName(s, name);
    rig.proxy.reset().clearLog();
    const dest = `${rig.proxy.host}/pushed/mounted:1`;
    const r = await runCli(['push', '--store', store, name, dest], env);
    assert.equal(r.code, 0, r.stderr);
    const layerIds = image.manifest.layers.map((l) => l.digest.slice(7, 19));
    assert.deepEqual(r.stdout.trim().split('\n').slice(1, -1).sort(), layerIds.map((id) => `${id}: Mounted from library/app`).sort());
    const posts = rig.proxy.requests('POST', /\/blobs\/uploads\/$/);
    assert.equal(posts.length, image.manifest.layers.length + 1);
    for (const p of posts) assert.match(p.url, /\?mount=sha256%3A[0-9a-f]{64}&from=library%2Fapp$/);
    assert.deepEqual(posts.map((p) => p.status), posts.map(() => 201));
    assert.equal(rig.proxy.requests('PUT', /\/blobs\/uploads\/.+/).length, 0, 'no byte uploaded');
    assert.ok((await skopeoRaw(`${rig.registry.host}/pushed/mounted:1`)).equals(await s.read(image.descriptor.digest)));

    // Behind a token server, the mount asks for both scopes at once (two scope parameters, as docker sends them);
    // the blobs are mounted from the newest place the store saw them: the push above.
    const tokens = await TokenIssuer.start();
    try {
      rig.proxy.reset().clearLog();
      rig.proxy.requireBearer({ issuer: tokens });
      const result = await pushImage(name, parseReference(`${rig.proxy.host}/pushed/mounted-b:1`), { store: s, client: client() });
      assert.equal(result.mounted, image.manifest.layers.length + 1);
      assert.ok(tokens.requests.some((t) => t.scope === 'repository:pushed/mounted-b:pull,push repository:pushed/mounted:pull'), JSON.stringify(tokens.requests.map((t) => t.scope)));
    } finally {
      rig.proxy.reset();
      await tokens.stop();
    }
  });

  test('bad input: an image not in the store, a digest that is not the image’s, a usage error; nothing is uploaded', async () => {
    const { store, name } = await storeWithApp();
    rig.proxy.reset().clearLog();
    const missing = await runCli(['push', '--store', store, `${rig.proxy.host}/library/nothere:1`], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /image .*library\/nothere:1 not found in the store .*pull it first \(ERR_NOT_FOUND\)/);

    const wrong = `${rig.proxy.host}/pushed/app@${digestOf('something else')}`;
    const s = await OciStore.open(store);
    await assert.rejects(pushImage(name, parseReference(wrong), { store: s, client: client() }), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_INVALID_ARGUMENT'), err.message);
      assert.match(err.message, /its manifest digest is sha256:/);
      return true;
    });
    const usage = await runCli(['push', '--store', store], env);
    assert.equal(usage.code, 2);
    assert.equal(rig.proxy.log.filter((e) => e.method !== 'GET' && e.method !== 'HEAD').length, 0);
  });
});
