/**
 * listTags against the real registry: every tag, every page. distribution 2.8 ignores `n` and
 * `last` (it always sends the whole list, unsorted), so paging is checked through a small front
 * that pages the real registry's list the way the distribution spec (and distribution 3, Docker
 * Hub, ghcr.io) does: `n` tags after `last`, with `Link: <…>; rel="next"`, or without Link.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { isStratumError } from '../../src/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { nextLink, RegistryClient } from '../../src/registry/client.js';
import { StaticCredentials } from '../../src/registry/credentials.js';
import { Engine } from '../../src/engine/engine.js';
import { uploadBlob } from '../fixtures/push.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { TempDirs } from '../helpers/tmp.js';
import { FAST_RETRIES } from './setup.js';

const tmp = new TempDirs();
const TAGS = Array.from({ length: 23 }, (_, i) => `v${String(i).padStart(2, '0')}`);

async function pushTags(registry: TestRegistry, repo: string, tags: readonly string[]): Promise<void> {
  const c = registry.credentials;
  const headers: Record<string, string> = c ? { authorization: `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}` } : {};
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const digest = digestOf(config);
  await uploadBlob(registry, repo, digest, { bytes: config });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length },
    layers: [],
  });
  for (const tag of tags) {
    const res = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
    await res.arrayBuffer();
    assert.equal(res.status, 201);
  }
}

/** Forwards to the registry; pages tags/list when `n` is given. Logs the tags/list queries it served. */
async function pagingFront(target: string, mode: 'link' | 'last'): Promise<{ host: string; pages: string[]; close(): Promise<void> }> {
  const pages: string[] = [];
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const headers: Record<string, string> = {};
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const up = await fetch(`${target}${url.pathname}`, { headers });
    const body = Buffer.from(await up.arrayBuffer());
    const n = url.searchParams.get('n');
    if (!url.pathname.endsWith('/tags/list') || up.status !== 200 || n === null) {
      res.writeHead(up.status, Object.fromEntries([...up.headers].filter(([k]) => k !== 'content-length' && k !== 'transfer-encoding')));
      res.end(body);
      return;
    }
    pages.push(url.search);
    const all = (JSON.parse(body.toString()) as { name: string; tags: string[] }).tags.sort();
    const last = url.searchParams.get('last');
    const rest = last === null ? all : all.filter((t) => t > last);
    const page = rest.slice(0, Number(n));
    const out: Record<string, string> = { 'content-type': 'application/json' };
    if (mode === 'link' && rest.length > page.length) out.link = `<${url.pathname}?n=${n}&last=${encodeURIComponent(page.at(-1)!)}>; rel="next"`;
    res.writeHead(200, out);
    res.end(JSON.stringify({ name: 'x', tags: page }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    pages,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('listTags', () => {
  let registry: TestRegistry;
  const clients: RegistryClient[] = [];
  const client = (credentials?: StaticCredentials) => {
    const c = new RegistryClient({ config: { retries: FAST_RETRIES }, ...(credentials ? { credentials } : {}) });
    clients.push(c);
    return c;
  };

  before(async () => {
    registry = await startRegistry();
    await pushTags(registry, 'library/many', TAGS);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.stop();
    await tmp.cleanup();
  });

  test('every tag of the real registry in one call', async () => {
    const tags = await client().listTags(parseReference(`${registry.host}/library/many`));
    assert.deepEqual([...tags].sort(), TAGS);
  });

  test('pages with a small n following Link rel="next"', async () => {
    const front = await pagingFront(registry.url, 'link');
    try {
      const tags = await client().listTags(parseReference(`${front.host}/library/many`), { pageSize: 5 });
      assert.deepEqual(tags, TAGS);
      assert.deepEqual(front.pages, ['?n=5', '?n=5&last=v04', '?n=5&last=v09', '?n=5&last=v14', '?n=5&last=v19']);
    } finally {
      await front.close();
    }
  });

  test('pages with `last` when a full page comes without Link', async () => {
    const front = await pagingFront(registry.url, 'last');
    try {
      const tags = await client().listTags(parseReference(`${front.host}/library/many`), { pageSize: 23 });
      assert.deepEqual(tags, TAGS);
      // A full page, then an empty one after v22: done.
      assert.deepEqual(front.pages, ['?n=23', '?n=23&last=v22']);
      front.pages.length = 0;
      assert.deepEqual(await client().listTags(parseReference(`${front.host}/library/many`), { pageSize: 7 }), TAGS);
      assert.equal(front.pages.length, 4);
    } finally {
      await front.close();
    }
  });

  test('a registry that ignores n (distribution 2.8): all tags, no endless loop', async () => {
    const tags = await client().listTags(parseReference(`${registry.host}/library/many`), { pageSize: 3 });
    assert.deepEqual([...tags].sort(), TAGS);
  });

  test('an unknown repository is NotFound', async () => {
    await assert.rejects(client().listTags(parseReference(`${registry.host}/library/none`)), (err) => isStratumError(err, 'ERR_NOT_FOUND'));
  });

  test('Engine.listTags', async () => {
    const engine = await Engine.open({ root: await tmp.make('tags-store'), credentials: new StaticCredentials({}), env: { STRATUM_CONFIG: '' } });
    try {
      assert.deepEqual((await engine.listTags(`${registry.host}/library/many`)).sort(), TAGS);
    } finally {
      await engine.close();
    }
  });

  test('nextLink reads RFC 8288 headers', () => {
    assert.equal(nextLink('</v2/a/tags/list?n=2&last=b>; rel="next"'), '/v2/a/tags/list?n=2&last=b');
    assert.equal(nextLink('<https://x/y?a=1,2>; rel=prev, <https://x/z>; rel="next"'), 'https://x/z');
    assert.equal(nextLink('</a>; rel="prev"'), undefined);
    assert.equal(nextLink(undefined), undefined);
  });
});

describe('listTags with htpasswd auth', () => {
  let registry: TestRegistry;
  const user = 'lister';
  const password = 'tag-Pa55';

  before(async () => {
    registry = await startRegistry({ htpasswd: { user, password } });
    await pushTags(registry, 'private/app', ['1', '2', 'latest']);
  });
  after(async () => {
    await registry?.stop();
  });

  test('with credentials: the tags; without: ERR_UNAUTHORIZED naming the registry', async () => {
    const good = new RegistryClient({ config: { retries: FAST_RETRIES }, credentials: new StaticCredentials({ [registry.host]: { username: user, password } }) });
    const none = new RegistryClient({ config: { retries: FAST_RETRIES } });
    try {
      assert.deepEqual((await good.listTags(parseReference(`${registry.host}/private/app`), { pageSize: 2 })).sort(), ['1', '2', 'latest']);
      await assert.rejects(none.listTags(parseReference(`${registry.host}/private/app`)), (err) => isStratumError(err, 'ERR_UNAUTHORIZED') && err.message.includes(registry.host));
    } finally {
      await good.close();
      await none.close();
    }
  });
});
