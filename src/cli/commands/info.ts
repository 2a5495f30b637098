import type { EngineInfo } from '../../engine/engine.js';
import { withEngine } from '../context.js';
import { humanSize } from '../format.js';
import type { Invocation } from '../invocation.js';
import { objectFormat } from '../listing.js';

/** docker info's field names where docker has them (Driver, DriverStatus), stratum's own beside. */
export function infoFields(info: EngineInfo): Record<string, unknown> {
  return {
    Driver: info.driver.name,
    DriverStatus: info.driverStatus,
    StorageOpts: info.storageOpts,
    DriverChosen: info.driver.reason,
    SnapshotRoot: info.driver.root,
    BackingFilesystem: info.backingFilesystem,
    SupportsDType: info.supportsDType,
    StoreRoot: info.storeRoot,
    Images: info.images,
    Blobs: info.blobs.count,
    BlobSize: info.blobs.bytes,
    Snapshots: info.snapshots.count,
    SnapshotSize: info.snapshots.bytes,
    SnapshotsByDriver: info.snapshots.bySnapshotter,
    Mounts: info.mounts,
    MaxOverlayLowers: info.kernel.maxOverlayLowers,
  };
}

export async function run(inv: Invocation): Promise<number> {
  const format = inv.string('format');
  objectFormat(format, ['Driver']); // a bad format fails before the store is opened
  const info = await withEngine(inv.globals, (engine) => engine.info());
  const fields = infoFields(info);
  const render = objectFormat(format, Object.keys(fields));
  if (render) {
    inv.stdout.line(render(fields));
    return 0;
  }
  const lines = [
    `Storage Driver: ${info.driver.name}`,
    ...info.driverStatus.map(([k, v]) => ` ${k}: ${v}`),
    ` Storage Options: ${info.storageOpts.length > 0 ? info.storageOpts.join(', ') : 'none'}`,
    ` Chosen: ${info.driver.reason}`,
    ` Snapshot Root: ${info.driver.root}`,
    `Store: ${info.storeRoot}`,
    ` Images: ${info.images}`,
    ` Blobs: ${info.blobs.count} (${humanSize(info.blobs.bytes, 4)})`,
    ` Snapshots: ${info.snapshots.count} (${humanSize(info.snapshots.bytes, 4)})${Object.keys(info.snapshots.bySnapshotter).length > 0 ? ` — ${Object.entries(info.snapshots.bySnapshotter).map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''}`,
    ` Mounts: ${info.mounts}`,
    `Kernel: ${info.kernel.maxOverlayLowers} overlay lower layers at most`,
  ];
  inv.stdout.line(lines.join('\n'));
  return 0;
}
