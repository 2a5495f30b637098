import { parseArgs } from 'node:util';
import { shortDigest } from '../../oci/digest.js';
import { imageSize, loadImage, repositoryAndTag } from '../../image/image.js';
import { GLOBAL_OPTIONS, openStore, type GlobalFlags } from '../context.js';
import { humanSize, table, timeAgo } from '../format.js';

export const usage = `Usage: stratum images [--digests] [--no-trunc] [--format table|json] [--store DIR]

List the images in the store.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...GLOBAL_OPTIONS, 'no-trunc': { type: 'boolean' }, format: { type: 'string', default: 'table' } },
  });
  const store = await openStore(values as GlobalFlags);
  const images = await Promise.all((await store.listTags()).map((t) => loadImage(store, t)));
  images.sort((a, b) => a.name.localeCompare(b.name));
  if (values.format === 'json') {
    const out = images.map((img) => ({
      name: img.name,
      ...repositoryAndTag(img.name),
      digest: img.descriptor.annotations?.['dev.stratum.source.digest'] ?? img.descriptor.digest,
      manifest: img.descriptor.digest,
      id: img.configDescriptor.digest,
      created: img.config.created ?? null,
      size: imageSize(img),
      platform: `${img.config.os}/${img.config.architecture}${img.config.variant ? `/${img.config.variant}` : ''}`,
    }));
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const rows = images.map((img) => {
    const { repository, tag } = repositoryAndTag(img.name);
    const digest = img.descriptor.annotations?.['dev.stratum.source.digest'] ?? img.descriptor.digest;
    const id = values['no-trunc'] ? img.configDescriptor.digest : shortDigest(img.configDescriptor.digest);
    return [repository, tag, digest, id, timeAgo(img.config.created), humanSize(imageSize(img))];
  });
  process.stdout.write(table(['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'], rows) + '\n');
  return 0;
}
