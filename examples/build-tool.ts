/**
 * A build step in the style of buildah or kaniko, written against stratum's library alone:
 * pull a base image, mount a writable snapshot of it on the store's storage driver, change files,
 * commit the changes as a new image, and export its root filesystem as a tar.
 *
 *   node dist/examples/build-tool.js --store DIR [--mirror docker.io=URL] BASE NEW-NAME OUT.tar
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from 'stratum';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { store: { type: 'string' }, mirror: { type: 'string', multiple: true } },
});
const [base, name, output] = positionals;
if (!base || !name || !output) {
  console.error('usage: build-tool.js --store DIR [--mirror REGISTRY=URL] BASE NEW-NAME OUT.tar');
  process.exit(2);
}

const engine = await Engine.open({ ...(values.store ? { root: values.store } : {}), ...(values.mirror ? { mirrors: values.mirror } : {}) });
const work = await mkdtemp(join(tmpdir(), 'build-tool-'));
const rootfs = join(work, 'rootfs');
const key = `build-${process.pid}`;
try {
  const pulled = await engine.pull(base);
  const driver = await engine.driver();
  console.log(`pulled ${pulled.name} (${pulled.digest}), unpacked on ${driver.name}: ${driver.reason}`);

  // A writable snapshot on the image's top layer, mounted where the build can write.
  await engine.mount(base, rootfs, { rw: key });
  await writeFile(join(rootfs, 'built-by-stratum.txt'), `built from ${base}\n`);
  await rm(join(rootfs, 'etc', 'os-release'), { force: true });

  const image = await engine.commitImage(key, name, { message: 'build-tool example', createdBy: 'examples/build-tool.ts' });
  console.log(`committed ${image.name}: id ${image.config.digest}, layer ${image.layer.digest} (${image.entries} entries, ${image.whiteouts} whiteouts)`);
  await engine.unmount(rootfs);
  await engine.removeSnapshot(key);

  const { entries } = await engine.export(name, createWriteStream(output));
  console.log(`exported ${name} to ${output} (${entries} entries)`);
} finally {
  await engine.unmount(rootfs).catch(() => {});
  await engine.removeSnapshot(key).catch(() => {});
  await engine.close();
  await rm(work, { recursive: true, force: true });
}
