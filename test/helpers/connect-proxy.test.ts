import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fetch as undiciFetch, ProxyAgent } from 'undici';
import { makeCertificates } from './certs.js';
import { ConnectProxy } from './connect-proxy.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { TempDirs } from './tmp.js';

/** The messages of an error and its causes: undici nests the proxy's refusal two levels down. */
function causeChain(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as Error | undefined; e; e = e.cause as Error | undefined) parts.push(e.message);
  return parts.join(' <- ');
}

const haveRegistry = existsSync('/usr/bin/docker-registry');

describe('CONNECT proxy helper', { skip: haveRegistry ? false : '/usr/bin/docker-registry is not installed' }, () => {
  const tmp = new TempDirs();
  let tlsRegistry: TestRegistry;
  let plainRegistry: TestRegistry;
  let ca: Buffer;
  const cleanup: Array<() => Promise<unknown>> = [];
  before(async () => {
    const certs = await makeCertificates(await tmp.make('proxy-certs'));
    ca = readFileSync(certs.ca.cert);
    [tlsRegistry, plainRegistry] = await Promise.all([startRegistry({ tls: { certificate: certs.server.cert, key: certs.server.key } }), startRegistry()]);
    cleanup.push(() => tlsRegistry.stop(), () => plainRegistry.stop());
  });
  after(async () => {
    for (const c of cleanup.splice(0)) await c();
    await tmp.cleanup();
  });

  async function proxy(opts?: Parameters<typeof ConnectProxy.start>[0]): Promise<ConnectProxy> {
    const p = await ConnectProxy.start(opts);
    cleanup.push(() => p.stop());
    return p;
  }
  function agent(p: ConnectProxy, extra: Partial<ProxyAgent.Options> = {}): ProxyAgent {
    const a = new ProxyAgent({ uri: p.url, requestTls: { ca }, ...extra });
    cleanup.push(() => a.close());
    return a;
  }

  test('tunnels https to the TLS registry with CONNECT and records the target', async () => {
    const p = await proxy();
    const res = await undiciFetch(`${tlsRegistry.url}/v2/`, { dispatcher: agent(p) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(p.tunnels, 1);
    assert.deepEqual(p.to(tlsRegistry.host).map((r) => [r.method, r.status]), [['CONNECT', 200]]);
  });

  test('relays absolute-form requests to a plain-http registry, recording path and headers', async () => {
    const p = await proxy();
    const res = await undiciFetch(`${plainRegistry.url}/v2/_catalog?n=1`, { dispatcher: agent(p, { proxyTunnel: false }), headers: { 'x-probe': 'yes' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(p.relayed, 1);
    const [r] = p.to(plainRegistry.host);
    assert.equal(r?.method, 'GET');
    assert.equal(r?.path, '/v2/_catalog?n=1');
    assert.equal(r?.headers['x-probe'], 'yes');
  });

  test('proxy Basic auth: 407 with Proxy-Authenticate without credentials, tunnel with them', async () => {
    const p = await proxy({ auth: { user: 'pu', password: 'pp' } });
    await assert.rejects(undiciFetch(`${tlsRegistry.url}/v2/`, { dispatcher: agent(p) }), (err: Error) => /\(407\)/.test(causeChain(err)));
    // undici turns a 407 into an error, so the absolute-form request is written by hand.
    const plain = await new Promise<IncomingMessage>((resolve, reject) =>
      httpRequest({ host: '127.0.0.1', port: p.port, path: `${plainRegistry.url}/v2/` }, resolve).once('error', reject).end(),
    );
    plain.resume();
    assert.equal(plain.statusCode, 407);
    assert.match(plain.headers['proxy-authenticate'] ?? '', /^Basic realm=/);
    const token = `Basic ${Buffer.from('pu:pp').toString('base64')}`;
    const ok = await undiciFetch(`${tlsRegistry.url}/v2/`, { dispatcher: agent(p, { token }) });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.equal(p.refused, 2);
    assert.equal(p.tunnels, 1);
    assert.equal(p.requests.at(-1)?.headers['proxy-authorization'], token);
  });
});
