// stratum sign / verify / pull --verify-key as a user runs them: keys made by openssl, the real registry.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sharedRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { pushFixtures, type PushedFixtures } from '../fixtures/images.js';

/** A P-256 key pair as `openssl` writes it (SEC1 private key, SPKI public key). */
async function opensslKeys(dir: string, name: string): Promise<{ key: string; pub: string }> {
  const key = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  await writeFile(key, execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout']));
  await writeFile(pub, execFileSync('openssl', ['ec', '-in', key, '-pubout'], { stdio: ['ignore', 'pipe', 'ignore'] }));
  return { key, pub };
}

describe('stratum sign / verify / pull --verify-key (CLI)', () => {
  let registry: TestRegistry;
  let fixtures: PushedFixtures;
  const dirs = new TempDirs();
  let env: NodeJS.ProcessEnv = {};
  let keys: { key: string; pub: string };
  let other: { key: string; pub: string };

  before(async () => {
    registry = await sharedRegistry();
    fixtures = await pushFixtures(registry);
    const home = await dirs.make('home');
    env = { XDG_CONFIG_HOME: home, DOCKER_CONFIG: home, STRATUM_CONFIG: '' };
    keys = await opensslKeys(home, 'cosign');
    other = await opensslKeys(home, 'other');
  });
  after(async () => {
    await registry?.stop();
    await dirs.cleanup();
  });

  const cli = async (store: string, ...args: string[]) => runCli(['--store', store, ...args], env);
  const copyTo = async (store: string, repo: string) => {
    const ref = `${registry.host}/${repo}:1`;
    const r = await cli(store, 'copy', '-q', `${registry.host}/library/app:1`, ref);
    assert.equal(r.code, 0, r.stderr);
    return ref;
  };

  it('sign --push a pulled image, verify it from a fresh store, refuse another key with the reason', async () => {
    const a = await dirs.make('store');
    const ref = await copyTo(a, 'cli/signed');
    assert.equal((await cli(a, 'pull', '-q', '--no-unpack', ref)).code, 0);
    const signed = await cli(a, 'sign', '--key', keys.key, '--push', ref);
    assert.equal(signed.code, 0, signed.stderr);
    assert.match(signed.stdout, /^sha256:[0-9a-f]{64}\n$/);
    assert.match(signed.stderr, /stored with the image, pushed to .* \(referrers-tag\)/);

    const b = await dirs.make('store');
    const ok = await cli(b, 'verify', '--key', keys.pub, ref);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^Verified .*@${fixtures.app.digest}: bundle signature \\(registry tag sha256-`));
    const json = JSON.parse((await cli(b, 'verify', '--json', '--key', keys.pub, ref)).stdout);
    assert.equal(json.subject, fixtures.app.digest);

    const wrong = await cli(b, 'verify', '--key', other.pub, ref);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /signed by another key .*\(ERR_SIGNATURE_OTHER_KEY\)/);

    const pulled = await cli(b, 'pull', '--no-unpack', '--verify-key', keys.pub, ref);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await cli(a, 'verify', '--source', 'store', '--key', keys.pub, ref)).code, 0);
  });

  it('an unsigned image: verify says missing, pull --verify-key stores nothing', async () => {
    const store = await dirs.make('store');
    const ref = await copyTo(store, 'cli/unsigned');
    const r = await cli(store, 'verify', '--key', keys.pub, ref);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no signature found .*\(ERR_SIGNATURE_MISSING\)/);
    const fresh = await dirs.make('store');
    const p = await cli(fresh, 'pull', '--verify-key', keys.pub, ref);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /ERR_SIGNATURE_MISSING/);
    assert.equal((await cli(fresh, 'images', '-q')).stdout, '');
  });

  it('--format cosign signs at the registry (the image is not stored) and verifies; usage errors', async () => {
    const store = await dirs.make('store');
    const ref = await copyTo(store, 'cli/cosign');
    const s = await cli(store, 'sign', '--key', keys.key, '--format', 'cosign', '--json', ref);
    assert.equal(s.code, 0, s.stderr);
    const result = JSON.parse(s.stdout);
    assert.equal(result.stored, false);
    assert.deepEqual(result.pushed.via, 'cosign-tag');
    const v = await cli(await dirs.make('store'), 'verify', '--key', keys.pub, ref);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /cosign signature \(registry tag sha256-[0-9a-f]{64}\.sig\)/);

    assert.equal((await cli(store, 'sign', ref)).code, 2);
    assert.equal((await cli(store, 'sign', '--key', keys.key, '--format', 'x509', ref)).code, 2);
    const missing = await cli(store, 'verify', '--key', join(store, 'nope.pub'), ref);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read --key .*ENOENT/);
    const rsa = join(store, 'rsa.key');
    await writeFile(rsa, execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    const r = await cli(store, 'sign', '--key', rsa, ref);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /must be ECDSA P-256 .*\(ERR_INVALID_ARGUMENT\)/);
  });

  it('--keyless takes its URLs and token from flags or the environment, and without Fulcio fails naming the URL (ERR_KEYLESS_UNAVAILABLE)', async () => {
    const store = await dirs.make('store');
    const ref = await copyTo(store, 'cli/keyless');
    const noToken = await runCli(['--store', store, 'sign', '--keyless', ref], { ...env, SIGSTORE_ID_TOKEN: '' });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /OIDC identity token .*SIGSTORE_ID_TOKEN.*\(ERR_KEYLESS_UNAVAILABLE\)/);
    const flags = await cli(store, 'sign', '--keyless', '--identity-token', 'not-a-token', '--fulcio-url', 'http://127.0.0.1:9', '--rekor-url', 'http://127.0.0.1:9', ref);
    assert.equal(flags.code, 1);
    assert.match(flags.stderr, /Fulcio at http:\/\/127\.0\.0\.1:9 .*\(ERR_KEYLESS_UNAVAILABLE\)/);
    const fromEnv = await runCli(['--store', store, 'sign', '--keyless', ref], { ...env, SIGSTORE_ID_TOKEN: 'not-a-token', STRATUM_FULCIO_URL: 'http://127.0.0.1:7', STRATUM_REKOR_URL: 'http://127.0.0.1:7' });
    assert.equal(fromEnv.code, 1);
    assert.match(fromEnv.stderr, /Fulcio at http:\/\/127\.0\.0\.1:7 /);
    assert.equal((await cli(store, 'sign', '--keyless', '--key', keys.key, ref)).code, 2, '--key and --keyless together');
    assert.equal((await cli(store, 'verify', '--key', keys.pub, ref)).code, 1, 'nothing was signed');
  });
});
