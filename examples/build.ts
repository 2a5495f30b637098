/**
 * A mini image builder (buildah / ko in a hundred lines) on stratum's library alone:
 *
 *   base image pulled from a registry → a directory appended as a layer → Env, Cmd, Labels →
 *   the same build twice gives the same digest (SOURCE_DATE_EPOCH) → an index of two platforms →
 *   pushed → signed with a fresh ECDSA P-256 key → verified → pulled back into another store with
 *   the signature checked first → the two root filesystems compared entry by entry.
 *
 *   node dist/examples/build.js --store DIR --pull-store DIR BASE DESTINATION
 *     BASE         e.g. 127.0.0.1:5000/example/base:1 (a linux image)
 *     DESTINATION  e.g. 127.0.0.1:5000/example/app:1 (where the index is pushed)
 *
 * It prints each step and, last, one line `RESULT {json}` with every digest.
 * docs/build-an-image.md walks through it.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, keySigner } from 'stratum';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { store: { type: 'string' }, 'pull-store': { type: 'string' } } });
const [base, destination] = positionals;
if (!base || !destination || !values.store || !values['pull-store']) {
  console.error('usage: build.js --store DIR --pull-store DIR BASE DESTINATION');
  process.exit(2);
}
// Reproducible: every mtime in the new layer and every date in the config is this instant.
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 1_700_000_000);
const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
] as const;

/** Every entry of a tree (path, type, mode, owner, content digest or link target), hashed in path order. */
async function treeDigest(root: string): Promise<{ digest: string; entries: number }> {
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path));
      const what = st.isFile() ? createHash('sha256').update(await readFile(join(root, path))).digest('hex') : st.isSymbolicLink() ? await readlink(join(root, path)) : '';
      lines.push(`${path} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return { digest: `sha256:${createHash('sha256').update(lines.join('\n')).digest('hex')}`, entries: lines.length };
}

const builder = await Engine.open({ root: values.store });
const puller = await Engine.open({ root: values['pull-store'] });
const work = await mkdtemp(join(tmpdir(), 'stratum-build-'));
const mounts: Array<[Engine, string]> = [];
try {
  // 1. The base image, from the registry.
  const pulled = await builder.pull(base, { platform: PLATFORMS[0] });
  console.log(`base ${pulled.name} ${pulled.manifest.digest}`);

  // 2. The build context: what the new layer holds, at /app.
  const context = join(work, 'context');
  await mkdir(join(context, 'app'), { recursive: true });
  await writeFile(join(context, 'app', 'hello.sh'), '#!/bin/sh\necho "hello from $APP_NAME"\n', { mode: 0o755 });
  await writeFile(join(context, 'app', 'data.txt'), 'built by examples/build.ts\n');

  // 3. One image per platform: the base, the layer, the config changes. Nothing is written until write().
  const build = async (platform: (typeof PLATFORMS)[number], tag: string) =>
    (await builder.image(base, { platform: PLATFORMS[0], epoch }))
      .withPlatform(platform)
      .appendLayer({ dir: context }, { createdBy: 'COPY context/ /', comment: 'examples/build.ts' })
      .withConfig({ Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'APP_NAME=demo'], Cmd: ['/app/hello.sh'], Labels: { 'org.opencontainers.image.title': 'demo', 'org.example.built-by': 'stratum' } })
      .write(tag);
  const images = [];
  for (const platform of PLATFORMS) {
    const image = await build(platform, `example/build:${platform.architecture}`);
    images.push(image);
    console.log(`built ${platform.os}/${platform.architecture} ${image.manifest.digest} (layer ${image.layers.at(-1)!.digest})`);
  }

  // 4. Reproducible: the same build again, from scratch, gives the same digests.
  const again = await build(PLATFORMS[0], 'example/build:amd64-again');
  const reproducible = again.manifest.digest === images[0]!.manifest.digest;
  console.log(`rebuilt linux/amd64 ${again.manifest.digest}: ${reproducible ? 'reproducible' : 'NOT reproducible'}`);
  if (!reproducible) throw new Error('the same build gave another digest');

  // 5. An index of both platforms, tagged with the destination's name.
  const index = await builder.createIndex(destination, images.map((i) => i.name), { annotations: { 'org.opencontainers.image.title': 'demo' } });
  console.log(`index ${index.digest}`);

  // 6. Push: each platform's blobs and manifest, then the index.
  const pushed = await builder.push(destination);
  console.log(`pushed ${pushed.destination} ${pushed.digest}`);

  // 7. Sign the index's digest with a fresh key; the Sigstore bundle goes up as a referrer.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const signed = await builder.sign(destination, keySigner(privateKey.export({ type: 'pkcs8', format: 'pem' })), { push: true });
  console.log(`signed ${signed.subject.digest} with bundle ${signed.signature} (${signed.pushed?.via})`);

  // 8. Verify at the registry, as anyone with the public key would.
  const verified = await builder.verifyImage(destination, { key: publicPem, source: 'registry' });
  console.log(`verified ${verified.subject} (${verified.format}, ${verified.where})`);

  // 9. Another store pulls it back, the signature checked before any layer moves.
  const back = await puller.pull(destination, { platform: PLATFORMS[0], verifyKey: publicPem });
  console.log(`pulled back ${back.manifest.digest} with its signature checked`);

  // 10. The two root filesystems, mounted read-only, compared entry by entry.
  const trees = [];
  for (const [engine, name] of [[builder, images[0]!.name], [puller, destination]] as const) {
    const target = join(work, `rootfs-${trees.length}`);
    await engine.mount(name, target, { platform: PLATFORMS[0] });
    mounts.push([engine, target]);
    trees.push(await treeDigest(target));
  }
  const same = trees[0]!.digest === trees[1]!.digest;
  console.log(`rootfs ${trees[0]!.digest} (${trees[0]!.entries} entries) ${same ? '=' : '≠'} pulled ${trees[1]!.digest}`);
  if (!same) throw new Error('the pulled rootfs differs from the built one');

  console.log(
    `RESULT ${JSON.stringify({
      base: pulled.manifest.digest,
      images: Object.fromEntries(images.map((i, n) => [`${PLATFORMS[n]!.os}/${PLATFORMS[n]!.architecture}`, i.manifest.digest])),
      layer: images[0]!.layers.at(-1)!.digest,
      reproducible,
      index: index.digest,
      pushed: pushed.digest,
      signature: signed.signature,
      verified: verified.subject,
      pulled: back.manifest.digest,
      rootfs: trees[0],
      rootfsPulled: trees[1],
    })}`,
  );
} finally {
  for (const [engine, target] of mounts) await engine.unmount(target).catch(() => {});
  await builder.close();
  await puller.close();
  await rm(work, { recursive: true, force: true });
}
