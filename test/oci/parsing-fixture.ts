import { execFile } from 'node:child_process';
import { hasTool } from '../helpers/tools.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A small real image built by umoci (two layers, one empty_layer history step from
 * `umoci config`), plus the manifests skopeo writes when it converts that image to
 * Docker schema2 and to signed schema1. The parsing tests read these real bytes.
 */
export interface RealImage {
  dir: string;
  /** The layout's index.json: an OCI index without a mediaType field. */
  ociIndex: Buffer;
  /** umoci's image manifest (also without a mediaType field). */
  ociManifest: Buffer;
  config: Buffer;
  /** skopeo copy --format v2s2 */
  dockerSchema2: Buffer;
  /** skopeo copy --format v2s1 (signed prettyjws) */
  dockerSchema1: Buffer;
  cleanup(): Promise<void>;
}


/** Returns the image, or a reason to skip when umoci or skopeo is missing. */
export async function buildRealImage(): Promise<RealImage | { skip: string }> {
  for (const tool of ['umoci', 'skopeo']) {
    if (!(await hasTool(tool))) return { skip: `${tool} is not installed (apt-get install ${tool})` };
  }
  const dir = await mkdtemp(join(tmpdir(), 'stratum-parse-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const layout = join(dir, 'layout');
    const image = `${layout}:t1`;
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', image]);
    await writeFile(join(dir, 'a.txt'), 'first layer\n');
    await run('umoci', ['insert', '--image', image, join(dir, 'a.txt'), '/a.txt']);
    await run('umoci', ['config', '--image', image, '--config.cmd', '/bin/true']);
    await writeFile(join(dir, 'b.txt'), 'second layer\n');
    await run('umoci', ['insert', '--image', image, join(dir, 'b.txt'), '/b.txt']);
    await run('skopeo', ['copy', '--quiet', `oci:${image}`, `dir:${join(dir, 's2')}`, '--format', 'v2s2']);
    await run('skopeo', ['copy', '--quiet', `oci:${image}`, `dir:${join(dir, 's1')}`, '--format', 'v2s1']);

    const blob = (digest: string) => readFile(join(layout, 'blobs', ...digest.split(':')));
    const ociIndex = await readFile(join(layout, 'index.json'));
    const ociManifest = await blob(JSON.parse(ociIndex.toString()).manifests[0].digest);
    const config = await blob(JSON.parse(ociManifest.toString()).config.digest);
    return {
      dir,
      ociIndex,
      ociManifest,
      config,
      dockerSchema2: await readFile(join(dir, 's2', 'manifest.json')),
      dockerSchema1: await readFile(join(dir, 's1', 'manifest.json')),
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
