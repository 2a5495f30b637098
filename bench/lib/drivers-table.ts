/**
 * The drivers benchmark's table (bench/drivers.ts): one row per measurement, one column per
 * storage driver (stratum's backends, then Docker's), each cell the median of the runs and, for a
 * stratum backend, its ratio to the Docker driver of the same family. Pure functions on plain
 * data, so the arithmetic and layout are tested on fixed inputs (test/bench/drivers-table.test.ts).
 */
import { summarize } from './stats.js';

export type MetricUnit = 'seconds' | 'bytes';

export interface Metric {
  id: string;
  /** The row's label in the table. */
  label: string;
  unit: MetricUnit;
}

export interface Column {
  /** Column heading: a stratum backend (`overlay`, `blockfile@btrfs`) or a Docker driver (`docker overlay2`). */
  name: string;
  /** The column whose medians this one's are divided by (a Docker driver of the same family). */
  anchor?: string;
  /** Shown in the "ratio to" row instead of the anchor's name: why there is no anchor, or which nearest one is used. */
  anchorNote?: string;
  /** Why this column could not run here at all; every cell then says so. */
  unavailable?: string;
}

/** Every sample of one run set: column → metric → values (seconds or bytes). */
export type Samples = Record<string, Record<string, number[]>>;
/** Why a cell has no value: column → metric → reason. */
export type Failures = Record<string, Record<string, string>>;

/** Median of a cell's samples, or undefined when there are none. */
export function cellMedian(samples: Samples, column: string, metric: string): number | undefined {
  const values = samples[column]?.[metric];
  return values && values.length > 0 ? summarize(values).median : undefined;
}

/** value / anchor, or undefined when either is missing or the anchor is not positive. */
export function ratio(value: number | undefined, anchor: number | undefined): number | undefined {
  if (value === undefined || anchor === undefined || !(anchor > 0)) return undefined;
  return value / anchor;
}

/** Seconds as `850 µs`, `12.3 ms`, `123 ms`, `1.23 s`, `12.3 s`; bytes as decimal MB (`0.42 MB`, `152 MB`). */
export function formatValue(unit: MetricUnit, v: number): string {
  if (unit === 'bytes') {
    const m = v / 1e6;
    return `${m >= 100 ? m.toFixed(0) : m >= 10 ? m.toFixed(1) : m.toFixed(2)} MB`;
  }
  if (v < 1e-3) return `${(v * 1e6).toFixed(0)} µs`;
  if (v < 0.1) return `${(v * 1e3).toFixed(1)} ms`;
  if (v < 1) return `${(v * 1e3).toFixed(0)} ms`;
  if (v < 10) return `${v.toFixed(2)} s`;
  return `${v.toFixed(1)} s`;
}

export function formatRatio(r: number): string {
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** Ratios of every stratum column to its anchor, per metric (only where both medians exist). */
export function ratios(columns: readonly Column[], metrics: readonly Metric[], samples: Samples): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const c of columns) {
    if (!c.anchor) continue;
    for (const m of metrics) {
      const r = ratio(cellMedian(samples, c.name, m.id), cellMedian(samples, c.anchor, m.id));
      if (r !== undefined) (out[c.name] ??= {})[m.id] = r;
    }
  }
  return out;
}

/**
 * The table as Markdown lines, then numbered notes: a cell without a value shows `n/a [k]` and
 * note k gives the reason; cells with the same reason share one note, which names their columns.
 * A column that cannot run here shows its reason on every cell.
 */
export function renderTable(columns: readonly Column[], metrics: readonly Metric[], samples: Samples, failures: Failures = {}): string[] {
  const notes: Array<{ reason: string; columns: string[] }> = [];
  const note = (column: string, reason: string): string => {
    let k = notes.findIndex((n) => n.reason === reason);
    if (k < 0) k = notes.push({ reason, columns: [] }) - 1;
    if (!notes[k]!.columns.includes(column)) notes[k]!.columns.push(column);
    return `[${k + 1}]`;
  };
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const lines = [line(['measurement', ...columns.map((c) => c.name)]), line(['---', ...columns.map(() => '---')])];
  lines.push(line(['ratio to', ...columns.map((c) => c.anchorNote ?? (c.anchor ? c.anchor : '(anchor)'))]));
  for (const m of metrics) {
    const cells = columns.map((c) => {
      if (c.unavailable) return `n/a ${note(c.name, c.unavailable)}`;
      const v = cellMedian(samples, c.name, m.id);
      if (v === undefined) return `n/a ${note(c.name, `${m.label}: ${failures[c.name]?.[m.id] ?? 'not measured'}`)}`;
      const r = c.anchor ? ratio(v, cellMedian(samples, c.anchor, m.id)) : undefined;
      return r === undefined ? formatValue(m.unit, v) : `${formatValue(m.unit, v)} (${formatRatio(r)})`;
    });
    lines.push(line([m.label, ...cells]));
  }
  if (notes.length > 0) {
    lines.push('');
    notes.forEach((n, i) => lines.push(`[${i + 1}] ${n.columns.join(', ')}: ${n.reason}`));
  }
  return lines;
}
