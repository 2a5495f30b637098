// PLACEHOLDER until branch i9-driver lands (replaced by it at merge).
import { InvalidArgumentError } from '../errors.js';
import { defaultSnapshotter, SNAPSHOTTER_NAMES, type SnapshotterName } from './index.js';

export function normalizeDriverName(name: string): SnapshotterName {
  const n = name === 'overlay2' ? 'overlay' : name === 'vfs' ? 'native' : name;
  if (!(SNAPSHOTTER_NAMES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown storage driver ${JSON.stringify(name)}`);
  return n as SnapshotterName;
}

export async function chooseStorageDriver(options: { root: string; requested?: string; saved?: string }): Promise<{ name: SnapshotterName; reason: string }> {
  if (options.requested) return { name: normalizeDriverName(options.requested), reason: 'requested' };
  if (options.saved) return { name: normalizeDriverName(options.saved), reason: 'saved' };
  return { name: await defaultSnapshotter(options.root), reason: 'probed' };
}

export async function backingFilesystem(_dir: string): Promise<string> {
  return 'unknown';
}
export async function supportsDType(_dir: string): Promise<boolean> {
  return true;
}
export async function driverStatus(_name: string, _root: string): Promise<Array<[string, string]>> {
  return [];
}
export function kernelLimits(): { maxOverlayLowers: number } {
  return { maxOverlayLowers: 500 };
}
