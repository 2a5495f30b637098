import type { Engine, InspectResult } from '../../engine/engine.js';
import { parsePlatform } from '../../oci/platform.js';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { objectFormat } from '../listing.js';

const REMOTE_PREFIX = 'docker://';

/**
 * docker image inspect's output (an array of one object with Id, RepoTags, RepoDigests, Config,
 * GraphDriver, RootFS…) plus stratum's Descriptor, Manifest and ChainIDs; `--raw` / `--config`
 * as skopeo inspect has them; `docker://REF` or --remote reads the registry without pulling.
 */
export async function run(inv: Invocation): Promise<number> {
  const input = inv.arg(0);
  const remote = inv.bool('remote') || input.startsWith(REMOTE_PREFIX);
  const platformFlag = inv.string('platform');
  const platform = platformFlag ? parsePlatform(platformFlag) : undefined;
  const format = inv.string('format');
  objectFormat(format, ['Id']);
  if (remote) {
    const name = input.startsWith(REMOTE_PREFIX) ? input.slice(REMOTE_PREFIX.length) : input;
    return withEngine(inv.globals, (engine) => inspectRemote(inv, engine, name, platform), { existing: false });
  }
  return withEngine(inv.globals, async (engine) => {
    const image = await engine.inspect(input, platform ? { platform } : {});
    if (inv.bool('raw') || inv.bool('config')) {
      const digest = inv.bool('config') ? image.configDescriptor.digest : image.descriptor.digest;
      const bytes = await engine.store.read(digest);
      inv.stdout.write(inv.bool('raw') ? bytes.toString('utf8') : `${JSON.stringify(JSON.parse(bytes.toString('utf8')), null, 4)}\n`);
      return 0;
    }
    const { images } = await engine.listImages();
    const repoTags = [...new Set(images.filter((i) => i.configDescriptor.digest === image.id).map((i) => i.name))];
    const object = dockerInspect(image, repoTags);
    const render = objectFormat(format, Object.keys(object));
    inv.stdout.line(render ? render(object) : JSON.stringify([object], null, 4));
    return 0;
  });
}

export function dockerInspect(image: InspectResult, repoTags: string[]): Record<string, unknown> {
  const c = image.config;
  return {
    Id: image.id,
    RepoTags: repoTags,
    RepoDigests: image.repoDigests,
    Parent: '',
    Comment: c.history?.at(-1)?.comment ?? '',
    Created: c.created ?? '',
    Author: c.author ?? '',
    Config: c.config ?? {},
    Architecture: c.architecture,
    ...(c.variant ? { Variant: c.variant } : {}),
    Os: c.os,
    Size: image.manifest.layers.reduce((sum, l) => sum + l.size, 0),
    GraphDriver: { Name: image.graphDriver.name, Data: image.graphDriver.unpacked ? image.graphDriver.data : null },
    RootFS: { Type: 'layers', Layers: c.rootfs.diff_ids },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
    Name: image.name,
    Descriptor: image.descriptor,
    Manifest: image.manifest,
    ChainIDs: image.chainIds,
    Unpacked: image.graphDriver.unpacked,
  };
}

async function inspectRemote(inv: Invocation, engine: Engine, name: string, platform: ReturnType<typeof parsePlatform> | undefined): Promise<number> {
  const result = await engine.inspectRemote(name, platform ? { platform } : {});
  if (inv.bool('config')) {
    if (!result.config) throw new (await import('../../errors.js')).NotFoundError(`${name} has no image config (it is an index: give --platform)`);
    inv.stdout.write(inv.bool('raw') ? result.config.raw.toString('utf8') : `${JSON.stringify(result.config.parsed, null, 4)}\n`);
    return 0;
  }
  if (inv.bool('raw')) {
    inv.stdout.write((result.index?.raw ?? result.raw).toString('utf8'));
    return 0;
  }
  const config = result.config?.parsed;
  const object: Record<string, unknown> = {
    Name: name,
    Digest: result.index?.digest ?? result.digest,
    ...(result.index ? { ManifestDigest: result.digest } : {}),
    MediaType: result.index?.mediaType ?? result.mediaType,
    Created: config?.created ?? '',
    Author: config?.author ?? '',
    Labels: (config?.config?.['Labels'] as Record<string, string> | undefined) ?? null,
    Architecture: config?.architecture ?? '',
    Os: config?.os ?? '',
    ...(config?.variant ? { Variant: config.variant } : {}),
    Layers: 'layers' in result.manifest ? result.manifest.layers.map((l) => l.digest) : [],
    LayersData: 'layers' in result.manifest ? result.manifest.layers.map((l) => ({ MIMEType: l.mediaType, Digest: l.digest, Size: l.size, Annotations: l.annotations ?? null })) : [],
    Env: (config?.config?.['Env'] as string[] | undefined) ?? [],
  };
  const render = objectFormat(inv.string('format'), Object.keys(object));
  inv.stdout.line(render ? render(object) : JSON.stringify(object, null, 4));
  return 0;
}
