/**
 * stratum push against the real registry, through the fault proxy: what skopeo reads back is
 * the stored image byte for byte; blobs the repository has are not uploaded again; uploads are
 * retried; a token is asked for with push scope; bad input fails clearly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isStratumError } from '../../src/errors.js';
import { Engine } from '../../src/engine/engine.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { OciStore } from '../../src/content/store.js';
import { loadImageByName } from '../../src/image/image.js';
import { pushImage, type PushEvent } from '../../src/image/push.js';
import { RegistryClient } from '../../src/registry/client.js';
import { jsonEvents, runCli, underPty } from '../helpers/cli.js';
import { UPLOAD_PATH, type ProxyLogEntry } from '../helpers/fault-proxy.js';
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
    // Off a terminal: each layer's state changes, one line each, never a bar.
    for (const id of layerIds) {
      assert.deepEqual(lines.filter((l) => l.startsWith(`${id}: `)), ['Preparing', 'Pushing', 'Pushed'].map((s) => `${id}: ${s}`), r.stdout);
    }
    assert.equal(lines.length, 2 + 3 * layerIds.length, r.stdout);
    assert.doesNotMatch(r.stdout, /\[=|\x1b/);
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
    const finals = r.stdout.trim().split('\n').slice(1, -1).filter((l) => !/: (Preparing|Waiting)$/.test(l));
    assert.deepEqual(finals.sort(), layerIds.map((id) => `${id}: Mounted from library/app`).sort(), 'mounted layers never show Pushing');
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

describe('chunked uploads (real registry through the fault proxy)', () => {
  const CHUNK = 1 << 20;
  const upload = { chunkSize: CHUNK, monolithicThreshold: 2 * CHUNK };
  const chunkedClient = (): RegistryClient => {
    const c = new RegistryClient({ config: { retries: FAST_RETRIES }, upload });
    clients.push(c);
    return c;
  };

  /** library/app:1 with a layer of 3 MiB of random bytes on top (gzip cannot shrink it): over the threshold. */
  async function storeWithBigLayer(): Promise<{ store: string; s: OciStore; name: string; big: { digest: Digest; size: number } }> {
    const { store, name: app } = await storeWithApp();
    const src = await tmp.make('push-big-src');
    await writeFile(join(src, 'big.bin'), randomBytes(3 * CHUNK));
    const engine = await Engine.open({ root: store, storageDriver: 'native', env });
    try {
      await (await engine.image(app)).appendLayer({ dir: src }).write('big/app:1');
    } finally {
      await engine.close();
    }
    const s = await OciStore.open(store);
    const image = await loadImageByName(s, 'big/app:1');
    const big = image.manifest.layers.at(-1)!;
    assert.ok(big.size > upload.monolithicThreshold);
    return { store, s, name: 'big/app:1', big: { digest: big.digest, size: big.size } };
  }

  /** Pulls `ref` from the registry itself into a new store: the big layer comes back byte for byte. */
  async function assertPullsBack(ref: string, s: OciStore, name: string, big: { digest: Digest }): Promise<void> {
    const image = await loadImageByName(s, name);
    assert.ok((await skopeoRaw(ref)).equals(await s.read(image.descriptor.digest)), 'the registry holds the stored manifest byte for byte');
    const other = await tmp.make('push-pullback');
    const r = await runCli(['pull', '--store', other, '--no-unpack', '--quiet', ref], env);
    assert.equal(r.code, 0, r.stderr);
    const back = await OciStore.open(other);
    assert.equal(digestOf(await readFile(back.blobPath(big.digest))), big.digest);
    assert.ok((await readFile(back.blobPath(big.digest))).equals(await readFile(s.blobPath(big.digest))));
  }

  const patchesOf = (entries: ProxyLogEntry[]) => entries.filter((e) => e.method === 'PATCH' && UPLOAD_PATH.test(e.path));
  const contentRange = (e: ProxyLogEntry) => String(e.headers['content-range']);

  test('a blob over the threshold goes up in PATCHes of chunkSize and a PUT ?digest= with no body; smaller blobs in one PUT; progress events climb to the size', async () => {
    const { s, name, big } = await storeWithBigLayer();
    const image = await loadImageByName(s, name);
    rig.proxy.reset().clearLog();
    const events: PushEvent[] = [];
    const dest = parseReference(`localhost:${rig.proxy.port}/chunked/app:1`);
    const result = await pushImage(name, dest, { store: s, client: chunkedClient(), onEvent: (e) => events.push(e) });
    assert.equal(result.pushed, image.manifest.layers.length + 1);

    const patches = patchesOf(rig.proxy.log);
    const chunks = Math.ceil(big.size / CHUNK);
    assert.equal(patches.length, chunks, 'only the big layer is chunked');
    patches.forEach((p, i) => {
      const start = i * CHUNK;
      const end = Math.min(big.size, start + CHUNK) - 1;
      assert.equal(contentRange(p), `${start}-${end}`);
      assert.equal(p.headers['content-type'], 'application/octet-stream');
      assert.equal(p.requestBytes, end - start + 1);
      assert.equal(p.status, 202);
    });
    const puts = rig.proxy.requests('PUT', UPLOAD_PATH);
    assert.equal(puts.length, image.manifest.layers.length + 1, 'one closing PUT per blob');
    const bigPut = puts.find((p) => p.url.includes(encodeURIComponent(big.digest)))!;
    assert.equal(bigPut.requestBytes, 0, 'the chunked upload closes with an empty PUT');
    assert.equal(bigPut.status, 201);
    for (const p of puts.filter((x) => x !== bigPut)) assert.ok(p.requestBytes > 0, 'a small blob is one monolithic PUT with its bytes');

    // Progress: never going back, ending at the size, before 'pushed'.
    const progress = events.filter((e): e is Extract<PushEvent, { type: 'uploading' }> => e.type === 'uploading' && e.digest === big.digest);
    assert.ok(progress.length >= chunks, `${progress.length} progress events`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.uploaded > progress[i - 1]!.uploaded);
    assert.equal(progress.at(-1)!.uploaded, big.size);
    assert.ok(events.findIndex((e) => e === progress.at(-1)) < events.findIndex((e) => e.type === 'pushed' && e.digest === big.digest));
    for (const blob of [...image.manifest.layers, image.configDescriptor]) {
      const last = events.filter((e) => e.type === 'uploading' && e.digest === blob.digest).at(-1);
      assert.deepEqual(last, { type: 'uploading', digest: blob.digest, uploaded: blob.size, size: blob.size });
    }

    await assertPullsBack(`${rig.registry.host}/chunked/app:1`, s, name, big);
  });

  test('a PATCH cut mid-way resumes from the Range the registry reports for the session', async () => {
    const { s, name, big } = await storeWithBigLayer();
    rig.proxy.reset().clearLog();
    // The first chunk goes in; the second PATCH is cut half-way through its body.
    rig.proxy.cutRequestAfter(CHUNK / 2, { skip: 1 });
    const dest = parseReference(`localhost:${rig.proxy.port}/chunked/resumed:1`);
    await pushImage(name, dest, { store: s, client: chunkedClient() });

    // The big layer's session: its PATCHes, status GETs and closing PUT (the small blobs only PUT).
    const bigUpload = rig.proxy.log.filter((e) => UPLOAD_PATH.test(e.path) && (e.method !== 'PUT' || e.url.includes(encodeURIComponent(big.digest))));
    const cut = bigUpload.findIndex((e) => e.method === 'PATCH' && e.status === 0);
    assert.ok(cut > 0, 'a PATCH was cut');
    assert.equal(contentRange(bigUpload[cut]!), `${CHUNK}-${2 * CHUNK - 1}`);
    const status = bigUpload[cut + 1]!;
    assert.equal(status.method, 'GET', 'the registry was asked where the session stands');
    assert.equal(status.status, 204);
    const reported = /^0-(\d+)$/.exec(String(status.responseHeaders?.range));
    assert.ok(reported, `Range ${status.responseHeaders?.range}`);
    assert.equal(Number(reported[1]), CHUNK - 1);
    const next = bigUpload[cut + 2]!;
    assert.equal(next.method, 'PATCH');
    assert.equal(Number(contentRange(next).split('-')[0]), Number(reported[1]) + 1, 'the next PATCH starts right after the reported end');
    const image = await loadImageByName(s, name);
    assert.equal(rig.proxy.requests('POST', /\/blobs\/uploads\/$/).length, image.manifest.layers.length + 1, 'one session per blob: no new one for the resume');
    const sent = bigUpload.reduce((n, e) => n + e.requestBytes, 0);
    assert.ok(sent < 2 * big.size, `${sent} bytes sent for a ${big.size}-byte blob`);

    await assertPullsBack(`${rig.registry.host}/chunked/resumed:1`, s, name, big);
  });

  test('a PATCH answered 503 (Retry-After) is retried after the policy’s wait, from where the registry says the session stands', async () => {
    const { s, name, big } = await storeWithBigLayer();
    rig.proxy.reset().clearLog();
    // The second PATCH gets 503 from the proxy itself: the registry never saw it.
    const started = Date.now();
    rig.proxy.respond(503, { 'retry-after': '1' }, { path: UPLOAD_PATH, method: 'PATCH', skip: 1 });
    const dest = parseReference(`localhost:${rig.proxy.port}/chunked/retried:1`);
    await pushImage(name, dest, { store: s, client: chunkedClient() });
    const session = rig.proxy.log.filter((e) => UPLOAD_PATH.test(e.path) && (e.method !== 'PUT' || e.url.includes(encodeURIComponent(big.digest))));
    const refused = session.findIndex((e) => e.method === 'PATCH' && e.status === 503);
    assert.ok(refused > 0, session.map((e) => `${e.method} ${e.status}`).join(', '));
    assert.equal(session[refused + 1]!.method, 'GET');
    assert.equal(String(session[refused + 1]!.responseHeaders?.range), `0-${CHUNK - 1}`);
    assert.equal(contentRange(session[refused + 2]!), `${CHUNK}-${2 * CHUNK - 1}`);
    assert.ok(Date.now() - started >= 1000, 'Retry-After was honoured');
    await assertPullsBack(`${rig.registry.host}/chunked/retried:1`, s, name, big);
  });

  test('a session the registry no longer knows (404 on its status) starts a new one from byte 0', async () => {
    const { s, name, big } = await storeWithBigLayer();
    rig.proxy.reset().clearLog();
    rig.proxy.cutRequestAfter(CHUNK / 2, { skip: 1 }).respond(404, {}, { path: UPLOAD_PATH, method: 'GET', body: JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'blob upload unknown to registry' }] }) });
    const dest = parseReference(`localhost:${rig.proxy.port}/chunked/restarted:1`);
    await pushImage(name, dest, { store: s, client: chunkedClient() });
    const patches = patchesOf(rig.proxy.log);
    const afterGet = rig.proxy.log.slice(rig.proxy.log.findIndex((e) => e.method === 'GET' && UPLOAD_PATH.test(e.path)) + 1);
    // (Another blob's PUT may land in between: look for the big layer's next requests.)
    const post = afterGet.findIndex((e) => e.method === 'POST');
    const patch = afterGet.findIndex((e) => e.method === 'PATCH');
    assert.ok(post >= 0 && post < patch, 'a new session before the next PATCH');
    assert.equal(contentRange(afterGet[patch]!), `0-${CHUNK - 1}`);
    assert.equal(patches.filter((p) => p.status === 202).length, 1 + Math.ceil(big.size / CHUNK));
    await assertPullsBack(`${rig.registry.host}/chunked/restarted:1`, s, name, big);
  });

  test('a PATCH cut after part of it reached the registry: the registry drops the session (its size no longer matches), a new one starts from byte 0', async () => {
    const { s, name, big } = await storeWithBigLayer();
    rig.proxy.reset().clearLog();
    rig.proxy.cutRequestAfter(CHUNK / 2, { skip: 1, forward: true });
    const dest = parseReference(`localhost:${rig.proxy.port}/chunked/partial:1`);
    await pushImage(name, dest, { store: s, client: chunkedClient() });
    const bigUpload = rig.proxy.log.filter((e) => UPLOAD_PATH.test(e.path) || /\/blobs\/uploads\/$/.test(e.path));
    const status = bigUpload.findIndex((e) => e.method === 'GET');
    assert.ok(status > 0, 'the registry was asked where the session stands');
    assert.equal(bigUpload[status]!.status, 404, 'distribution cancels a session whose stored size differs from its state');
    const later = bigUpload.slice(status + 1);
    const post = later.findIndex((e) => e.method === 'POST');
    const patch = later.findIndex((e) => e.method === 'PATCH');
    assert.ok(post >= 0 && post < patch, 'a new session before the next PATCH');
    assert.equal(contentRange(later[patch]!), `0-${CHUNK - 1}`);
    await assertPullsBack(`${rig.registry.host}/chunked/partial:1`, s, name, big);
  });

  test('stratum push on a terminal draws docker’s bars; through a pipe only state lines', async () => {
    const { store, name, big } = await storeWithBigLayer();
    const dest = `localhost:${rig.proxy.port}/chunked/cli:1`;
    const tty = await underPty(['push', '--store', store, name, dest], env);
    assert.equal(tty.status, 0, tty.output);
    const id = big.digest.slice(7, 19);
    assert.match(tty.output, /The push refers to repository \[localhost:\d+\/chunked\/cli\]/);
    assert.match(tty.output, new RegExp(`${id}: Preparing`));
    assert.match(tty.output, new RegExp(`${id}: Pushing \\[=+>? *\\] +[\\d.]+[kM]?B/[\\d.]+MB`));
    assert.match(tty.output, /\x1b\[\d+A\r\x1b\[2K/, 'lines redrawn in place');
    assert.match(tty.output, new RegExp(`${id}: Pushed`));
    assert.match(tty.output, /1: digest: sha256:[0-9a-f]{64} size: \d+/);

    const piped = await runCli(['push', '--store', store, name, `localhost:${rig.proxy.port}/chunked/cli-pipe:1`], env);
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stdout, /\[=|\x1b/);
    // The store saw the blob go to chunked/cli just now: this push mounts it from there.
    assert.deepEqual(piped.stdout.split('\n').filter((l) => l.startsWith(`${id}: `)), [`${id}: Preparing`, `${id}: Mounted from chunked/cli`]);
  });
});
