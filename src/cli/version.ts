import { readFileSync } from 'node:fs';

/** The package's version, read from the package.json beside dist/ (one source of truth). */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();
