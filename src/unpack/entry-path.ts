/**
 * Tar entry names → root-relative paths. The result never starts with `/`, never holds `.`/`..`
 * components, empty components or NUL: the addon resolves it inside the root, and this check
 * gives the error a name before any syscall is made.
 */

export type PathVerdict = { ok: true; path: string } | { ok: false; reason: string };

/** `./a//b/` → `a/b`; `.`/`./` → '' (the root itself); refuses `..`, absolute names, NUL, empty names. */
export function normaliseEntryPath(name: string): PathVerdict {
  if (name.length === 0) return { ok: false, reason: 'empty name' };
  if (name.includes('\0')) return { ok: false, reason: 'name contains a NUL byte' };
  if (name.startsWith('/')) return { ok: false, reason: 'absolute name' };
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { ok: false, reason: 'name contains a ".." component' };
    parts.push(part);
  }
  return { ok: true, path: parts.join('/') };
}

/** '' for a top-level path. */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** Proper ancestors of a path, outermost first: `a/b/c` → `a`, `a/b`. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  let i = path.indexOf('/');
  while (i >= 0) {
    out.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  return out;
}

export function isWithin(path: string, dir: string): boolean {
  return dir === '' || path === dir || path.startsWith(`${dir}/`);
}

export function depth(path: string): number {
  let n = path === '' ? 0 : 1;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return n;
}
