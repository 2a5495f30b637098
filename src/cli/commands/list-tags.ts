import { TAG_FIELDS } from '../commands.js';
import { withEngine } from '../context.js';
import type { Invocation } from '../invocation.js';
import { listingFormat } from '../listing.js';

/** One tag per line (crane ls); --format json: {"Repository","Tag"} per line. */
export async function run(inv: Invocation): Promise<number> {
  const format = inv.string('format');
  const print = listingFormat(format ?? '{{.Tag}}', { fields: TAG_FIELDS, headers: {}, columns: ['Repository', 'Tag'] });
  const repository = inv.arg(0);
  const tags = await withEngine(inv.globals, (engine) => engine.listTags(repository, { signal: inv.signal }), { existing: false });
  print(inv.stdout, tags.map((Tag) => ({ Repository: repository, Tag })));
  return 0;
}
