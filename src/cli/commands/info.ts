import { parseCommand, withEngine, type GlobalFlags } from '../context.js';
import { humanSize } from '../format.js';

export const usage = `Usage: stratum info [--format table|json] [--store DIR]

Show the store's storage driver as \`docker info\` does (Storage Driver, Backing Filesystem,
Supports d_type, and the driver's own lines: overlay's Native Overlay Diff and userxattr,
btrfs's usage, zfs's pool and dataset), why that driver, and the store's images, blobs,
snapshots and mounts.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, { format: { type: 'string', default: 'table' } });
  const info = await withEngine(values as GlobalFlags, (engine) => engine.info());
  if (values.format === 'json') {
    process.stdout.write(JSON.stringify({ ...info, driverStatus: Object.fromEntries(info.driverStatus) }, null, 2) + '\n');
    return 0;
  }
  const lines = [
    `Storage Driver: ${info.driver.name}`,
    ...info.driverStatus.map(([k, v]) => ` ${k}: ${v}`),
    ` Chosen: ${info.driver.reason}`,
    ` Snapshot Root: ${info.driver.root}`,
    `Store: ${info.storeRoot}`,
    ` Images: ${info.images}`,
    ` Blobs: ${info.blobs.count} (${humanSize(info.blobs.bytes, 4)})`,
    ` Snapshots: ${info.snapshots.count} (${humanSize(info.snapshots.bytes, 4)})${Object.keys(info.snapshots.bySnapshotter).length > 0 ? ` — ${Object.entries(info.snapshots.bySnapshotter).map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''}`,
    ` Mounts: ${info.mounts}`,
    `Kernel: ${info.kernel.maxOverlayLowers} overlay lower layers at most`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
