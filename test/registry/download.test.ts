import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { Digester, digestOf } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { OciStore } from '../../src/content/store.js';
import { RegistryClient } from '../../src/registry/client.js';
import { createLimiter, downloadBlob } from '../../src/registry/download.js';
import { Transport } from '../../src/registry/transport/transport.js';
import type { DownloadEvent } from '../../src/registry/types.js';
import { TempDirs } from '../helpers/tmp.js';
import { FAST_RETRIES, startRig, type RegistryRig } from './setup.js';

/** The most a loopback connection's two kernel buffers can hold: tcp_rmem's and tcp_wmem's maximum. */
const SOCKET_BUFFERS_MAX = ['tcp_rmem', 'tcp_wmem']
  .map((name) => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]))
  .reduce((a, b) => a + b, 0);

const tmp = new TempDirs();
let rig: RegistryRig;

/** The client's Transport, noting the path of every request undici carries (native bodies bypass it). */
class RecordingTransport extends Transport {
  paths: string[] = [];
  override dispatch(options: Parameters<Transport['dispatch']>[0], handler: Parameters<Transport['dispatch']>[1]): boolean {
    this.paths.push(String(options.path));
    return super.dispatch(options, handler);
  }
}

function recordingTransport(): RecordingTransport {
  return new RecordingTransport({
    certsDirs: [],
    isInsecure: () => true,
    connections: 8,
    keepAliveTimeoutMs: 4_000,
    headersTimeoutMs: 30_000,
    bodyTimeoutMs: 30_000,
    connectTimeoutMs: 10_000,
  });
}

let agent: RecordingTransport;

function client(config: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  return new RegistryClient({ ...config, dispatcher: agent, config: { retries: FAST_RETRIES, ...config.config } });
}

async function store(): Promise<OciStore> {
  return OciStore.open(await tmp.make('dl-store'));
}

/** Files left anywhere under the store root except blobs/ and the layout files. */
async function leftovers(s: OciStore): Promise<string[]> {
  const all = (await readdir(s.root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  return all.map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).filter((p) => !/oci-layout$|index\.json$/.test(p));
}

before(async () => {
  rig = await startRig();
});
after(async () => {
  await rig?.stop();
  await tmp.cleanup();
});

// Every case runs on both receive paths: blob bodies received in C (native/tls.c, the default
// for a direct route) and through undici (STRATUM_NATIVE_HTTP=0, and every proxied route).
for (const mode of ['native', 'undici'] as const) describe(`downloadBlob against a real registry (${mode} receive)`, () => {
  const saved = process.env.STRATUM_NATIVE_HTTP;
  before(() => {
    agent = recordingTransport();
    if (mode === 'undici') process.env.STRATUM_NATIVE_HTTP = '0';
    else delete process.env.STRATUM_NATIVE_HTTP;
  });
  after(async () => {
    if (saved === undefined) delete process.env.STRATUM_NATIVE_HTTP;
    else process.env.STRATUM_NATIVE_HTTP = saved;
    await agent.close();
  });

  test('fresh download: events, committed blob, then "exists" without any GET', async () => {
    rig.proxy.reset().clearLog();
    agent.paths = [];
    const s = await store();
    const events: DownloadEvent[] = [];
    const { digest, bytes, ref } = rig.blob;
    const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { onEvent: (e) => events.push(e), progressIntervalMs: 0 });
    assert.deepEqual(res.info, { digest, size: bytes.length });
    assert.equal(res.existed, false);
    assert.equal(res.resumedFrom, 0);
    assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'downloading');
    assert.deepEqual(types.slice(-2), ['verifying', 'complete']);
    const last = events.filter((e) => e.type === 'downloading').at(-1) as Extract<DownloadEvent, { type: 'downloading' }>;
    assert.equal(last.current, bytes.length);
    assert.equal(last.total, bytes.length);
    const blobGet = rig.proxy.requests('GET', /\/blobs\//);
    assert.equal(blobGet.length, 1);
    if (mode === 'undici') assert.equal(agent.paths.filter((p) => p.includes('/blobs/')).length, 1, 'the blob GET went through the client\'s dispatcher');
    else {
      assert.equal(agent.paths.filter((p) => p.includes('/blobs/')).length, 0, 'the blob body was received natively, not through undici');
      assert.equal(blobGet[0]!.headers.connection, undefined, 'the native request (HTTP/1.1, kept alive)');
      // The same blob into another store: its GET goes out on the kept-alive connection.
      await downloadBlob(client(), ref, { digest, size: bytes.length }, await store(), {});
      const gets = rig.proxy.requests('GET', /\/blobs\//);
      assert.equal(gets.length, 2);
      assert.equal(gets[1]!.connection, gets[0]!.connection, 'the second GET reused the first one\'s connection');
    }

    rig.proxy.clearLog();
    const again: DownloadEvent[] = [];
    const second = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { onEvent: (e) => again.push(e) });
    assert.equal(second.existed, true);
    assert.deepEqual(again, [{ type: 'exists', digest, size: bytes.length }]);
    assert.equal(rig.proxy.requests('GET', /\/blobs\//).length, 0);
  });

  test('connection cut mid-blob → retried with Range from the bytes on disk; tee sees every byte once', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    const cut = 1024 * 1024 + 7;
    rig.proxy.cutAfter(cut);
    const teed = new Digester();
    const events: DownloadEvent[] = [];
    const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { tee: (c) => teed.update(c), onEvent: (e) => events.push(e) });
    assert.equal(res.info.digest, digest);
    const gets = rig.proxy.requests('GET', /\/blobs\//);
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.headers.range, undefined);
    const m = /^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range));
    assert.ok(m, `second request carries Range, got ${gets[1]!.headers.range}`);
    const from = Number(m[1]);
    assert.ok(from > 0 && from <= cut, `resumed from ${from}, cut after ${cut}`);
    assert.equal(gets[1]!.status, 206);
    assert.equal(teed.digest(), digest);
    assert.equal(teed.size, bytes.length);
    assert.ok(events.some((e) => e.type === 'retrying'));
    assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
  });

  test('cut with no retries left → error, partial kept; the rerun fetches only the missing bytes', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.cutAfter(2 * 1024 * 1024);
    await assert.rejects(downloadBlob(client(), ref, { digest, size: bytes.length }, s, { retry: { maxAttempts: 1 } }));
    assert.equal(await s.has(digest), false);
    rig.proxy.clearLog();
    const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s);
    assert.ok(res.resumedFrom > 0 && res.resumedFrom <= 2 * 1024 * 1024, `resumedFrom ${res.resumedFrom}`);
    const [get] = rig.proxy.requests('GET', /\/blobs\//);
    assert.equal(get!.headers.range, `bytes=${res.resumedFrom}-`);
    assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
  });

  test('registry ignores Range after a cut → restarts from 0, result and tee still right', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.cutAfter(500_000).ignoreRange();
    const teed = new Digester();
    const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { tee: (c) => teed.update(c) });
    assert.equal(res.info.size, bytes.length);
    const gets = rig.proxy.requests('GET', /\/blobs\//);
    assert.deepEqual(gets.map((g) => g.status), [200, 200]);
    assert.match(String(gets[1]!.headers.range), /^bytes=\d+-$/, 'asked for a range (which the proxy stripped)');
    assert.equal(teed.digest(), digest);
    assert.equal(teed.size, bytes.length);
    rig.proxy.reset();
  });

  test('cut, then Range ignored, without a tee → the file restarts from 0 and the blob is right', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.cutAfter(1_500_000).ignoreRange();
    const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s);
    assert.equal(res.info.size, bytes.length);
    assert.deepEqual(rig.proxy.requests('GET', /\/blobs\//).map((g) => g.status), [200, 200]);
    assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
    rig.proxy.reset();
  });

  describe('parallel Range requests within one large blob', () => {
    const PARALLEL = { thresholdBytes: 1 << 20, chunkBytes: 512 << 10, connections: 3 };

    test('a blob over the threshold comes in bounded Range requests, several in flight, written and teed in order', async () => {
      rig.proxy.reset().clearLog();
      const s = await store();
      const { digest, bytes, ref } = rig.blob;
      const teed = new Digester();
      const events: DownloadEvent[] = [];
      const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { parallel: PARALLEL, tee: (c) => teed.update(c), onEvent: (e) => events.push(e), progressIntervalMs: 0 });
      assert.equal(res.info.digest, digest);
      assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
      assert.equal(teed.digest(), digest, 'tee saw every byte once, in order');
      const ranges = rig.proxy.requests('GET', /\/blobs\//).map((g) => String(g.headers.range));
      const expected: string[] = [];
      for (let start = 0; start < bytes.length; start += PARALLEL.chunkBytes) expected.push(`bytes=${start}-${Math.min(start + PARALLEL.chunkBytes, bytes.length) - 1}`);
      assert.deepEqual([...ranges].sort(), [...expected].sort(), 'one bounded Range per chunk, covering the blob');
      assert.ok(rig.proxy.requests('GET', /\/blobs\//).every((g) => g.status === 206));
      const progress = events.filter((e): e is Extract<DownloadEvent, { type: 'downloading' }> => e.type === 'downloading').map((e) => e.current);
      assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress only grows');
      assert.equal(progress.at(-1), bytes.length);
      // Below the threshold: one request as before.
      rig.proxy.clearLog();
      await downloadBlob(client(), ref, { digest, size: bytes.length }, await store(), { parallel: { ...PARALLEL, thresholdBytes: bytes.length + 1 } });
      assert.deepEqual(rig.proxy.requests('GET', /\/blobs\//).map((g) => g.headers.range), [undefined]);
    });

    test('a chunk cut mid-way: the blob resumes after what reached the file, and is right', async () => {
      rig.proxy.reset().clearLog();
      const s = await store();
      const { digest, bytes, ref } = rig.blob;
      rig.proxy.cutAfter(100_000, { path: /\/blobs\//, count: 1 });
      const events: DownloadEvent[] = [];
      const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { parallel: PARALLEL, onEvent: (e) => events.push(e) });
      assert.equal(res.info.digest, digest);
      assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
      assert.ok(events.some((e) => e.type === 'retrying'), 'the cut was retried');
    });

    test('a registry that ignores Range: the whole blob in one request instead, right', async () => {
      rig.proxy.reset().clearLog();
      rig.proxy.ignoreRange();
      const s = await store();
      const { digest, bytes, ref } = rig.blob;
      const res = await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { parallel: PARALLEL });
      rig.proxy.reset();
      assert.equal(res.info.digest, digest);
      assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
      const statuses = rig.proxy.requests('GET', /\/blobs\//).map((g) => g.status);
      assert.equal(statuses.filter((x) => x === 200).length <= PARALLEL.connections + 1, true, `a few 200s at most: ${statuses}`);
    });
  });

  test('one corrupted byte → DigestMismatchError, nothing committed, no partial left', async () => {
    rig.proxy.reset();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.corruptByteAt(12345);
    await assert.rejects(downloadBlob(client(), ref, { digest, size: bytes.length }, s), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_DIGEST_MISMATCH'), err.message);
      assert.match(err.message, new RegExp(digest));
      return true;
    });
    assert.equal(await s.has(digest), false);
    assert.deepEqual(await leftovers(s), []);
  });

  test('a mirror serving a corrupt blob → fetched again from the upstream', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes } = rig.blob;
    const c = client({ config: { mirrors: { [rig.registry.host]: [rig.proxy.url] } } });
    const ref = parseReference(`${rig.registry.host}/library/app:1`);
    rig.proxy.corruptByteAt(99);
    const res = await downloadBlob(c, ref, { digest, size: bytes.length }, s);
    assert.equal(res.endpoint?.isMirror, false);
    assert.equal(res.endpoint?.url, rig.registry.url);
    assert.equal(rig.proxy.requests('GET', /\/blobs\//).length, 1, 'the mirror was asked once');
    assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
  });

  test('an endless chunked body → ERR_SIZE_MISMATCH naming the blob, read stops at size + 1, nothing kept', async () => {
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    const configDigest = rig.fixtures.app.configDigest;
    const config = { digest: configDigest, size: (await (await fetch(`${rig.registry.url}/v2/library/app/blobs/${configDigest}`)).arrayBuffer()).byteLength };
    for (const blob of [{ digest, size: bytes.length }, config]) {
      rig.proxy.reset().clearLog();
      // 512 MiB of padding: before the fix all of it was read and written to the ingest file.
      rig.proxy.oversizeBody(512 << 20);
      await assert.rejects(downloadBlob(client(), ref, blob, s), (err: Error) => {
        assert.ok(isStratumError(err, 'ERR_SIZE_MISMATCH'), `${err.name}: ${err.message}`);
        assert.ok(err.message.includes(blob.digest), err.message);
        return true;
      });
      const [get] = rig.proxy.requests('GET', /\/blobs\//);
      await new Promise((r) => setTimeout(r, 100)); // the proxy hears of the hang-up
      // What the proxy got into the socket: the blob, plus at most what the kernel's buffers held
      // when the client hung up (a kept-alive connection may have its receive window grown to
      // tcp_rmem's maximum already), never the 512 MiB.
      const sent = get!.bodyBytes ?? 0;
      assert.ok(sent < blob.size + SOCKET_BUFFERS_MAX + (4 << 20), `proxy sent ${sent} bytes for a ${blob.size}-byte blob (socket buffers: at most ${SOCKET_BUFFERS_MAX})`);
      assert.equal(await s.has(blob.digest), false);
      assert.deepEqual(await leftovers(s), [], 'the oversized body left nothing in the store');
    }
    rig.proxy.reset();
  });

  test('a 206 whose Content-Length runs past the blob (Range resume after a cut) → ERR_SIZE_MISMATCH, read stops at size + 1', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    // The resumed request gets the right Content-Range but 512 MiB more body: over plain HTTP the
    // native receive path takes it, bounded only by the size it is asked for.
    rig.proxy.cutAfter(1 << 20).oversizeBody(512 << 20, { framing: 'length' });
    await assert.rejects(downloadBlob(client(), ref, { digest, size: bytes.length }, s), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_SIZE_MISMATCH'), `${err.name}: ${err.message}`);
      assert.ok(err.message.includes(digest), err.message);
      return true;
    });
    const gets = rig.proxy.requests('GET', /\/blobs\//);
    assert.deepEqual(gets.map((g) => g.status), [200, 206]);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok((gets[1]!.bodyBytes ?? 0) < bytes.length + (16 << 20), `proxy sent ${gets[1]!.bodyBytes} bytes`);
    assert.deepEqual(await leftovers(s), []);
    rig.proxy.reset();
  });

  test('a mirror sending an endless body → dropped at size + 1, the blob fetched again from the upstream', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes } = rig.blob;
    const c = client({ config: { mirrors: { [rig.registry.host]: [rig.proxy.url] } } });
    rig.proxy.oversizeBody(512 << 20);
    const res = await downloadBlob(c, parseReference(`${rig.registry.host}/library/app:1`), { digest, size: bytes.length }, s);
    assert.equal(res.endpoint?.url, rig.registry.url);
    assert.equal(rig.proxy.requests('GET', /\/blobs\//).length, 1, 'the mirror was asked once');
    assert.ok((await s.read(digest, 8 << 20)).equals(bytes));
    rig.proxy.reset();
  });

  test('a cut that exhausts the retries → the error names the blob digest', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.cutAfter(100_000).cutAfter(0, { count: 10 }); // no progress after the first cut: the attempts run out
    await assert.rejects(downloadBlob(client(), ref, { digest, size: bytes.length }, s, { retry: { ...FAST_RETRIES, maxAttempts: 2 } }), (err: Error) => {
      assert.ok(isStratumError(err, 'ERR_NETWORK'), `${err.name}: ${err.message}`);
      assert.ok(err.message.includes(digest), err.message);
      return true;
    });
    assert.equal(rig.proxy.requests('GET', /\/blobs\//).length, 2);
    rig.proxy.reset();
  });

  test('429 with Retry-After: 1 → retried after at least a second', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.respond(429, { 'retry-after': '1' }, { path: /\/blobs\// });
    const events: DownloadEvent[] = [];
    const started = Date.now();
    await downloadBlob(client(), ref, { digest, size: bytes.length }, s, { onEvent: (e) => events.push(e) });
    assert.ok(Date.now() - started >= 1000);
    const retry = events.find((e) => e.type === 'retrying') as Extract<DownloadEvent, { type: 'retrying' }>;
    assert.equal(retry.delayMs, 1000);
    assert.match(retry.reason, /429/);
    assert.deepEqual(rig.proxy.requests('GET', /\/blobs\//).map((e) => e.status), [429, 200]);
  });

  test('503 → retried', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const { digest, bytes, ref } = rig.blob;
    rig.proxy.respond(503, {}, { path: /\/blobs\//, count: 2 });
    await downloadBlob(client(), ref, { digest, size: bytes.length }, s);
    assert.deepEqual(rig.proxy.requests('GET', /\/blobs\//).map((e) => e.status), [503, 503, 200]);
    assert.equal(await s.has(digest), true);
  });

  test('unknown size (schema1 style) and a 404 that is not retried', async () => {
    rig.proxy.reset().clearLog();
    const s = await store();
    const layer = rig.fixtures.base.layers[0]!;
    const ref = rig.ref('library/base:1');
    const res = await downloadBlob(client(), ref, { digest: layer.digest }, s);
    assert.equal(res.info.size, layer.size);
    const missing = digestOf('missing blob');
    rig.proxy.clearLog();
    await assert.rejects(downloadBlob(client(), ref, { digest: missing }, s), (err: Error) => isStratumError(err, 'ERR_NOT_FOUND'));
    assert.equal(rig.proxy.requests('GET', /\/blobs\//).length, 1);
  });

  test('createLimiter bounds concurrency', async () => {
    const limit = createLimiter(2);
    let running = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        limit(async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setTimeout(r, 10));
          running--;
        }),
      ),
    );
    assert.equal(peak, 2);
  });
});
