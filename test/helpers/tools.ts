import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Whether `name --version` runs: a reference tool (skopeo, umoci…) is installed. */
export async function hasTool(name: string): Promise<boolean> {
  try {
    await promisify(execFile)(name, ['--version']);
    return true;
  } catch {
    return false;
  }
}
