import { parsePlatform } from '../../oci/platform.js';
import { shortDigest } from '../../oci/digest.js';
import { HISTORY_FIELDS } from '../commands.js';
import { withEngine } from '../context.js';
import { dockerTime, ellipsis, humanSize, timeAgo } from '../format.js';
import type { Invocation } from '../invocation.js';
import { listingFormat } from '../listing.js';

const HEADERS = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', CompressedSize: 'COMPRESSED SIZE' };

/**
 * docker history: IMAGE is the image ID on the newest row and <missing> below (the steps of a
 * pulled image are not images of their own); SIZE is each layer's unpacked size once known.
 */
export async function run(inv: Invocation): Promise<number> {
  const noTrunc = inv.bool('no-trunc');
  // -H is on unless turned off with -H=false / --human=false.
  const human = inv.values['human'] !== false;
  const print = listingFormat(inv.bool('quiet') ? '{{.ID}}' : inv.string('format'), { fields: HISTORY_FIELDS, headers: HEADERS, columns: ['ID', 'CreatedSince', 'CreatedBy', 'Size', 'Comment'] });
  const { rows, id } = await withEngine(inv.globals, async (engine) => {
    const platformFlag = inv.string('platform');
    const options = platformFlag ? { platform: parsePlatform(platformFlag) } : {};
    const image = await engine.resolveImage(inv.arg(0), options);
    return { rows: await engine.history(inv.arg(0), options), id: image.configDescriptor.digest };
  });
  const size = (bytes: number | undefined) => (bytes === undefined ? '-' : human ? humanSize(bytes) : String(bytes));
  const out = rows.map((r, i) => ({
    ID: i === 0 ? (noTrunc ? id : shortDigest(id)) : '<missing>',
    CreatedSince: human ? timeAgo(r.created) : (r.created ?? ''),
    CreatedAt: human ? dockerTime(r.created) : (r.created ?? ''),
    CreatedBy: noTrunc ? r.createdBy : ellipsis(r.createdBy.replace(/\t/g, ' '), 45),
    Size: size(r.unpackedSize),
    CompressedSize: size(r.size),
    Comment: r.comment,
  }));
  print(inv.stdout, out);
  return 0;
}
