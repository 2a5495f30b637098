/** OCI image-spec whiteouts (layer changesets): `.wh.<name>` and the opaque marker `.wh..wh..opq`. */
import { baseName, joinPath, parentOf } from './entry-path.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): skipped, as docker does. */
const WHITEOUT_META_PREFIX = '.wh..wh.';

export type WhiteoutKind =
  | { kind: 'none' }
  | { kind: 'whiteout'; target: string }
  | { kind: 'opaque'; dir: string }
  | { kind: 'meta' }
  | { kind: 'invalid'; reason: string };

/** Classifies a normalised root-relative path. */
export function classifyWhiteout(path: string): WhiteoutKind {
  const base = baseName(path);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  const dir = parentOf(path);
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir };
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '') return { kind: 'invalid', reason: 'whiteout with an empty name' };
  if (name === '.' || name === '..') return { kind: 'invalid', reason: `whiteout of ${JSON.stringify(name)}` };
  return { kind: 'whiteout', target: joinPath(dir, name) };
}

export function opaqueXattrName(userxattr: boolean | undefined): string {
  return userxattr ? 'user.overlay.opaque' : 'trusted.overlay.opaque';
}

/** xattrs a layer must not carry: they would steer overlayfs (redirects, metacopy, opaque, whiteouts). */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}
