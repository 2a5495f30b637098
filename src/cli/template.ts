import { UsageError } from './args.js';

/**
 * The subset of Go's text/template that docker and podman users put in `--format`:
 * `{{.Field}}`, `{{.A.B}}`, `{{.}}`, `{{json .}}`, `{{json .Field}}`, the functions docker adds
 * (`upper`, `lower`, `title`, `truncate S N`, `join LIST SEP`, `split S SEP`, `pad S L R`,
 * `println`), `{{range .List}}…{{end}}`, `{{if .X}}…{{else}}…{{end}}`, and `\t` / `\n` escapes.
 * Anything else is refused when the template is compiled, before any output.
 */
export type Row = Record<string, unknown>;

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipeline: Term[] }
  | { kind: 'range'; over: Term[]; body: Node[] }
  | { kind: 'if'; test: Term[]; then: Node[]; else: Node[] };

type Term = { kind: 'field'; path: string[] } | { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'func'; name: string };

const FUNCS: Record<string, (...args: unknown[]) => unknown> = {
  json: (v) => JSON.stringify(v ?? null),
  upper: (v) => String(v ?? '').toUpperCase(),
  lower: (v) => String(v ?? '').toLowerCase(),
  title: (v) => String(v ?? '').replace(/\b\w/g, (c) => c.toUpperCase()),
  truncate: (v, n) => [...String(v ?? '')].slice(0, Number(n)).join(''),
  join: (list, sep) => (Array.isArray(list) ? list.map(String).join(String(sep ?? '')) : String(list ?? '')),
  split: (v, sep) => String(v ?? '').split(String(sep)),
  pad: (v, left, right) => `${' '.repeat(Number(left))}${String(v ?? '')}${' '.repeat(Number(right))}`,
  println: (...v) => `${v.map(display).join(' ')}\n`,
  len: (v) => (Array.isArray(v) ? v.length : typeof v === 'string' ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0),
};

export class Template {
  private constructor(
    private readonly nodes: Node[],
    /** Written with the `table` prefix: a header row and tab-aligned columns. */
    readonly table: boolean,
    readonly source: string,
  ) {}

  /** Compiles `format`; a field not in `fields` (for the top-level dot) is refused with the list. */
  static compile(format: string, fields: readonly string[]): Template {
    let source = format;
    let table = false;
    if (/^table(\s|$)/.test(source)) {
      table = true;
      source = source.slice(5).trimStart();
    }
    source = source.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
    const nodes = parse(tokenize(source), source);
    checkFields(nodes, fields, format);
    return new Template(nodes, table, source);
  }

  render(row: Row): string {
    return run(this.nodes, row, row);
  }

  /** For `table`: each field column's header, docker-style (`{{.CreatedSince}}` → the given name). */
  header(headers: Record<string, string>): string {
    return this.nodes
      .map((n) => {
        if (n.kind === 'text') return n.text;
        if (n.kind === 'action') {
          const field = n.pipeline.find((t) => t.kind === 'field') as { path: string[] } | undefined;
          const name = field?.path[0];
          return name ? (headers[name] ?? name.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()) : '';
        }
        return '';
      })
      .join('');
  }
}

function display(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (Array.isArray(v)) return `[${v.map(display).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.entries(v as object).map(([k, x]) => `${k}:${display(x)}`).join(' ')}]`;
  return String(v);
}

type Token = { kind: 'text'; text: string } | { kind: 'action'; body: string; at: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    if (open < 0) {
      tokens.push({ kind: 'text', text: source.slice(i) });
      break;
    }
    if (open > i) tokens.push({ kind: 'text', text: source.slice(i, open) });
    const close = source.indexOf('}}', open + 2);
    if (close < 0) throw new UsageError(`template ${JSON.stringify(source)}: unclosed action at offset ${open}`);
    let body = source.slice(open + 2, close);
    // {{- and -}} trim the neighbouring spaces, as Go's do.
    if (body.startsWith('-')) {
      body = body.slice(1);
      const last = tokens.at(-1);
      if (last?.kind === 'text') last.text = last.text.trimEnd();
    }
    let next = close + 2;
    if (body.endsWith('-')) {
      body = body.slice(0, -1);
      while (next < source.length && /\s/.test(source[next]!)) next++;
    }
    tokens.push({ kind: 'action', body: body.trim(), at: open });
    i = next;
  }
  return tokens;
}

function parse(tokens: Token[], source: string): Node[] {
  let pos = 0;
  const block = (inside: string | undefined): { nodes: Node[]; end: 'end' | 'else' | undefined } => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const t = tokens[pos++]!;
      if (t.kind === 'text') {
        nodes.push({ kind: 'text', text: t.text });
        continue;
      }
      const [word] = t.body.split(/\s+/, 1);
      if (word === 'end' || word === 'else') {
        if (!inside) throw new UsageError(`template ${JSON.stringify(source)}: {{${word}}} without {{range}} or {{if}}`);
        return { nodes, end: word };
      }
      if (word === 'range' || word === 'if') {
        const terms = terms_(t.body.slice(word.length), source);
        const first = block(word);
        if (!first.end) throw new UsageError(`template ${JSON.stringify(source)}: {{${word}}} without {{end}}`);
        let otherwise: Node[] = [];
        if (first.end === 'else') {
          const second = block(word);
          if (second.end !== 'end') throw new UsageError(`template ${JSON.stringify(source)}: {{${word}}} without {{end}}`);
          otherwise = second.nodes;
        }
        if (word === 'range') nodes.push({ kind: 'range', over: terms, body: first.nodes });
        else nodes.push({ kind: 'if', test: terms, then: first.nodes, else: otherwise });
        continue;
      }
      nodes.push({ kind: 'action', pipeline: terms_(t.body, source) });
    }
    if (inside) throw new UsageError(`template ${JSON.stringify(source)}: {{${inside}}} without {{end}}`);
    return { nodes, end: undefined };
  };
  return block(undefined).nodes;
}

function terms_(body: string, source: string): Term[] {
  const out: Term[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|-?\d+|\.[A-Za-z0-9_.]*|[A-Za-z_][A-Za-z0-9_]*)/y;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < body.length && (re.lastIndex = at, (m = re.exec(body)))) {
    const word = m[1]!;
    at = re.lastIndex;
    if (word.startsWith('"')) out.push({ kind: 'string', value: JSON.parse(word) as string });
    else if (word.startsWith('`')) out.push({ kind: 'string', value: word.slice(1, -1) });
    else if (/^-?\d+$/.test(word)) out.push({ kind: 'number', value: Number(word) });
    else if (word.startsWith('.')) out.push({ kind: 'field', path: word === '.' ? [] : word.slice(1).split('.') });
    else if (FUNCS[word]) out.push({ kind: 'func', name: word });
    else throw new UsageError(`template ${JSON.stringify(source)}: function ${JSON.stringify(word)} not defined (known: ${Object.keys(FUNCS).join(', ')})`);
  }
  if (body.slice(at).trim() !== '') throw new UsageError(`template ${JSON.stringify(source)}: cannot parse ${JSON.stringify(body.slice(at).trim())}`);
  if (out.length === 0) throw new UsageError(`template ${JSON.stringify(source)}: empty action {{}}`);
  return out;
}

function checkFields(nodes: Node[], fields: readonly string[], format: string): void {
  const check = (terms: Term[]) => {
    for (const t of terms) {
      if (t.kind === 'field' && t.path.length > 0 && !fields.includes(t.path[0]!)) {
        throw new UsageError(`template ${JSON.stringify(format)}: no field ${JSON.stringify(t.path[0])}; fields: ${fields.join(', ')}`);
      }
    }
  };
  for (const n of nodes) {
    if (n.kind === 'action') check(n.pipeline);
    // Inside range the dot is each element: its fields are not the row's, so not checked.
    else if (n.kind === 'range') check(n.over);
    else if (n.kind === 'if') {
      check(n.test);
      checkFields(n.then, fields, format);
      checkFields(n.else, fields, format);
    }
  }
}

function evaluate(terms: Term[], dot: unknown, root: Row): unknown {
  const value = (t: Term): unknown => {
    if (t.kind === 'string' || t.kind === 'number') return t.value;
    if (t.kind === 'field') return t.path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), dot);
    return undefined;
  };
  const head = terms[0]!;
  if (head.kind === 'func') return FUNCS[head.name]!(...terms.slice(1).map(value));
  if (terms.length > 1) throw new UsageError(`template: ${JSON.stringify(terms)} is not a function call`);
  void root;
  return value(head);
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

function run(nodes: Node[], dot: unknown, root: Row): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind === 'text') out += n.text;
    else if (n.kind === 'action') {
      const v = evaluate(n.pipeline, dot, root);
      out += typeof v === 'string' ? v : display(v);
    } else if (n.kind === 'range') {
      const list = evaluate(n.over, dot, root);
      const items = Array.isArray(list) ? list : list && typeof list === 'object' ? Object.values(list) : [];
      for (const item of items) out += run(n.body, item, root);
    } else out += run(truthy(evaluate(n.test, dot, root)) ? n.then : n.else, dot, root);
  }
  return out;
}
