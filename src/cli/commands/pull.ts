import { parseReference, type Reference } from '../../oci/reference.js';
import { parsePlatform } from '../../oci/platform.js';
import type { Engine } from '../../engine/engine.js';
import { openEngine, parsePositiveInt, UsageError } from '../context.js';
import type { Invocation } from '../invocation.js';
import { PullProgress, type ProgressMode } from '../progress.js';

export async function run(inv: Invocation): Promise<number> {
  const reference = parseReference(inv.arg(0));
  const platformFlag = inv.string('platform');
  const platform = platformFlag ? parsePlatform(platformFlag) : undefined;
  const maxLayers = inv.string('max-layers');
  const unpack = !inv.bool('no-unpack');
  const verifyKeyPath = inv.string('verify-key');
  if (verifyKeyPath !== undefined && inv.bool('all-platforms')) throw new UsageError('--verify-key cannot be used with --all-platforms yet (it checks the one image a pull resolves)');
  const verifyKey = verifyKeyPath !== undefined ? await (await import('./sign.js')).readKeyFile(verifyKeyPath, '--verify-key') : undefined;
  const mode: ProgressMode = inv.bool('json') ? 'json' : inv.bool('quiet') ? 'quiet' : inv.stdout.isTTY ? 'tty' : 'plain';
  const engine = await openEngine(inv.globals);
  try {
    let references: Reference[] = [reference];
    if (inv.bool('all-tags')) {
      if (/@|:[^/]*$/.test(inv.arg(0))) throw new UsageError('tag can not be used with --all-tags/-a');
      // Signatures and referrer indexes live under digest-named tags (sha256-<hex>[.sig]): not images to pull.
      const tags = (await engine.listTags(reference.name)).filter((t) => !/^sha256-[0-9a-f]{64}(\.[a-z]+)?$/.test(t));
      references = tags.map((tag) => parseReference(`${reference.name}:${tag}`));
    }
    for (const ref of references) {
      inv.checkInterrupted();
      await pullOne(engine, inv, ref, mode, { unpack, ...(verifyKey ? { verifyKey } : {}), ...(platform ? { platform } : {}), ...(maxLayers !== undefined ? { maxLayers: parsePositiveInt(maxLayers, '--max-layers') } : {}) });
    }
  } finally {
    await engine.close();
  }
  return 0;
}

async function pullOne(engine: Engine, inv: Invocation, reference: Reference, mode: ProgressMode, options: { unpack: boolean; verifyKey?: Buffer; platform?: ReturnType<typeof parsePlatform>; maxLayers?: number }): Promise<void> {
  const out = inv.stdout;
  if (inv.bool('all-platforms')) return pullAllPlatforms(engine, inv, reference, mode, options);
  const progress = new PullProgress(out, mode, { unpack: options.unpack });
  const before = await engine.store.getTag(reference.toString());
  progress.header(`${reference.tag ?? reference.digest!}: Pulling from ${reference.repository}`);
  const result = await engine.pull(reference, { ...options, onEvent: (e) => progress.event(e), signal: inv.signal });
  const unchanged = result.upToDate && before?.descriptor.digest === result.manifest.digest;
  const status = unchanged ? `Image is up to date for ${reference.familiar}` : `Downloaded newer image for ${reference.familiar}`;
  progress.footer([`Digest: ${result.digest}`, `Status: ${status}`]);
  if (mode === 'json') {
    out.line(
      JSON.stringify({ type: 'done', name: result.name, digest: result.digest, manifest: result.manifest.digest, status: unchanged ? 'up-to-date' : 'downloaded', bytesDownloaded: result.bytesDownloaded, ...(result.unpacked ? { chainId: result.unpacked.chainId ?? null, layersExtracted: result.unpacked.extracted, snapshotter: result.snapshotter ?? null } : {}) }),
    );
  } else out.line(result.name);
}

/**
 * --all-platforms: the index and every image it lists, stored as they are (a copy into the store,
 * verified blob by blob), then one platform unpacked: --platform's, else the host's.
 */
async function pullAllPlatforms(engine: Engine, inv: Invocation, reference: Reference, mode: ProgressMode, options: { unpack: boolean; platform?: ReturnType<typeof parsePlatform> }): Promise<void> {
  const out = inv.stdout;
  if (mode === 'tty' || mode === 'plain') out.line(`${reference.tag ?? reference.digest!}: Pulling from ${reference.repository} (all platforms)`);
  const result = await engine.copy(reference.toString(), `store:${reference.toString()}`, {
    all: true,
    signal: inv.signal,
    onEvent: (e) => {
      if (mode === 'json') out.line(JSON.stringify(e));
      else if (mode !== 'quiet' && (e.type === 'done' || e.type === 'exists')) out.line(`${e.digest.slice(7, 19)}: ${e.type === 'done' ? 'Download complete' : 'Already exists'}`);
    },
  });
  let chainId: string | undefined;
  if (options.unpack) {
    const name = reference.toString();
    const image = await engine.resolveImage(name, options.platform ? { platform: options.platform } : {});
    chainId = await engine.unpack(image.configDescriptor.digest, { onEvent: () => {} });
  }
  if (mode === 'json') out.line(JSON.stringify({ type: 'done', name: reference.toString(), digest: result.digest, manifests: result.manifests, ...(chainId ? { chainId } : {}) }));
  else if (mode === 'quiet') out.line(reference.toString());
  else out.line([`Digest: ${result.digest}`, `Status: Downloaded ${result.manifests} manifests for ${reference.familiar}`, reference.toString()].join('\n'));
}
