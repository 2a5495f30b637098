import { InvalidArgumentError } from '../errors.js';
import type { Info } from './snapshotter.js';

/**
 * Walk filters in containerd's syntax, restricted to what snapshots need:
 *   name==x  parent==p  parent!=""  kind==active|view|committed  labels.k  labels.k==v  labels.k!=v  name~=regexp
 * A field alone tests presence (non-empty). Values may be "quoted" (JSON string escapes);
 * label keys with dots or operators may be quoted too: labels."a.b==c"==v. A comma is AND;
 * separate filter strings are OR.
 */

type Operator = '==' | '!=' | '~=' | 'present';

interface Selector {
  /** ['name'] | ['parent'] | ['kind'] | ['labels', key] */
  field: string[];
  op: Operator;
  value: string;
  regexp?: RegExp;
}

/** All selectors of one filter string must match. */
export type Filter = Selector[];

export function parseFilters(filters: string[]): Filter[] {
  return filters.filter((f) => f.trim() !== '').map(parseFilter);
}

/** True when `info` matches any of the filters (or there are none). */
export function matchesAny(filters: Filter[], info: Info): boolean {
  return filters.length === 0 || filters.some((f) => f.every((s) => matchSelector(s, info)));
}

function parseFilter(text: string): Filter {
  const p = new Parser(text);
  const selectors: Selector[] = [];
  for (;;) {
    selectors.push(p.selector());
    p.skipSpace();
    if (p.done()) return selectors;
    p.expect(',');
  }
}

class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  done(): boolean {
    return this.pos >= this.text.length;
  }

  skipSpace(): void {
    while (!this.done() && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  expect(s: string): void {
    if (!this.text.startsWith(s, this.pos)) this.fail(`expected ${JSON.stringify(s)}`);
    this.pos += s.length;
  }

  fail(reason: string): never {
    throw new InvalidArgumentError(`invalid walk filter ${JSON.stringify(this.text)} at offset ${this.pos}: ${reason}`);
  }

  selector(): Selector {
    this.skipSpace();
    const field = this.fieldPath();
    this.skipSpace();
    const op = this.operator();
    if (op === 'present') return { field, op, value: '' };
    this.skipSpace();
    const value = this.value();
    const selector: Selector = { field, op, value };
    if (op === '~=') {
      try {
        selector.regexp = new RegExp(value);
      } catch (err) {
        this.fail(`bad regular expression: ${(err as Error).message}`);
      }
    }
    return selector;
  }

  private fieldPath(): string[] {
    const name = this.identifier();
    if (name === 'name' || name === 'parent' || name === 'kind') return [name];
    if (name !== 'labels') this.fail(`unknown field ${JSON.stringify(name)} (name, parent, kind, labels.<key>)`);
    this.expect('.');
    const key = this.text[this.pos] === '"' ? this.quoted() : this.labelKey();
    if (key === '') this.fail('empty label key');
    return ['labels', key];
  }

  private identifier(): string {
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos));
    if (!m) this.fail('expected a field name');
    this.pos += m[0].length;
    return m[0];
  }

  /** An unquoted label key runs up to an operator, a comma or the end. */
  private labelKey(): string {
    const start = this.pos;
    while (!this.done() && !/^(==|!=|~=|,)/.test(this.text.slice(this.pos))) this.pos++;
    return this.text.slice(start, this.pos).trim();
  }

  private operator(): Operator {
    for (const op of ['==', '!=', '~='] as const) {
      if (this.text.startsWith(op, this.pos)) {
        this.pos += 2;
        return op;
      }
    }
    if (this.done() || this.text[this.pos] === ',') return 'present';
    return this.fail('expected ==, != or ~=');
  }

  private value(): string {
    if (this.text[this.pos] === '"') return this.quoted();
    const start = this.pos;
    while (!this.done() && this.text[this.pos] !== ',') this.pos++;
    return this.text.slice(start, this.pos).trim();
  }

  private quoted(): string {
    const start = this.pos;
    this.pos++;
    while (!this.done() && this.text[this.pos] !== '"') this.pos += this.text[this.pos] === '\\' ? 2 : 1;
    if (this.done()) this.fail('unterminated quoted string');
    this.pos++;
    try {
      return JSON.parse(this.text.slice(start, this.pos)) as string;
    } catch {
      return this.fail('bad escape in quoted string');
    }
  }
}

function fieldValue(field: string[], info: Info): string | undefined {
  switch (field[0]) {
    case 'name':
      return info.name;
    case 'parent':
      return info.parent ?? '';
    case 'kind':
      return info.kind;
    default:
      return Object.hasOwn(info.labels, field[1]!) ? info.labels[field[1]!] : undefined;
  }
}

function matchSelector(s: Selector, info: Info): boolean {
  const v = fieldValue(s.field, info);
  switch (s.op) {
    case 'present':
      return s.field[0] === 'labels' ? v !== undefined : v !== undefined && v !== '';
    case '==':
      return v === s.value;
    case '!=':
      return v !== s.value;
    case '~=':
      return v !== undefined && s.regexp!.test(v);
  }
}
