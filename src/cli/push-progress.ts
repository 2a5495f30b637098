import type { PushEvent } from '../image/push.js';
import { LayerLines, progressBar } from './progress.js';

/**
 * Renders push events the way `docker push` does: Preparing, Waiting, Pushing with a bar (on a
 * terminal), then Pushed / Mounted from … / Layer already exists. Layers only: the config goes
 * up silently, as with docker.
 */
export class PushProgress extends LayerLines {
  event(e: PushEvent): void {
    if (this.handled(e)) return;
    switch (e.type) {
      case 'blobs':
        for (const b of e.blobs) {
          if (b.kind !== 'layer') continue;
          this.layerIds.add(b.digest);
          this.set(b.digest, 'Preparing');
        }
        return;
      case 'waiting':
        return this.layer(e.digest, 'Waiting');
      case 'uploading':
        // Drawn from the first bytes sent, not from 'pushing': a blob the registry mounts goes
        // from Preparing straight to Mounted from, as with docker.
        return this.layer(e.digest, `Pushing ${progressBar(e.uploaded, e.size)}`, 'Pushing');
      case 'pushed':
        return this.layer(e.digest, 'Pushed');
      case 'mounted':
        return this.layer(e.digest, `Mounted from ${e.from}`);
      case 'exists':
        return this.layer(e.digest, 'Layer already exists');
      default:
        return;
    }
  }
}
