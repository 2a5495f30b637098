import { shortDigest } from '../../oci/digest.js';
import { repositoryAndTag } from '../../image/image.js';
import type { EngineUsage } from '../../engine/engine.js';
import { DF_FIELDS } from '../commands.js';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { listingFormat } from '../listing.js';
import { humanSize, percent, table, timeAgo } from '../format.js';

export async function run(inv: Invocation): Promise<number> {
  const verbose = inv.bool('verbose');
  const format = inv.string('format');
  const print = listingFormat(format, { fields: DF_FIELDS, headers: { TotalCount: 'TOTAL' }, columns: DF_FIELDS });
  const { usage, root } = await withEngine(inv.globals, async (engine) => ({ usage: await engine.usage(), root: engine.root }));
  for (const w of usage.warnings) inv.warn(`cannot read image ${w.name}: ${w.message}`);
  const reclaim = (bytes: number, of: number) => `${humanSize(bytes, 4)} (${percent(bytes, of)})`;
  const imageBytes = usage.blobBytes - usage.reclaimableBytes;
  const active = usage.snapshots.filter((s) => s.kind !== 'committed').length;
  const types = [
    ['Images', usage.images.length, new Set(usage.images.map((u) => u.image.name).filter((n) => usage.activeImages.includes(n))).size, humanSize(imageBytes, 4), '0B (0%)'],
    ['Snapshots', usage.snapshots.length, active, humanSize(usage.snapshotBytes, 4), reclaim(usage.reclaimableSnapshots.bytes, usage.snapshotBytes)],
    ['Unreferenced blobs', usage.reclaimableBlobs, 0, humanSize(usage.reclaimableBytes, 4), reclaim(usage.reclaimableBytes, usage.reclaimableBytes)],
    ['Partial downloads', usage.ingestCount, 0, humanSize(usage.ingestBytes, 4), reclaim(usage.reclaimableIngestBytes, usage.ingestBytes)],
  ].map(([Type, TotalCount, Active, Size, Reclaimable]) => ({ Type: String(Type), TotalCount: String(TotalCount), Active: String(Active), Size: String(Size), Reclaimable: String(Reclaimable) }));
  if (format === 'json' && verbose) {
    inv.stdout.line(JSON.stringify(verboseJson(usage)));
    return 0;
  }
  if (format !== undefined && format !== 'table') {
    print(inv.stdout, types);
    return 0;
  }
  const out: string[] = [];
  out.push(table(['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], types.map((t) => Object.values(t))));
  if (verbose) {
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
  inv.stdout.line(out.join('\n'));
  return 0;
}

/** `df -v --format json`: one object with every section, docker system df -v's shape (PascalCase, bytes as numbers). */
function verboseJson(usage: EngineUsage): Record<string, unknown> {
  return {
    Images: usage.images.map((u, i) => {
      const unpacked = usage.unpacked[i];
      return {
        Name: u.image.name,
        ...repositoryAndTagFields(u.image.name),
        ...(u.image.platform ? { Platform: u.image.platform } : {}),
        ID: u.image.configDescriptor.digest,
        BlobSize: u.size,
        BlobSharedSize: u.sharedSize,
        BlobUniqueSize: u.uniqueSize,
        Size: unpacked?.unpacked ? unpacked.size : null,
        SharedSize: unpacked?.unpacked ? unpacked.sharedSize : null,
        UniqueSize: unpacked?.unpacked ? unpacked.uniqueSize : null,
        Active: usage.activeImages.includes(u.image.name),
      };
    }),
    Layers: usage.layers.map((l) => ({ Digest: l.digest, Size: l.size, UsedBy: l.usedBy })),
    Snapshots: usage.snapshots.map((s) => ({ Key: s.name, Snapshotter: s.snapshotter, Kind: s.kind, Parent: s.parent ?? null, Size: s.size, Inodes: s.inodes, MountedAt: s.mountedAt })),
    Blobs: { Count: usage.blobCount, Size: usage.blobBytes },
    SnapshotSize: usage.snapshotBytes,
    Reclaimable: {
      Blobs: usage.reclaimableBlobs,
      BlobSize: usage.reclaimableBytes,
      PartialDownloadSize: usage.reclaimableIngestBytes,
      Snapshots: usage.reclaimableSnapshots.count,
      SnapshotSize: usage.reclaimableSnapshots.bytes,
    },
    PartialDownloads: { Count: usage.ingestCount, Size: usage.ingestBytes },
  };
}

function repositoryAndTagFields(name: string): { Repository: string; Tag: string } {
  const { repository, tag } = repositoryAndTag(name);
  return { Repository: repository, Tag: tag };
}
