import type { Descriptor, HistoryEntry } from '../oci/types.js';
import type { StoredImage } from './image.js';

export interface HistoryRow {
  /** The layer blob this step produced, or undefined for a step that made no layer (docker's `<missing>`). */
  layer?: Descriptor;
  created?: string;
  createdBy: string;
  /** Bytes of the layer blob; 0 for empty layers. */
  size: number;
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
    const layer = empty ? undefined : layers[layerIndex++];
    rows.push({
      layer,
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
    rows.push({ layer, createdBy: '', size: layer.size, comment: '', emptyLayer: false });
  }
  return rows.reverse();
}
