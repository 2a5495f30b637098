/** Numeric fields of tar headers (octal, GNU base-256) and the error for a malformed archive. */

export class TarFormatError extends Error {}

/** An octal field (leading spaces or NULs, then digits up to a space or NUL); NaN when it holds anything else. */
export function readOctal(block: Buffer, off: number, len: number): number {
  let i = off;
  const end = off + len;
  while (i < end && (block[i] === 32 || block[i] === 0)) i++;
  let n = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0 || c === 32) break;
    if (c < 48 || c > 55) return NaN;
    n = n * 8 + (c - 48);
    digits++;
  }
  return digits === 0 ? 0 : n;
}

/**
 * Octal, or GNU base-256 when the high bit of the first byte is set: a big-endian two's
 * complement number whose sign is bit 0x40 of that byte. Only `signed` fields (times: GNU tar
 * writes pre-1970 mtimes so) may be negative; a negative size or id is an error.
 */
export function readNumber(block: Buffer, off: number, len: number, field: string, at: number, signed = false): number {
  const first = block[off]!;
  let n: number;
  if (first & 0x80) {
    const invert = first & 0x40 ? 0xff : 0;
    if (invert !== 0 && !signed) throw new TarFormatError(`tar header at byte ${at}: negative ${field}`);
    n = (first ^ invert) & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + (block[off + i]! ^ invert);
    if (invert !== 0) n = -n - 1;
  } else {
    n = readOctal(block, off, len);
  }
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`tar header at byte ${at}: invalid ${field} field`);
  return n;
}

/** A non-negative decimal integer written as text (PAX values, sparse maps); NaN for anything else. */
export function readDecimal(bytes: Buffer, start = 0, end = bytes.length): number {
  if (start >= end) return NaN;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c < 48 || c > 57) return NaN;
    n = n * 10 + (c - 48);
  }
  return Number.isSafeInteger(n) ? n : NaN;
}
