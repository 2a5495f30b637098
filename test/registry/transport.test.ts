/**
 * Issue 12: registries as users meet them. A real docker-registry on loopback over TLS (the
 * certificates made here with openssl), trusted through a certs.d directory or not; one that
 * demands a client certificate; a real forward proxy (CONNECT) in front; a front that redirects
 * blob GETs to a second address, where the test checks what arrived.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { CertificateError, ConfigError, isStratumError } from '../../src/errors.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { RegistryConfig } from '../../src/registry/hosts.js';
import { random, type EntrySpec } from '../fixtures/layers.js';
import { pushStackedImages } from '../fixtures/push.js';
import { makeCertificates, writeCertsDir, type TestCertificates } from '../helpers/certs.js';
import { runCli } from '../helpers/cli.js';
import { ConnectProxy } from '../helpers/connect-proxy.js';
import { BLOB_PATH, FaultProxy } from '../helpers/fault-proxy.js';
import { registryRequestLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TokenIssuer } from '../helpers/token-issuer.js';
import { TempDirs } from '../helpers/tmp.js';

const MISSING = !existsSync('/usr/bin/docker-registry') ? '/usr/bin/docker-registry is not installed' : !existsSync('/usr/bin/openssl') ? 'openssl is not installed' : false;
const REPO = 'transport';
const LAYER: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/hello.txt', content: 'over TLS\n' },
  { type: 'file', path: 'etc/blob.bin', content: random(600_000, 'transport') },
];
const USER = { user: 'alice', password: 'wonderland' };
const LAYER_CUT = 200_000;

describe('transport: TLS, certificates, proxies, redirects against real registries', { skip: MISSING }, () => {
  const tmp = new TempDirs();
  const stops: Array<() => Promise<void>> = [];
  let storage: string;
  let plain: TestRegistry;
  let certs: TestCertificates;
  /** `<repo>/app:1` in the shared storage. */
  let image: string;

  async function keep<T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T> {
    const it = await p;
    stops.push(() => it.stop());
    return it;
  }

  /** Another docker-registry process over the same storage (so the image is there), with these TLS files. */
  function tlsRegistry(pair: { cert: string; key: string }, extra: { clientCAs?: string[] } = {}): Promise<TestRegistry> {
    // The harness's readiness probe verifies only a certificate that can pass.
    const probeCa = pair === certs.server ? { ca: certs.ca.cert } : {};
    return keep(startRegistry({ storageDir: storage, tls: { certificate: pair.cert, key: pair.key, ...probeCa, client: certs.client, ...extra } }));
  }

  async function pull(host: string, config: RegistryConfig, options: { env?: NodeJS.ProcessEnv; credentials?: StaticCredentials; log?: string[] } = {}): Promise<string> {
    const engine = await Engine.open({
      root: await tmp.make('transport-store'),
      config,
      env: options.env ?? {},
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.log ? { onDebug: (line: string) => void options.log!.push(line) } : {}),
    });
    try {
      const result = await engine.pull(`${host}/${image}`, { unpack: false });
      return result.digest;
    } finally {
      await engine.close();
    }
  }

  let digest: string;
  /** The layer blob's path: ~600 kB compressed (random bytes), so a cut at LAYER_CUT falls inside it. */
  let layerPath: RegExp;
  before(async () => {
    storage = await tmp.make('transport-storage');
    plain = await keep(startRegistry({ storageDir: storage }));
    const refs = await pushStackedImages(plain, await tmp.make('transport-images'), REPO, [LAYER], { app: [0] });
    image = refs.app.reference.slice(plain.host.length + 1);
    certs = await makeCertificates(await tmp.make('transport-certs'));
    digest = await pull(plain.host, {});
    const manifest = (await (await fetch(`${plain.url}/v2/${image.replace(/:1$/, '')}/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as { layers: { digest: string }[] };
    layerPath = new RegExp(`/blobs/${manifest.layers[0]!.digest}$`);
  });
  after(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
    await tmp.cleanup();
  });

  describe('HTTPS first', () => {
    test('a plain-HTTP registry on loopback: TLS is tried first, then plain HTTP, and --debug says so', async () => {
      const log: string[] = [];
      assert.equal(await pull(plain.host, {}, { log }), digest);
      assert.ok(log.some((l) => l.includes(`${plain.host}: no TLS (ERR_SSL_WRONG_VERSION_NUMBER); plain HTTP`)), log.join('\n'));
      assert.ok(log.some((l) => l === `transport: http://${plain.host}: direct`), log.join('\n'));

      const r = await runCli(['--debug', 'pull', '--no-unpack', '-q', '--store', await tmp.make('transport-cli'), `${plain.host}/${image}`], {});
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`stratum: debug: ${plain.host.replace(/\./g, '\\.')}: no TLS`));
    });

    test('a TLS registry on loopback needs no flag: HTTPS is spoken, unverified like Docker\'s insecure registries when no CA is given', async () => {
      const tls = await tlsRegistry(certs.server);
      const log: string[] = [];
      assert.equal(await pull(tls.host, {}, { log }), digest);
      assert.ok(log.some((l) => l.startsWith(`transport: https://${tls.host}: direct; TLS not verified (insecure registry)`)), log.join('\n'));
      assert.ok(log.some((l) => l.includes(`${tls.host}: speaks HTTPS`)), log.join('\n'));
      assert.ok(!log.some((l) => l.includes('http://')), 'never plain HTTP to a registry that speaks TLS');
    });
  });

  describe('certificates', () => {
    test('a host\'s own CA is trusted beside Node\'s store, NODE_EXTRA_CA_CERTS included (manifests on undici, blobs received natively)', async () => {
      const tls = await tlsRegistry(certs.server);
      const root = await tmp.make('certs-d-beside');
      // certs.d holds an unrelated CA; the registry's CA comes through NODE_EXTRA_CA_CERTS alone.
      await writeCertsDir(root, tls.host, { ca: certs.otherCa.cert });
      const r = await runCli(['pull', '--no-unpack', '-q', '--store', await tmp.make('transport-cli'), `${tls.host}/${image}`], { NODE_EXTRA_CA_CERTS: certs.ca.cert, STRATUM_CERTS_D: root });
      assert.equal(r.code, 0, r.stderr);
      const refused = await runCli(['pull', '--no-unpack', '-q', '--store', await tmp.make('transport-cli'), `${tls.host}/${image}`], { NODE_EXTRA_CA_CERTS: '', STRATUM_CERTS_D: root });
      assert.notEqual(refused.code, 0, 'without NODE_EXTRA_CA_CERTS the registry is not trusted');
      assert.match(refused.stderr, /unknown authority|certificate/i);
    });

    test('a CA in a certs.d directory (Docker\'s layout, HOST:PORT/ca.crt) is trusted and verification is on', async () => {
      const tls = await tlsRegistry(certs.server);
      const root = await tmp.make('certs-d');
      await writeCertsDir(root, tls.host, { ca: certs.ca.cert });
      const log: string[] = [];
      assert.equal(await pull(tls.host, { certsDirs: [root] }, { log }), digest);
      assert.ok(log.some((l) => l === `transport: https://${tls.host}: direct; TLS verified; CAs from ${root}/${tls.host}/ca.crt`), log.join('\n'));
      // The same through $STRATUM_CERTS_D, as the CLI reads it.
      const r = await runCli(['pull', '--no-unpack', '-q', '--store', await tmp.make('transport-cli'), `${tls.host}/${image}`], { STRATUM_CERTS_D: root });
      assert.equal(r.code, 0, r.stderr);
    });

    test('errors name the certificate problem and the host: unknown authority, expired, wrong name', async () => {
      const strict = (host: string): RegistryConfig => ({ hosts: { [host]: { skipVerify: false } } });
      const good = await tlsRegistry(certs.server);
      await assert.rejects(pull(good.host, strict(good.host)), (err: Error) => {
        assert.ok(err instanceof CertificateError, String(err));
        assert.equal(err.problem, 'unknown-authority');
        assert.equal(err.code, 'ERR_TLS_CERTIFICATE');
        assert.match(err.message, new RegExp(`TLS with ${good.host.replace(/\./g, '\\.')}: certificate signed by unknown authority.*certs\\.d/${good.host.replace(/\./g, '\\.')}/ca\\.crt`));
        return true;
      });

      const root = await tmp.make('certs-d-bad');
      const cases: Array<[keyof TestCertificates, CertificateError['problem'], RegExp]> = [
        ['expired', 'expired', /certificate has expired/],
        ['wrongName', 'wrong-name', /certificate is not valid for 127\.0\.0\.1/],
        ['untrusted', 'unknown-authority', /unknown authority/],
      ];
      for (const [pair, problem, message] of cases) {
        const reg = await tlsRegistry(certs[pair] as { cert: string; key: string });
        await writeCertsDir(root, reg.host, { ca: certs.ca.cert });
        await assert.rejects(pull(reg.host, { certsDirs: [root] }), (err: Error) => {
          assert.ok(err instanceof CertificateError, `${pair}: ${String(err)}`);
          assert.equal(err.problem, problem, pair);
          assert.match(err.message, message);
          assert.ok(err.message.includes(reg.host), `${pair}: the host is named: ${err.message}`);
          return true;
        });
      }
    });

    test('a registry that demands a client certificate: refused without one (named), accepted with certs.d client.cert/key or the config\'s client pair', async () => {
      const mtls = await tlsRegistry(certs.server, { clientCAs: [certs.clientCa.cert] });
      const bare = await tmp.make('certs-d-ca-only');
      await writeCertsDir(bare, mtls.host, { ca: certs.ca.cert });
      await assert.rejects(pull(mtls.host, { certsDirs: [bare] }), (err: Error) => {
        assert.ok(isStratumError(err, 'ERR_TLS_CERTIFICATE'), String(err));
        assert.equal((err as CertificateError).problem, 'client-certificate');
        assert.match(err.message, /client certificate/);
        return true;
      });

      const withClient = await tmp.make('certs-d-client');
      await writeCertsDir(withClient, mtls.host, { ca: certs.ca.cert, clientCert: certs.client.cert, clientKey: certs.client.key });
      const log: string[] = [];
      assert.equal(await pull(mtls.host, { certsDirs: [withClient] }, { log }), digest);
      assert.ok(log.some((l) => l.includes(`client certificate ${withClient}/${mtls.host}/client.cert`)), log.join('\n'));

      // containerd's hosts.toml fields in stratum's config: ca and client = [[cert, key]].
      assert.equal(await pull(mtls.host, { certsDirs: [], hosts: { [mtls.host]: { ca: [certs.ca.cert], client: { cert: certs.client.cert, key: certs.client.key } } } }), digest);
    });

    test('skip_verify is refused for a registry that is not insecure; a .cert without its .key is named', async () => {
      assert.throws(() => new RegistryClient({ config: { hosts: { 'registry.example.com': { skipVerify: true } } } }), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /hosts\.registry\.example\.com\.skipVerify: TLS verification may be skipped only for insecure registries/);
        return true;
      });
      const tls = await tlsRegistry(certs.server);
      const root = await tmp.make('certs-d-half');
      await writeCertsDir(root, tls.host, { ca: certs.ca.cert, clientCert: certs.client.cert });
      await assert.rejects(pull(tls.host, { certsDirs: [root] }), (err: Error) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.match(err.message, /client\.cert: .*client certificate without its key: .*client\.key is missing/);
        return true;
      });
    });
  });

  describe('proxies', () => {
    test('HTTPS_PROXY: every request to a TLS registry goes through a CONNECT tunnel; NO_PROXY skips it', async () => {
      const tls = await tlsRegistry(certs.server);
      const proxy = await keep(ConnectProxy.start());
      const log: string[] = [];
      assert.equal(await pull(tls.host, {}, { env: { HTTPS_PROXY: proxy.url }, log }), digest);
      const through = proxy.to(tls.host);
      assert.ok(through.length > 0 && through.every((r) => r.method === 'CONNECT' && r.status === 200), JSON.stringify(proxy.requests));
      assert.equal(proxy.requests.length, through.length, 'nothing else went through the proxy');
      assert.ok(log.some((l) => l.startsWith(`transport: https://${tls.host}: through proxy ${proxy.url}`)), log.join('\n'));

      proxy.clear();
      assert.equal(await pull(tls.host, {}, { env: { https_proxy: proxy.url, no_proxy: 'example.com,127.0.0.1' } }), digest);
      assert.equal(proxy.requests.length, 0, 'NO_PROXY names the host: no tunnel');
    });

    test('HTTP_PROXY for a plain-HTTP registry, and a proxy that wants credentials (user:password in the URL; a wrong one is a clear error)', async () => {
      const open = await keep(ConnectProxy.start());
      assert.equal(await pull(plain.host, {}, { env: { HTTP_PROXY: open.url, HTTPS_PROXY: open.url } }), digest);
      assert.ok(open.to(plain.host).length > 0, 'the plain registry was reached through the proxy');

      const guarded = await keep(ConnectProxy.start({ auth: { user: 'proxy', password: 's3cret' } }));
      const withAuth = guarded.url.replace('http://', 'http://proxy:s3cret@');
      const tls = await tlsRegistry(certs.server);
      assert.equal(await pull(tls.host, {}, { env: { HTTPS_PROXY: withAuth } }), digest);
      assert.ok(guarded.to(tls.host).some((r) => r.status === 200 && r.headers['proxy-authorization'] === `Basic ${Buffer.from('proxy:s3cret').toString('base64')}`));

      const log: string[] = [];
      await assert.rejects(pull(tls.host, {}, { env: { HTTPS_PROXY: guarded.url.replace('http://', 'http://proxy:wrong@') }, log }), (err: Error) => {
        assert.match(err.message, /407/);
        assert.ok(!err.message.includes('wrong'), `the password is not shown: ${err.message}`);
        return true;
      });
      assert.ok(log.some((l) => l.includes('through proxy http://proxy:***@')), `the password is redacted in --debug too: ${log.join('\n')}`);
    });
  });

  describe('redirects to blob storage', () => {
    /**
     * The front demands Bearer tokens (from a token service that wants Basic credentials) and
     * redirects blob GETs to `target`, a second proxy to the registry that demands nothing (as a
     * signed storage URL needs no credentials) and records what reached it.
     */
    async function redirectRig(): Promise<{ front: FaultProxy; target: FaultProxy; credentials: StaticCredentials }> {
      const issuer = await keep(TokenIssuer.start({ users: { [USER.user]: USER.password } }));
      const front = await keep(FaultProxy.start(plain.url));
      front.requireBearer({ issuer });
      const target = await keep(FaultProxy.start(plain.url));
      front.redirectBlobs(target.url);
      return { front, target, credentials: new StaticCredentials({ [front.host]: { username: USER.user, password: USER.password } }) };
    }

    test('blob GETs redirected to another host are followed; Authorization reaches the registry, never the storage host', async () => {
      const { front, target, credentials } = await redirectRig();
      assert.equal(await pull(front.host, {}, { credentials }), digest);
      const atTarget = target.requests('GET', BLOB_PATH);
      assert.ok(atTarget.length >= 2, 'config and layer came from the target');
      for (const r of atTarget) assert.equal(r.headers.authorization, undefined, `Authorization sent to the redirect target: ${r.path}`);
      const atFront = front.requests('GET', BLOB_PATH);
      assert.ok(atFront.length >= 2 && atFront.every((r) => r.status === 307 && typeof r.headers.authorization === 'string'), JSON.stringify(atFront.map((r) => [r.status, r.headers.authorization])));
    });

    test('a body cut at the storage host resumes with Range through a fresh redirect; an expired signed URL (403) is fetched again from the registry', async () => {
      const { front, target, credentials } = await redirectRig();
      target.cutAfter(LAYER_CUT, { path: layerPath });
      assert.equal(await pull(front.host, {}, { credentials }), digest);
      const ranged = target.requests('GET', BLOB_PATH).filter((r) => r.headers.range !== undefined);
      assert.ok(ranged.some((r) => /^bytes=\d+-$/.test(r.headers.range as string) && Number(/\d+/.exec(r.headers.range as string)![0]) > 0), `resumed with Range at the target: ${JSON.stringify(target.requests('GET', BLOB_PATH).map((r) => r.headers.range))}`);
      for (const r of target.requests('GET', BLOB_PATH)) assert.equal(r.headers.authorization, undefined);

      const again = await redirectRig();
      again.target.expireSignedUrl({ path: BLOB_PATH });
      assert.equal(await pull(again.front.host, {}, { credentials: again.credentials }), digest);
      const refused = again.target.requests('GET', BLOB_PATH).filter((r) => r.status === 403);
      assert.equal(refused.length, 1, 'the storage host refused one request');
      const failedPath = refused[0]!.path;
      assert.ok(again.front.requests('GET', BLOB_PATH).filter((r) => r.path === failedPath).length >= 2, 'the blob was asked of the registry again for a fresh URL');
    });
  });

  test('the registry log saw the TLS registry\'s requests (sanity: the shared storage serves every process)', async () => {
    const tls = await tlsRegistry(certs.server);
    await pull(tls.host, {});
    const log = registryRequestLog(tls);
    await log?.settle();
    assert.ok((log?.count('GET', /\/manifests\//) ?? 1) >= 1);
  });
});
