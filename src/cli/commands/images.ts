import { shortDigest } from '../../oci/digest.js';
import { imageSize, repositoryAndTag } from '../../image/image.js';
import { parseCommand, withEngine, type GlobalFlags } from '../context.js';
import { humanSize, table, timeAgo } from '../format.js';

export const usage = `Usage: stratum images [--digests] [--no-trunc] [--format table|json] [--store DIR]

List the images in the store; a multi-platform index shows each platform it holds.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(argv, { 'no-trunc': { type: 'boolean' }, format: { type: 'string', default: 'table' } });
  const { images, warnings } = await withEngine(values as GlobalFlags, (engine) => engine.listImages());
  for (const w of warnings) process.stderr.write(`stratum: warning: cannot read image ${w.name}: ${w.message}\n`);
  images.sort((a, b) => a.name.localeCompare(b.name) || (a.platform ?? '').localeCompare(b.platform ?? ''));
  const registryDigest = (img: (typeof images)[number]) => (img.index ?? img.descriptor).annotations?.['dev.stratum.source.digest'] ?? (img.index ?? img.descriptor).digest;
  if (values.format === 'json') {
    const out = images.map((img) => ({
      name: img.name,
      ...repositoryAndTag(img.name),
      digest: registryDigest(img),
      manifest: img.descriptor.digest,
      ...(img.index ? { index: img.index.digest } : {}),
      id: img.configDescriptor.digest,
      created: img.config.created ?? null,
      size: imageSize(img),
      platform: img.platform ?? `${img.config.os}/${img.config.architecture}${img.config.variant ? `/${img.config.variant}` : ''}`,
    }));
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const rows = images.map((img) => {
    const { repository, tag } = repositoryAndTag(img.name);
    const id = values['no-trunc'] ? img.configDescriptor.digest : shortDigest(img.configDescriptor.digest);
    return [repository, tag, registryDigest(img), id, timeAgo(img.config.created), humanSize(imageSize(img))];
  });
  process.stdout.write(table(['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'], rows) + '\n');
  return 0;
}
