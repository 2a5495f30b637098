import { sourceDateEpoch } from '../../image/layer-blob.js';
import { openEngine } from '../context.js';
import type { Invocation } from '../invocation.js';

export async function run(inv: Invocation): Promise<number> {
  const positionals = inv.positionals;
  const values = { image: inv.string('image'), message: inv.string('message'), author: inv.string('author'), json: inv.bool('json') };
  const changes = inv.strings('change');
  const epoch = sourceDateEpoch(process.env);
  const engine = await openEngine(inv.globals, { existing: true });
  try {
    const result = await engine.commitImage(positionals[0]!, positionals[1]!, {
      ...(values.image !== undefined ? { image: values.image } : {}),
      ...(values.message !== undefined ? { message: values.message } : {}),
      ...(values.author !== undefined ? { author: values.author } : {}),
      ...(changes.length > 0 ? { changes } : {}),
      ...(epoch !== undefined ? { epoch } : {}),
    });
    if (values.json) {
      inv.stdout.line(JSON.stringify({ name: result.name, id: result.config.digest, manifest: result.manifest, config: result.config, layer: result.layer, entries: result.entries, whiteouts: result.whiteouts }));
    } else {
      inv.stdout.line(result.config.digest);
    }
  } finally {
    await engine.close();
  }
  return 0;
}
