/** Small tars for the archive tests: read an archive's entries, write hand-made (also hostile) ones. */
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntryType } from '../../../src/tar/writer.js';
import { TarReader } from '../../../src/tar/reader.js';

export interface TarFile {
  name: string;
  type: TarEntryType;
  data?: Buffer;
  linkname?: string;
}

/** Every entry of a plain tar, in order, file bytes included. */
export function readTar(bytes: Buffer): TarFile[] {
  const reader = new TarReader();
  reader.push(bytes);
  const out: TarFile[] = [];
  let parts: Buffer[] = [];
  for (let e = reader.next(); e; e = reader.next()) {
    if (e.kind === 'entry') {
      out.push({ name: e.header.name, type: e.header.type, ...(e.header.type === 'symlink' || e.header.type === 'hardlink' ? { linkname: e.header.linkname } : {}) });
      parts = [];
    } else if (e.kind === 'data') parts.push(e.chunk);
    else if (e.kind === 'entryEnd') {
      const last = out.at(-1)!;
      if (last.type === 'file') last.data = Buffer.concat(parts);
    }
  }
  reader.finish();
  return out;
}

/** A tar of these entries (ustar/PAX, as stratum writes). */
export function writeTar(files: readonly TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const size = f.type === 'file' ? (f.data?.length ?? 0) : 0;
    parts.push(encodeHeader({ name: f.name, type: f.type, mode: f.type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size, mtimeSec: 0, ...(f.linkname !== undefined ? { linkname: f.linkname } : {}) }));
    if (f.type === 'file') parts.push(f.data ?? Buffer.alloc(0), padding(size));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}
