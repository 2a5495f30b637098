import { UsageError, withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { annotationsFlag } from '../annotations.js';
import { whereKept } from './sign.js';

/** oras attach: prints the artifact manifest's digest (and, on stderr, where it went). */
export async function run(inv: Invocation): Promise<number> {
  const artifactType = inv.string('artifact-type');
  const mediaType = inv.string('media-type');
  if (artifactType === undefined) throw new UsageError('attach: give the artifact type with --artifact-type TYPE (e.g. application/spdx+json)');
  const result = await withEngine(
    inv.globals,
    (engine) =>
      engine.attach(inv.arg(0), {
        artifactType: artifactType!,
        path: inv.arg(1),
        annotations: annotationsFlag(inv),
        ...(mediaType ? { mediaType } : {}),
        ...(inv.bool('no-push') ? { push: false } : {}),
        signal: inv.signal,
      }),
    { existing: false },
  );
  if (inv.bool('json')) {
    inv.stdout.line(JSON.stringify({ name: result.name, subject: result.subject.digest, artifact: result.artifact, stored: result.stored, ...(result.pushed ? { pushed: result.pushed } : {}) }));
    return 0;
  }
  inv.stderr.line(`Attached to ${result.name}@${result.subject.digest}: ${whereKept(result)}`);
  inv.stdout.line(result.artifact.digest);
  return 0;
}
