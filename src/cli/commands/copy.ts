import type { CopyEvent } from '../../image/copy.js';
import { parsePlatform } from '../../oci/platform.js';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

/** skopeo copy's report: a line per blob as it settles, the manifest, then the digest. */
export async function run(inv: Invocation): Promise<number> {
  const platformFlag = inv.string('platform');
  const json = inv.bool('json');
  const quiet = inv.bool('quiet');
  const out = inv.stdout;
  const onEvent = (e: CopyEvent): void => {
    if (json) return out.line(JSON.stringify(e));
    if (quiet) return;
    switch (e.type) {
      case 'resolved':
        return out.line(`Getting image source signatures\nCopying from ${e.source} (${e.digest})`);
      case 'exists':
        return out.line(`Copying blob ${e.digest} skipped: already exists`);
      case 'mounted':
        return out.line(`Copying blob ${e.digest} mounted from ${e.from}`);
      case 'done':
        return out.line(`Copying blob ${e.digest} done`);
      case 'manifest':
        return out.line(`Writing manifest ${e.digest}${e.reference ? ` as ${e.reference}` : ''}`);
      default:
        return;
    }
  };
  const result = await withEngine(
    inv.globals,
    (engine) => engine.copy(inv.arg(0), inv.arg(1), { all: inv.bool('all'), ...(platformFlag ? { platform: parsePlatform(platformFlag) } : {}), onEvent, signal: inv.signal }),
    { existing: false },
  );
  if (json) out.line(JSON.stringify({ type: 'result', ...result }));
  else if (quiet) out.line(result.digest);
  else out.line(`${result.destination}: digest: ${result.digest} (${result.manifests} manifest${result.manifests === 1 ? '' : 's'}, ${result.copied} blobs copied, ${result.mounted} mounted, ${result.existed} already there)`);
  return 0;
}
