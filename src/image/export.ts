import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import tar from 'tar-stream';
import { lgetxattrs } from '../sys/native.js';

/**
 * Writes the tree under `dir` as a tar stream: every entry with its mode, owner, times, PAX
 * xattrs, hardlinks as links to the first path seen, devices and fifos; entries sorted by name
 * so the same tree always gives the same tar. Files are streamed, never read whole.
 */
export async function writeTreeAsTar(dir: string, out: Writable): Promise<{ entries: number }> {
  const pack = tar.pack();
  const piping = pipeline(pack, out);
  const firstPathOfInode = new Map<string, string>();
  let entries = 0;

  const write = (header: TarHeader, body?: string | Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      const h = header as tar.Header;
      if (body instanceof Buffer) return void pack.entry(h, body, done);
      const entry = pack.entry(h, done);
      if (body !== undefined) pipeline(createReadStream(body), entry).catch(reject);
    });
  /** An entry, preceded by our own PAX header when it needs one (long names, xattrs). */
  const add = async (entry: Entry, contentPath?: string): Promise<void> => {
    const pax = paxHeader(entry);
    if (pax) await write({ name: 'PaxHeader', type: 'pax-header', size: pax.length, mode: 0o644, mtime: entry.header.mtime }, pax);
    await write(pax ? { ...entry.header, name: shortName(entry.header.name), ...(entry.header.linkname ? { linkname: shortName(entry.header.linkname) } : {}) } : entry.header, contentPath);
  };

  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const abs = join(dir, relPath);
      const st = await lstat(abs);
      const header = baseHeader(relPath, st);
      const xattrs = lgetxattrs(abs);
      const inodeKey = `${st.dev}:${st.ino}`;
      if (!st.isDirectory() && st.nlink > 1 && firstPathOfInode.has(inodeKey)) {
        await add({ header: { ...header, type: 'link', linkname: firstPathOfInode.get(inodeKey)!, size: 0 }, xattrs: {} });
      } else if (st.isFile()) {
        if (st.nlink > 1) firstPathOfInode.set(inodeKey, relPath);
        await add({ header: { ...header, type: 'file', size: st.size }, xattrs }, abs);
      } else if (st.isDirectory()) {
        await add({ header: { ...header, name: `${relPath}/`, type: 'directory' }, xattrs });
        entries++;
        await walk(relPath);
        continue;
      } else if (st.isSymbolicLink()) {
        await add({ header: { ...header, type: 'symlink', linkname: await readlink(abs) }, xattrs });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = BigInt(st.rdev);
        const devmajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
        const devminor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
        await add({ header: { ...header, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor, devminor }, xattrs });
      } else if (st.isFIFO()) {
        await add({ header: { ...header, type: 'fifo' }, xattrs });
      } else {
        continue; // sockets are not archived (GNU tar skips them too)
      }
      entries++;
    }
  }

  try {
    await walk('');
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    throw err;
  }
  await piping;
  return { entries };
}

/** tar-stream's Header with only what we set; pack fills in the rest. 'pax-header' is a type its encoder knows. */
type TarHeader = Omit<Partial<tar.Header>, 'type'> & { name: string; type?: tar.Header['type'] | 'pax-header' };

interface Entry {
  header: TarHeader;
  xattrs: Record<string, Buffer>;
}

function baseHeader(name: string, st: Stats): TarHeader {
  return { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
}

const USTAR_NAME_BYTES = 100;

/**
 * PAX records written byte for byte: tar-stream's own PAX encoding goes through UTF-8 strings,
 * which would corrupt binary xattr values such as security.capability.
 */
function paxHeader(entry: Entry): Buffer | undefined {
  const records: [string, Buffer][] = [];
  const { name, linkname } = entry.header;
  if (Buffer.byteLength(name) > USTAR_NAME_BYTES || /[^\x20-\x7e]/.test(name)) records.push(['path', Buffer.from(name)]);
  if (linkname && (Buffer.byteLength(linkname) > USTAR_NAME_BYTES || /[^\x20-\x7e]/.test(linkname))) records.push(['linkpath', Buffer.from(linkname)]);
  for (const [key, value] of Object.entries(entry.xattrs)) records.push([`SCHILY.xattr.${key}`, value]);
  if (records.length === 0) return undefined;
  return Buffer.concat(records.map(([key, value]) => paxRecord(key, value)));
}

/** `<length> <key>=<value>\n`, where length counts the whole record including its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + String(body.length).length;
  if (String(length).length !== String(body.length).length) length = body.length + String(length).length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

/** A ustar-sized stand-in for a name carried in full by the PAX header before it. */
function shortName(name: string): string {
  let out = name;
  while (Buffer.byteLength(out) > USTAR_NAME_BYTES - 1) out = out.slice(0, -1);
  return out.replace(/[^\x20-\x7e]/g, '_');
}
