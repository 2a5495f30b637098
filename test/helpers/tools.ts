import { execFile } from 'node:child_process';
import { join } from 'node:path';
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

/**
 * The reference root filesystem of an image in a registry: `skopeo copy` into an OCI layout in
 * `workDir`, then `umoci raw unpack` of it into `workDir/rootfs`; returns that directory.
 */
export async function umociUnpack(ref: string, workDir: string): Promise<string> {
  const run = promisify(execFile);
  const layout = join(workDir, 'layout');
  const rootfs = join(workDir, 'rootfs');
  await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:1`]);
  await run('umoci', ['raw', 'unpack', '--image', `${layout}:1`, rootfs]);
  return rootfs;
}
