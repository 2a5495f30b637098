import { shortDigest, type Digest } from '../oci/digest.js';
import type { PullEvent } from '../image/pull.js';
import { humanSize } from './format.js';

export type ProgressMode = 'tty' | 'plain' | 'json' | 'quiet';

const BAR_WIDTH = 50;

/** docker's progress bar: `[=====>      ]  12.3MB/45.6MB`. */
export function progressBar(current: number, total: number | undefined): string {
  const sizes = total ? `${humanSize(current, 4)}/${humanSize(total, 4)}` : humanSize(current, 4);
  if (!total) return sizes;
  const filled = Math.min(BAR_WIDTH, Math.floor((current / total) * BAR_WIDTH));
  const bar = filled >= BAR_WIDTH ? '='.repeat(BAR_WIDTH) + '>' : '='.repeat(filled) + '>' + ' '.repeat(BAR_WIDTH - filled - 1);
  return `[${bar}]  ${sizes}`;
}

/**
 * Renders pull events the way `docker pull` does: one line per layer, redrawn in place on a
 * terminal, one line per state change (no bars) otherwise, or one JSON object per event with --json.
 */
export class PullProgress {
  private readonly lines: string[] = [];
  private readonly lineOf = new Map<string, number>();
  private readonly layerIds = new Set<Digest>();
  private readonly lastStatus = new Map<string, string>();

  /** With `unpack`, a layer is "Pull complete" once extracted, as docker shows it; else once downloaded. */
  constructor(
    private readonly out: { write(text: string): unknown },
    private readonly mode: ProgressMode,
    private readonly options: { unpack?: boolean } = {},
  ) {}

  header(text: string): void {
    if (this.mode === 'tty' || this.mode === 'plain') this.out.write(`${text}\n`);
  }

  event(e: PullEvent): void {
    if (this.mode === 'quiet') return;
    if (this.mode === 'json') {
      const id = 'digest' in e && typeof e.digest === 'string' ? shortDigest(e.digest) : undefined;
      this.out.write(JSON.stringify(id ? { ...e, id } : e) + '\n');
      return;
    }
    switch (e.type) {
      case 'layers':
        for (const l of e.layers) {
          this.layerIds.add(l.digest);
          this.set(l.digest, 'Pulling fs layer');
        }
        return;
      case 'waiting':
        return this.layer(e.digest, 'Waiting');
      case 'exists':
        return this.layer(e.digest, 'Already exists');
      case 'downloading':
        return this.layer(e.digest, `Downloading ${progressBar(e.current, e.total)}`, 'Downloading');
      case 'retrying':
        return this.layer(e.digest, `Retrying in ${Math.ceil(e.delayMs / 1000)}s (attempt ${e.attempt}): ${e.reason}`);
      case 'verifying':
        return this.layer(e.digest, 'Verifying Checksum');
      case 'complete':
        this.layer(e.digest, 'Download complete');
        return this.options.unpack ? undefined : this.layer(e.digest, 'Pull complete');
      case 'extracting':
        return this.layer(e.digest, `Extracting ${progressBar(e.current, e.total)}`, 'Extracting');
      case 'unpacked':
        return this.layer(e.digest, e.existed ? 'Already exists' : 'Pull complete');
      case 'tagged':
        // Blobs that are no layer of the stored image (schema1's empty throwaway blob) finish here.
        for (const digest of this.layerIds) {
          const status = this.lastStatus.get(shortDigest(digest));
          if (status === 'Download complete') this.set(digest, 'Pull complete');
        }
        return;
      default:
        return;
    }
  }

  /** Final lines, like docker's `Digest:` and `Status:`. */
  footer(lines: string[]): void {
    if (this.mode === 'tty' || this.mode === 'plain') for (const l of lines) this.out.write(`${l}\n`);
  }

  private layer(digest: Digest, text: string, statusKey = text): void {
    if (!this.layerIds.has(digest)) return;
    this.set(digest, text, statusKey);
  }

  private set(digest: Digest, text: string, statusKey = text): void {
    const id = shortDigest(digest);
    const line = `${id}: ${text}`;
    const changed = this.lastStatus.get(id) !== statusKey;
    this.lastStatus.set(id, statusKey);
    if (this.mode === 'plain') {
      // Off a terminal docker prints state changes only, never a progress bar.
      if (changed) this.out.write(`${id}: ${statusKey}\n`);
      return;
    }
    const index = this.lineOf.get(id);
    if (index === undefined) {
      this.lineOf.set(id, this.lines.length);
      this.lines.push(line);
      this.out.write(`${line}\n`);
      return;
    }
    this.lines[index] = line;
    const up = this.lines.length - index;
    // Cursor up to the layer's line, clear it, rewrite, and come back down (docker's jsonmessage).
    this.out.write(`\x1b[${up}A\r\x1b[2K${line}\r\x1b[${up}B`);
  }
}
