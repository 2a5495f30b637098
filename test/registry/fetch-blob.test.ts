/**
 * RegistryClient.fetchBlob checks what it returns: a whole body is verified against its digest
 * and size while it streams (a flipped byte or a short body is an error, not data), a ranged
 * body says it is not; and an Engine call cancelled through its AbortSignal rejects with one
 * typed AbortedError (ERR_ABORTED) carrying the caller's reason. Real registry, fault proxy.
 */
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { AbortedError, isStratumError } from '../../src/errors.js';
import { Engine } from '../../src/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { BLOB_PATH } from '../helpers/fault-proxy.js';
import { TempDirs } from '../helpers/tmp.js';
import { FAST_RETRIES, startRig, type RegistryRig } from './setup.js';

const dirs = new TempDirs();
let rig: RegistryRig;
let client: RegistryClient;

before(async () => {
  rig = await startRig();
  client = new RegistryClient({ config: { retries: FAST_RETRIES } });
});
after(async () => {
  await client?.close();
  await rig?.stop();
  await dirs.cleanup();
});

describe('fetchBlob verifies', () => {
  test('a whole body: the bytes pass when they match; verified is true', async () => {
    const res = await client.fetchBlob(rig.blob.ref, rig.blob.digest, { size: rig.blob.bytes.length });
    assert.equal(res.verified, true);
    assert.ok((await buffer(res.body)).equals(rig.blob.bytes));
  });

  test('a flipped byte fails the read with ERR_DIGEST_MISMATCH naming the blob; the last chunk never arrives', async () => {
    rig.proxy.corruptByteAt(1000, { path: new RegExp(`/blobs/${rig.blob.digest}$`) });
    const res = await client.fetchBlob(rig.blob.ref, rig.blob.digest);
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of res.body) got += (chunk as Buffer).length;
      })(),
      (err: unknown) => isStratumError(err, 'ERR_DIGEST_MISMATCH') && (err as Error).message.includes(rig.blob.digest),
    );
    assert.ok(got < rig.blob.bytes.length, 'the whole (wrong) blob was handed over');
    rig.proxy.reset();
  });

  test('a wrong size given fails with ERR_SIZE_MISMATCH', async () => {
    const res = await client.fetchBlob(rig.blob.ref, rig.blob.digest, { size: 10 });
    await assert.rejects(text(res.body), (err: unknown) => isStratumError(err, 'ERR_SIZE_MISMATCH'));
  });

  test('a ranged body cannot be checked alone and says so; verify: false hands over the raw body', async () => {
    const ranged = await client.fetchBlob(rig.blob.ref, rig.blob.digest, { offset: 100 });
    assert.equal(ranged.verified, false);
    assert.ok((await buffer(ranged.body)).equals(rig.blob.bytes.subarray(100)));
    const raw = await client.fetchBlob(rig.blob.ref, rig.blob.digest, { verify: false });
    assert.equal(raw.verified, false);
    raw.body.destroy();
  });
});

describe('cancellation', () => {
  test('Engine.pull aborted mid-blob rejects with AbortedError (ERR_ABORTED) and the caller’s reason', async () => {
    const engine = await Engine.open({ root: await dirs.make('abort-store'), env: { STRATUM_CONFIG: '', XDG_CONFIG_HOME: '/nonexistent' }, mirrors: [`docker.io=${rig.proxy.url}`] });
    try {
      rig.proxy.stallAfter(100, 20_000, { path: BLOB_PATH });
      const controller = new AbortController();
      const reason = new Error('build cancelled by the user');
      const pulling = engine.pull('library/app:1', { signal: controller.signal, unpack: false });
      const deadline = Date.now() + 10_000;
      while (rig.proxy.requests('GET', BLOB_PATH).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      controller.abort(reason);
      await assert.rejects(pulling, (err: unknown) => err instanceof AbortedError && err.code === 'ERR_ABORTED' && err.reason === reason && /cancelled: build cancelled by the user/.test(err.message));
    } finally {
      rig.proxy.reset();
      await engine.close();
    }
  });
});
