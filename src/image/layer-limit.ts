import { TooManyLayersError } from '../errors.js';
import { MAX_OVERLAY_LOWERS } from '../snapshotter/mount.js';

/**
 * How many layers an image may have. Docker and containerd refuse images deeper than 128 layers
 * on overlay ("max depth exceeded"), so no image meant to run anywhere is deeper; stratum refuses
 * them too, on every backend, before it downloads a single layer: a manifest of 10,000 tiny
 * layers would otherwise cost thousands of downloads and snapshots. `maxLayers` raises (or
 * lowers) it; on overlay it cannot go above the kernel's limit of lower layers in one mount
 * (500), since a deeper chain could never be mounted.
 */
export const DEFAULT_MAX_LAYERS = 128;

/** The limit for a pull or unpack: the configured one, capped by what the backend can mount. */
export function layerLimit(configured: number | undefined, snapshotter: string | undefined): { limit: number; why: string } {
  const wanted = configured ?? DEFAULT_MAX_LAYERS;
  if (snapshotter === 'overlay' && wanted > MAX_OVERLAY_LOWERS) {
    return { limit: MAX_OVERLAY_LOWERS, why: `the kernel mounts at most ${MAX_OVERLAY_LOWERS} overlay layers` };
  }
  return { limit: wanted, why: configured === undefined ? 'the default, like Docker and containerd on overlay; --max-layers N or the maxLayers option raises it' : 'maxLayers' };
}

/** Throws TooManyLayersError when `count` is over the limit. */
export function checkLayerCount(subject: string, count: number, configured: number | undefined, snapshotter: string | undefined): void {
  const { limit, why } = layerLimit(configured, snapshotter);
  if (count > limit) throw new TooManyLayersError(subject, count, limit, why);
}
