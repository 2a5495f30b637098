import type { Descriptor, HistoryEntry } from '../oci/types.js';
import type { StoredImage } from './image.js';

export interface HistoryRow {
  /** The layer blob this step produced, or undefined for a step that made no layer (docker's `<missing>`). */
  layer?: Descriptor;
  created?: string;
  createdBy: string;
  /** Bytes of the layer blob; 0 for empty layers. */
  size: number;
  /** The layer's position in the manifest (0 = base), for a step that made one. */
  layerIndex?: number;
  /**
   * Bytes the layer takes unpacked (its snapshot's own data, as docker's SIZE counts it); 0 for
   * empty layers, undefined while the layer is not unpacked. Filled by Engine.history.
   */
  unpackedSize?: number;
  comment: string;
  emptyLayer: boolean;
}

/**
 * The image's build steps newest first, each paired with the layer it produced, as
 * `docker history` lists them. Without history in the config, one row per layer.
 */
export function imageHistory(image: StoredImage): HistoryRow[] {
  const layers = image.manifest.layers;
  const history: HistoryEntry[] = image.config.history ?? layers.map(() => ({}));
  const rows: HistoryRow[] = [];
  let layerIndex = 0;
  for (const entry of history) {
    const empty = entry.empty_layer === true;
    const index = empty ? undefined : layerIndex++;
    const layer = index === undefined ? undefined : layers[index];
    rows.push({
      layer,
      ...(layer ? { layerIndex: index } : { unpackedSize: 0 }),
      created: entry.created,
      createdBy: entry.created_by ?? '',
      size: layer?.size ?? 0,
      comment: entry.comment ?? '',
      emptyLayer: empty,
    });
  }
  // Layers the history does not account for (malformed or partial history) still show.
  for (; layerIndex < layers.length; layerIndex++) {
    const layer = layers[layerIndex]!;
    rows.push({ layer, layerIndex, createdBy: '', size: layer.size, comment: '', emptyLayer: false });
  }
  return rows.reverse();
}
