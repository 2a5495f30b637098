import { parseArgs } from 'node:util';
import { shortDigest } from '../../oci/digest.js';
import { repositoryAndTag } from '../../image/image.js';
import { storeUsage } from '../../image/usage.js';
import { GLOBAL_OPTIONS, openStore, type GlobalFlags } from '../context.js';
import { humanSize, percent, table, timeAgo } from '../format.js';

export const usage = `Usage: stratum df [-v] [--format table|json] [--store DIR]

Show the store's disk usage: per image size, shared and unique bytes, and what gc would reclaim.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...GLOBAL_OPTIONS, verbose: { type: 'boolean', short: 'v' }, format: { type: 'string', default: 'table' } },
  });
  const store = await openStore(values as GlobalFlags);
  const usage = await storeUsage(store);
  if (values.format === 'json') {
    const out = {
      images: usage.images.map((u) => ({ name: u.image.name, size: u.size, sharedSize: u.sharedSize, uniqueSize: u.uniqueSize })),
      layers: usage.layers,
      blobs: { count: usage.blobCount, bytes: usage.blobBytes },
      reclaimable: { blobs: usage.reclaimableBlobs, bytes: usage.reclaimableBytes, partialDownloadBytes: usage.reclaimableIngestBytes },
      partialDownloads: { count: usage.ingestCount, bytes: usage.ingestBytes },
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [];
  const reclaim = (bytes: number, of: number) => `${humanSize(bytes, 4)} (${percent(bytes, of)})`;
  const imageBytes = usage.blobBytes - usage.reclaimableBytes;
  const total = usage.blobBytes + usage.ingestBytes;
  out.push(
    table(
      ['TYPE', 'TOTAL', 'SIZE', 'RECLAIMABLE'],
      [
        ['Images', String(usage.images.length), humanSize(imageBytes, 4), '0B (0%)'],
        ['Unreferenced blobs', String(usage.reclaimableBlobs), humanSize(usage.reclaimableBytes, 4), reclaim(usage.reclaimableBytes, usage.reclaimableBytes)],
        ['Partial downloads', String(usage.ingestCount), humanSize(usage.ingestBytes, 4), reclaim(usage.reclaimableIngestBytes, usage.ingestBytes)],
      ],
    ),
  );
  if (values.verbose) {
    out.push('', 'Images space usage:', '');
    out.push(
      table(
        ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE'],
        usage.images.map((u) => {
          const { repository, tag } = repositoryAndTag(u.image.name);
          return [repository, tag, shortDigest(u.image.configDescriptor.digest), timeAgo(u.image.config.created), humanSize(u.size), humanSize(u.sharedSize), humanSize(u.uniqueSize)];
        }),
      ),
    );
    out.push('', 'Layers space usage:', '');
    out.push(
      table(
        ['LAYER', 'SIZE', 'SHARED BY', 'IMAGES'],
        usage.layers.map((l) => [shortDigest(l.digest), humanSize(l.size), String(l.usedBy.length), l.usedBy.map((n) => repositoryAndTag(n)).map((r) => `${r.repository}:${r.tag}`).join(', ')]),
      ),
    );
  }
  const reclaimable = usage.reclaimableBytes + usage.reclaimableIngestBytes;
  out.push('', `Store ${store.root}: ${usage.blobCount} blobs, ${humanSize(total, 4)} in all, ${humanSize(reclaimable, 4)} reclaimable (${percent(reclaimable, total)}) by \`stratum gc\``);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
