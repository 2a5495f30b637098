import { arch, platform, release } from 'node:os';
import type { Invocation } from '../invocation.js';
import { objectFormat } from '../listing.js';
import { VERSION } from '../version.js';

export async function run(inv: Invocation): Promise<number> {
  const info = {
    Version: VERSION,
    NodeVersion: process.version,
    Os: platform(),
    Arch: arch() === 'x64' ? 'amd64' : arch(),
    KernelVersion: release(),
    OpenSSL: process.versions.openssl ?? '',
  };
  const format = objectFormat(inv.string('format'), Object.keys(info));
  if (format) {
    inv.stdout.line(format(info));
    return 0;
  }
  inv.stdout.line(['stratum:', ` Version:        ${info.Version}`, ` Node.js:        ${info.NodeVersion}`, ` OS/Arch:        ${info.Os}/${info.Arch}`, ` Kernel Version: ${info.KernelVersion}`].join('\n'));
  return 0;
}
