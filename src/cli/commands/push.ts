import type { PushEvent } from '../../image/push.js';
import { shortDigest } from '../../oci/digest.js';
import { parseReference } from '../../oci/reference.js';
import { openEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const positionals = inv.positionals;
  const values = { json: inv.bool('json'), quiet: inv.bool('quiet') };
  const destination = positionals[1] !== undefined ? parseReference(positionals[1]) : undefined;
  const engine = await openEngine(inv.globals, { existing: true });
  const out = inv.stdout;
  const layers = new Set<string>();
  const onEvent = (e: PushEvent): void => {
    if (values.json) {
      out.write(JSON.stringify('digest' in e ? { ...e, id: shortDigest(e.digest) } : e) + '\n');
      return;
    }
    if (values.quiet) return;
    if (e.type === 'blobs') {
      for (const b of e.blobs) if (b.kind === 'layer') layers.add(b.digest);
    } else if ((e.type === 'exists' || e.type === 'pushed' || e.type === 'mounted') && layers.has(e.digest)) {
      // docker shows layers only; the config goes up silently.
      const status = e.type === 'exists' ? 'Layer already exists' : e.type === 'mounted' ? `Mounted from ${e.from}` : 'Pushed';
      out.write(`${shortDigest(e.digest)}: ${status}\n`);
    }
  };
  try {
    const target = destination ?? parseReference(positionals[0]!);
    if (!values.json && !values.quiet) out.write(`The push refers to repository [${target.name}]\n`);
    const result = await engine.push(positionals[0]!, destination, { onEvent, signal: inv.signal, ...(inv.bool('no-referrers') ? { referrers: false } : {}) });
    if (values.json) {
      for (const r of result.referrers) out.write(JSON.stringify({ type: 'referrer', digest: r.digest, ...(r.artifactType ? { artifactType: r.artifactType } : {}), via: r.via }) + '\n');
      out.write(JSON.stringify({ type: 'done', source: result.source, destination: result.destination, digest: result.digest, size: result.size, pushed: result.pushed, mounted: result.mounted, existed: result.existed, bytesUploaded: result.bytesUploaded }) + '\n');
    } else if (values.quiet) {
      out.write(`${result.destination}\n`);
    } else {
      const ref = parseReference(result.destination);
      out.write(`${ref.digest ?? ref.tag ?? 'latest'}: digest: ${result.digest} size: ${result.size}\n`);
      for (const r of result.referrers) out.write(`${shortDigest(r.digest)}: Pushed referrer${r.artifactType ? ` ${r.artifactType}` : ''} (${r.via})\n`);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
