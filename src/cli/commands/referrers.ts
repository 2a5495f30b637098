import { REFERRER_FIELDS } from '../commands.js';
import { withEngine } from '../context.js';
import { humanSize } from '../format.js';
import type { Invocation } from '../invocation.js';
import { listingFormat } from '../listing.js';

const HEADERS = { ArtifactType: 'ARTIFACT TYPE', CreatedAt: 'CREATED' };
const CREATED = 'org.opencontainers.image.created';

/** oras discover, as a table: one row per artifact that refers to the image. */
export async function run(inv: Invocation): Promise<number> {
  const format = inv.string('format');
  const print = listingFormat(format, { fields: REFERRER_FIELDS, headers: HEADERS, columns: ['Digest', 'ArtifactType', 'Size', 'CreatedAt', 'Source'] });
  const artifactType = inv.string('artifact-type');
  const source = inv.string('source') as 'auto' | 'store' | 'registry' | undefined;
  const referrers = await withEngine(inv.globals, (engine) => engine.referrers(inv.arg(0), { ...(artifactType ? { artifactType } : {}), ...(source ? { source } : {}), signal: inv.signal }));
  const json = format === 'json';
  print(
    inv.stdout,
    referrers.map((r) => ({
      Digest: r.digest,
      ArtifactType: r.artifactType ?? (json ? '' : '-'),
      Size: json ? r.size : humanSize(r.size),
      CreatedAt: r.annotations?.[CREATED] ?? (json ? '' : '-'),
      Source: r.source,
      Subject: r.subject,
      MediaType: r.mediaType,
      Annotations: json ? (r.annotations ?? {}) : Object.entries(r.annotations ?? {}).filter(([k]) => k !== CREATED).map(([k, v]) => `${k}=${v}`).join(','),
    })),
  );
  return 0;
}
