/**
 * Bundles the compiled CLI (dist/src/cli/main.js) into dist/src/bin/: one entry file, stratum.js,
 * and one chunk per group of lazily imported modules (a command's code, a backend, signing), so
 * a command loads a handful of files instead of ~120 modules, each with its own resolution,
 * package-scope lookup, read and link. Measured: ~25–30 ms of every command's start on Node 20
 * (bench/README.md, bench:pull). Packages in node_modules stay external (Node loads them as
 * installed); the output sits at the depth of dist/src/cli, so paths the code builds from
 * import.meta.url (the addon, package.json) resolve alike.
 */
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/src/bin`;
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { stratum: `${root}dist/src/cli/main.js` },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  outdir,
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
});
