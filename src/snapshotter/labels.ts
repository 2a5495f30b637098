import { InvalidArgumentError } from '../errors.js';

/** containerd's limit: a label's key plus its value, in bytes. */
export const MAX_LABEL_BYTES = 4096;

/** Checks labels and returns a plain own-property copy (a key like `__proto__` stays a key). */
export function validLabels(labels: Record<string, string> | undefined, subject: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (labels === undefined || labels === null) return out;
  if (typeof labels !== 'object' || Array.isArray(labels)) throw new InvalidArgumentError(`${subject}: labels must be an object of strings`);
  for (const [key, value] of Object.entries(labels)) {
    checkLabel(key, value, subject);
    setOwn(out, key, value);
  }
  return out;
}

export function checkLabel(key: string, value: unknown, subject: string): asserts value is string {
  if (key === '') throw new InvalidArgumentError(`${subject}: empty label key`);
  if (typeof value !== 'string') throw new InvalidArgumentError(`${subject}: label ${JSON.stringify(key)} must be a string`);
  const bytes = Buffer.byteLength(key) + Buffer.byteLength(value);
  if (bytes > MAX_LABEL_BYTES) {
    throw new InvalidArgumentError(
      `${subject}: label ${JSON.stringify(key.slice(0, 64))} key and value are ${bytes} bytes, more than the ${MAX_LABEL_BYTES} allowed`,
    );
  }
}

/** Sets an own enumerable property, even for keys such as `__proto__` that plain assignment would treat specially. */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

export function getOwn<T>(obj: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}
