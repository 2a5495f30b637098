import { shortDigest } from '../../oci/digest.js';
import { parseReference } from '../../oci/reference.js';
import { openEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import type { ProgressMode } from '../progress.js';
import { PushProgress } from '../push-progress.js';

export async function run(inv: Invocation): Promise<number> {
  const positionals = inv.positionals;
  const destination = positionals[1] !== undefined ? parseReference(positionals[1]) : undefined;
  const mode: ProgressMode = inv.bool('json') ? 'json' : inv.bool('quiet') ? 'quiet' : inv.stdout.isTTY ? 'tty' : 'plain';
  const engine = await openEngine(inv.globals, { existing: true });
  const out = inv.stdout;
  const progress = new PushProgress(out, mode);
  try {
    const target = destination ?? parseReference(positionals[0]!);
    progress.header(`The push refers to repository [${target.name}]`);
    const result = await engine.push(positionals[0]!, destination, { onEvent: (e) => progress.event(e), signal: inv.signal, ...(inv.bool('no-referrers') ? { referrers: false } : {}) });
    if (mode === 'json') {
      for (const r of result.referrers) out.write(JSON.stringify({ type: 'referrer', digest: r.digest, ...(r.artifactType ? { artifactType: r.artifactType } : {}), via: r.via }) + '\n');
      out.write(JSON.stringify({ type: 'done', source: result.source, destination: result.destination, digest: result.digest, size: result.size, pushed: result.pushed, mounted: result.mounted, existed: result.existed, bytesUploaded: result.bytesUploaded }) + '\n');
    } else if (mode === 'quiet') {
      out.write(`${result.destination}\n`);
    } else {
      const ref = parseReference(result.destination);
      progress.footer([
        `${ref.digest ?? ref.tag ?? 'latest'}: digest: ${result.digest} size: ${result.size}`,
        ...result.referrers.map((r) => `${shortDigest(r.digest)}: Pushed referrer${r.artifactType ? ` ${r.artifactType}` : ''} (${r.via})`),
      ]);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
