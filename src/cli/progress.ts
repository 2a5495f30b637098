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
 * Per-layer status lines as docker draws them: one line per layer, redrawn in place on a
 * terminal; off a terminal one line per state change (never a bar). Pull and push display
 * their events through it.
 */
export class LayerLines {
  private readonly lines: string[] = [];
  private readonly lineOf = new Map<string, number>();
  protected readonly layerIds = new Set<Digest>();
  protected readonly lastStatus = new Map<string, string>();

  constructor(
    protected readonly out: { write(text: string): unknown },
    protected readonly mode: ProgressMode,
  ) {}

  header(text: string): void {
    if (this.mode === 'tty' || this.mode === 'plain') this.out.write(`${text}\n`);
  }

  /** Final lines, like docker's `Digest:` and `Status:`. */
  footer(lines: string[]): void {
    if (this.mode === 'tty' || this.mode === 'plain') for (const l of lines) this.out.write(`${l}\n`);
  }

  /** One event as a JSON line (--json); true when the mode is json or quiet (nothing more to draw). */
  protected handled(e: object): boolean {
    if (this.mode === 'quiet') return true;
    if (this.mode !== 'json') return false;
    const digest = (e as { digest?: unknown }).digest;
    this.out.write(JSON.stringify(typeof digest === 'string' ? { ...e, id: shortDigest(digest as Digest) } : e) + '\n');
    return true;
  }

  /** `text` for a known layer; `statusKey` (default `text`) is the state a plain display prints once. */
  protected layer(digest: Digest, text: string, statusKey = text): void {
    if (!this.layerIds.has(digest)) return;
    this.set(digest, text, statusKey);
  }

  protected set(digest: Digest, text: string, statusKey = text): void {
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

/** Renders pull events the way `docker pull` does (or one JSON object per event with --json). */
export class PullProgress extends LayerLines {
  /** With `unpack`, a layer is "Pull complete" once extracted, as docker shows it; else once downloaded. */
  constructor(
    out: { write(text: string): unknown },
    mode: ProgressMode,
    private readonly options: { unpack?: boolean } = {},
  ) {
    super(out, mode);
  }

  event(e: PullEvent): void {
    if (this.handled(e)) return;
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
}
