/**
 * An HTTP/1.1 chunked body decoder (RFC 9112 §7.1) for the small bodies JavaScript reads off a
 * native connection: errors and redirects, which servers often send chunked (Node's http does,
 * even to `Connection: close`). Chunk extensions are ignored; trailers are read and dropped.
 */
export class ChunkedDecoder {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current chunk's data still to come; -1 while a size line is awaited. */
  private left = -1;
  private inTrailers = false;
  /** The last chunk and the trailers have been read. */
  done = false;

  /** Decodes what arrived; returns the body bytes in it. Throws on a malformed framing. */
  push(bytes: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.pending = this.pending.length ? Buffer.concat([this.pending, bytes]) : bytes;
    while (!this.done) {
      if (this.left > 0) {
        if (this.pending.length === 0) break;
        const take = Math.min(this.left, this.pending.length);
        out.push(this.pending.subarray(0, take));
        this.pending = this.pending.subarray(take);
        this.left -= take;
        continue;
      }
      const eol = this.pending.indexOf('\r\n');
      if (eol < 0) {
        if (this.pending.length > 4096) throw new Error('chunked body: a size or trailer line over 4096 bytes');
        break;
      }
      const line = this.pending.subarray(0, eol).toString('latin1');
      this.pending = this.pending.subarray(eol + 2);
      if (this.left === 0) {
        // The CRLF after a chunk's data.
        if (line !== '') throw new Error('chunked body: no CRLF after a chunk');
        this.left = -1;
      } else if (this.inTrailers) {
        if (line === '') this.done = true;
      } else {
        const m = /^([0-9a-fA-F]{1,15})(?:[ \t]*;.*)?$/.exec(line);
        if (!m) throw new Error(`chunked body: bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        const size = parseInt(m[1]!, 16);
        if (size === 0) this.inTrailers = true;
        else this.left = size;
      }
    }
    return out;
  }
}
