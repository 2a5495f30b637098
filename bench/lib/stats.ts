/** Summary statistics of a list of samples. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

/** Median (mean of the two middle values for an even count), min and max. Throws on no samples. */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, samples: [...samples] };
}

/** Decimal megabytes (10^6 bytes), as the issues state their sizes. */
export function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

export function secs(s: number): string {
  return `${s.toFixed(2)} s`;
}

/** One row of a Markdown table. */
export function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}
