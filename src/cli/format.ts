/** Output formatting shared by the commands, matching docker's CLI conventions. */

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSizeWithPrecision: decimal units, `%.<precision>g`. 131_000_000 → "131MB". */
export function humanSize(bytes: number, precision = 3): string {
  let size = bytes;
  let unit = 0;
  while (size >= 1000 && unit < DECIMAL_UNITS.length - 1) {
    size /= 1000;
    unit++;
  }
  return `${formatG(size, precision)}${DECIMAL_UNITS[unit]}`;
}

/** C's %.<p>g without exponent for the magnitudes humanSize produces (< 1000). */
function formatG(value: number, precision: number): string {
  if (value === 0) return '0';
  const digitsBeforePoint = Math.floor(Math.log10(Math.abs(value))) + 1;
  const decimals = Math.max(0, precision - digitsBeforePoint);
  return String(Number(value.toFixed(decimals)));
}

/** go-units HumanDuration, as `docker history` and `docker images` print ages. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

export function timeAgo(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (Number.isNaN(t) || t <= 0) return 'N/A';
  return `${humanDuration(Math.max(0, now - t))} ago`;
}

/** docker's Ellipsis: cut to `max` characters, the last one an ellipsis. */
export function ellipsis(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  return chars.slice(0, max - 1).join('') + '…';
}

/** Columns aligned like docker's tabwriter (minwidth 10, padding 3). */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(10, ...all.map((r) => [...(r[col] ?? '')].length + 3)));
  return all
    .map((r) => r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col]!))).join('').trimEnd())
    .join('\n');
}

export function percent(part: number, whole: number): string {
  return whole === 0 ? '0%' : `${Math.round((part / whole) * 100)}%`;
}

/** Go's time.Time String() as docker prints CreatedAt: `2015-04-21 22:16:04 +0000 UTC`. */
export function dockerTime(iso: string | undefined): string {
  const t = Date.parse(iso ?? '');
  if (!iso || Number.isNaN(t)) return 'N/A';
  return `${new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, '')} +0000 UTC`;
}
