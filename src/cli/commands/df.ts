import { shortDigest } from '../../oci/digest.js';
import { repositoryAndTag } from '../../image/image.js';
import { parseCommand, withEngine, type GlobalFlags } from '../context.js';
import { humanSize, percent, table, timeAgo } from '../format.js';

export const usage = `Usage: stratum df [-v] [--format table|json] [--store DIR]

Show the store's disk usage: blobs, unpacked snapshots (every storage driver of the store),
partial downloads, and what gc would reclaim. -v adds each image's unpacked size (SIZE, SHARED
SIZE, UNIQUE SIZE as docker system df -v counts them), each layer blob, and each snapshot.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, { verbose: { type: 'boolean', short: 'v' }, format: { type: 'string', default: 'table' } });
  const { usage, root } = await withEngine(values as GlobalFlags, async (engine) => ({ usage: await engine.usage(), root: engine.root }));
  for (const w of usage.warnings) process.stderr.write(`stratum: warning: cannot read image ${w.name}: ${w.message}\n`);
  if (values.format === 'json') {
    const out = {
      images: usage.images.map((u, i) => {
        const unpacked = usage.unpacked[i];
        return {
          name: u.image.name,
          ...(u.image.platform ? { platform: u.image.platform } : {}),
          id: u.image.configDescriptor.digest,
          size: u.size,
          sharedSize: u.sharedSize,
          uniqueSize: u.uniqueSize,
          unpacked: unpacked?.unpacked ? { size: unpacked.size, sharedSize: unpacked.sharedSize, uniqueSize: unpacked.uniqueSize } : null,
        };
      }),
      layers: usage.layers,
      snapshots: usage.snapshots.map((s) => ({ key: s.name, snapshotter: s.snapshotter, kind: s.kind, parent: s.parent ?? null, size: s.size, inodes: s.inodes, mountedAt: s.mountedAt })),
      blobs: { count: usage.blobCount, bytes: usage.blobBytes },
      snapshotBytes: usage.snapshotBytes,
      reclaimable: {
        blobs: usage.reclaimableBlobs,
        bytes: usage.reclaimableBytes,
        partialDownloadBytes: usage.reclaimableIngestBytes,
        snapshots: usage.reclaimableSnapshots.count,
        snapshotBytes: usage.reclaimableSnapshots.bytes,
      },
      partialDownloads: { count: usage.ingestCount, bytes: usage.ingestBytes },
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [];
  const reclaim = (bytes: number, of: number) => `${humanSize(bytes, 4)} (${percent(bytes, of)})`;
  const imageBytes = usage.blobBytes - usage.reclaimableBytes;
  const active = usage.snapshots.filter((s) => s.kind !== 'committed').length;
  out.push(
    table(
      ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
      [
        ['Images', String(usage.images.length), String(new Set(usage.images.map((u) => u.image.name).filter((n) => usage.activeImages.includes(n))).size), humanSize(imageBytes, 4), '0B (0%)'],
        ['Snapshots', String(usage.snapshots.length), String(active), humanSize(usage.snapshotBytes, 4), reclaim(usage.reclaimableSnapshots.bytes, usage.snapshotBytes)],
        ['Unreferenced blobs', String(usage.reclaimableBlobs), '0', humanSize(usage.reclaimableBytes, 4), reclaim(usage.reclaimableBytes, usage.reclaimableBytes)],
        ['Partial downloads', String(usage.ingestCount), '0', humanSize(usage.ingestBytes, 4), reclaim(usage.reclaimableIngestBytes, usage.ingestBytes)],
      ],
    ),
  );
  if (values.verbose) {
    out.push('', 'Images space usage:', '');
    out.push(
      table(
        ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'BLOBS'],
        usage.images.map((u, i) => {
          const { repository, tag } = repositoryAndTag(u.image.name);
          const unpacked = usage.unpacked[i];
          const sizes = unpacked?.unpacked ? [humanSize(unpacked.size), humanSize(unpacked.sharedSize), humanSize(unpacked.uniqueSize)] : ['-', '-', '-'];
          return [repository, tag, shortDigest(u.image.configDescriptor.digest), timeAgo(u.image.config.created), ...sizes, humanSize(u.size)];
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
    out.push('', 'Snapshots space usage:', '');
    out.push(
      table(
        ['SNAPSHOT', 'DRIVER', 'KIND', 'SIZE', 'MOUNTED AT'],
        usage.snapshots.map((s) => [s.name.startsWith('sha256:') ? shortDigest(s.name as `sha256:${string}`) : s.name, s.snapshotter, s.kind, humanSize(s.size), s.mountedAt.join(', ')]),
      ),
    );
  }
  const total = usage.blobBytes + usage.ingestBytes + usage.snapshotBytes;
  const reclaimable = usage.reclaimableBytes + usage.reclaimableIngestBytes + usage.reclaimableSnapshots.bytes;
  out.push('', `Store ${root}: ${usage.blobCount} blobs, ${usage.snapshots.length} snapshots, ${humanSize(total, 4)} in all, ${humanSize(reclaimable, 4)} reclaimable (${percent(reclaimable, total)}) by \`stratum gc\``);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
