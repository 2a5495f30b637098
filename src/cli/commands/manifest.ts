import { openEngine, withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { annotationsFlag } from '../annotations.js';

export async function run(inv: Invocation): Promise<number> {
  switch (inv.path[1]) {
    case 'create':
      return create(inv);
    case 'push':
      return push(inv);
    default:
      return inspect(inv);
  }
}

/** docker manifest inspect: the manifest (or index) as the registry serves it; --raw its exact bytes. */
async function inspect(inv: Invocation): Promise<number> {
  const name = inv.arg(0).replace(/^docker:\/\//, '');
  const result = await withEngine(inv.globals, (engine) => engine.inspectRemote(name, { config: false, signal: inv.signal }), { existing: false });
  const raw = result.index?.raw ?? result.raw;
  inv.stdout.write(inv.bool('raw') ? raw.toString('utf8') : `${JSON.stringify(JSON.parse(raw.toString('utf8')), null, 8)}\n`);
  return 0;
}

async function create(inv: Invocation): Promise<number> {
  const annotations = annotationsFlag(inv);
  const [name, ...images] = inv.positionals as [string, ...string[]];
  const descriptor = await withEngine(inv.globals, (engine) => engine.createIndex(name, images, { annotations }));
  inv.stdout.line(descriptor.digest);
  return 0;
}

async function push(inv: Invocation): Promise<number> {
  const engine = await openEngine(inv.globals, { existing: true });
  try {
    const result = await engine.push(inv.arg(0), inv.positionals[1], { signal: inv.signal });
    inv.stdout.line(inv.bool('quiet') ? result.digest : `${result.destination}: digest: ${result.digest} size: ${result.size}`);
  } finally {
    await engine.close();
  }
  return 0;
}
