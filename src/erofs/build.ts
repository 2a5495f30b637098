import { closeSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { LayerCompression } from '../oci/mediatypes.js';
import { DEFAULT_LIMITS, readLayer } from '../unpack/apply.js';
import { LayerWriter } from '../unpack/layer-writer.js';
import type { ApplyOptions, OverlayFixups } from '../unpack/types.js';
import { DataArea } from './data-area.js';
import { applyErofsFixups } from './fixups.js';
import { writeImage, type ImageStats } from './image.js';
import { ErofsTree } from './tree.js';

export type LayerImageOptions = Omit<ApplyOptions, 'mode'> & { tailBudget?: number };

export interface LayerImageResult {
  diffId: Digest;
  size: number;
  entries: number;
  compression: LayerCompression;
  /** The image, its file data written; its metadata comes with finish(). */
  image: PendingImage;
}

/**
 * Writes a layer blob as an EROFS image at `imagePath`, straight from the tar stream: the entries
 * go through LayerWriter in overlay mode (whiteouts become char 0/0 devices, opaque markers
 * `trusted.overlay.opaque=y`, the same refusals as extraction) into an in-memory tree while file
 * data streams to the image's data area. The image is complete once `image.finish()` has run:
 * with the layers below mounted when `image.needsLower` (see applyErofsFixups).
 */
export async function writeLayerImage(compressed: Readable, imagePath: string, options: LayerImageOptions): Promise<LayerImageResult> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const image = PendingImage.create(imagePath, options.subject, options.tailBudget);
  try {
    const writer = new LayerWriter(image.tree, 0, imagePath, {
      mode: 'overlay',
      userxattr: options.userxattr,
      hasLowerLayers: options.hasLowerLayers,
      subject: options.subject,
      maxEntries: limits.maxEntries,
      maxPathLength: limits.maxPathLength,
    });
    const read = await readLayer(compressed, { handle: (ev) => writer.handle(ev), finish: () => writer.finish(), abort: () => writer.abort() }, imagePath, options);
    image.fixups = writer.overlayFixups();
    return { ...read, entries: writer.entries, image };
  } catch (err) {
    await image.abort();
    throw err;
  }
}

/** An image whose file data is on disk and whose tree is in memory, waiting for its metadata. */
export class PendingImage {
  fixups: OverlayFixups | undefined;
  private done = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly tree: ErofsTree,
    private readonly data: DataArea,
    private readonly subject: string,
  ) {}

  static create(path: string, subject: string, tailBudget?: number): PendingImage {
    const fd = openSync(path, 'w', 0o644);
    // Block 0 holds the superblock, written last; data starts at block 1.
    const data = new DataArea(fd, 1);
    return new PendingImage(path, fd, new ErofsTree(data, subject, tailBudget === undefined ? {} : { tailBudget }), data, subject);
  }

  /** Whether finish needs the merged view of the layers below (hardlinks into them, implied directories, whiteouts). */
  get needsLower(): boolean {
    return this.fixups !== undefined;
  }

  /** Applies the fixups against `lowerView` (undefined: nothing below), then writes metadata and superblock, and closes the file. */
  async finish(lowerView?: string): Promise<ImageStats> {
    try {
      if (this.fixups) await applyErofsFixups(this.tree, this.fixups, lowerView, this.subject);
      const stats = await writeImage(this.fd, this.tree.root, this.data, this.subject);
      this.close();
      return stats;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Closes and deletes the unfinished image. */
  async abort(): Promise<void> {
    await this.data.settle();
    this.close();
    await rm(this.path, { force: true });
  }

  private close(): void {
    if (this.done) return;
    this.done = true;
    closeSync(this.fd);
  }
}
