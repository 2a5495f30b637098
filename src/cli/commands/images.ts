import type { ListedImage } from '../../image/resolve.js';
import { imageSize, repositoryAndTag } from '../../image/image.js';
import { UsageError } from '../args.js';
import { IMAGE_FIELDS } from '../commands.js';
import { withEngine } from '../context.js';
import { dockerTime, humanSize, timeAgo } from '../format.js';
import type { Invocation } from '../invocation.js';
import { listingFormat } from '../listing.js';
import { shortDigest } from '../../oci/digest.js';

const HEADERS = { ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', VirtualSize: 'VIRTUAL SIZE', SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE' };

export async function run(inv: Invocation): Promise<number> {
  const noTrunc = inv.bool('no-trunc');
  const columns = ['Repository', 'Tag', ...(inv.bool('digests') ? ['Digest'] : []), 'ID', 'CreatedSince', 'Size'];
  const print = listingFormat(inv.bool('quiet') ? '{{.ID}}' : inv.string('format'), { fields: IMAGE_FIELDS, headers: HEADERS, columns });
  const filters = parseFilters(inv.strings('filter'));
  const { images, warnings } = await withEngine(inv.globals, (engine) => engine.listImages());
  for (const w of warnings) inv.warn(`cannot read image ${w.name}: ${w.message}`);
  images.sort((a, b) => created(b) - created(a) || a.name.localeCompare(b.name) || (a.platform ?? '').localeCompare(b.platform ?? ''));
  let shown = images.filter((img) => matchesRepository(img, inv.positionals[0]));
  for (const f of filters) shown = shown.filter(f.build(images));
  const seen = new Set<string>();
  const rows = shown
    .map((img) => {
      const { repository, tag } = repositoryAndTag(img.name);
      const size = humanSize(imageSize(img));
      return {
        Repository: repository,
        Tag: tag,
        Digest: (img.index ?? img.descriptor).annotations?.['dev.stratum.source.digest'] ?? (img.index ?? img.descriptor).digest,
        ID: noTrunc ? img.configDescriptor.digest : shortDigest(img.configDescriptor.digest),
        Name: img.name,
        CreatedSince: timeAgo(img.config.created),
        CreatedAt: dockerTime(img.config.created),
        Size: size,
        Platform: img.platform ?? [img.config.os, img.config.architecture, img.config.variant].filter(Boolean).join('/'),
        Containers: 'N/A',
        SharedSize: 'N/A',
        UniqueSize: 'N/A',
        VirtualSize: size,
      };
    })
    // -q lists each image once, as docker does for an image with several tags.
    .filter((r) => !inv.bool('quiet') || (!seen.has(r.ID) && seen.add(r.ID)));
  print(inv.stdout, rows);
  return 0;
}

function created(img: ListedImage): number {
  const t = Date.parse(img.config.created ?? '');
  return Number.isNaN(t) ? 0 : t;
}

function matchesRepository(img: ListedImage, wanted: string | undefined): boolean {
  if (wanted === undefined) return true;
  const { repository, tag } = repositoryAndTag(img.name);
  const colon = wanted.lastIndexOf(':');
  const [wantRepo, wantTag] = colon > wanted.lastIndexOf('/') ? [wanted.slice(0, colon), wanted.slice(colon + 1)] : [wanted, undefined];
  const familiar = repositoryAndTag(`${wantRepo}:x`).repository;
  return repository === familiar && (wantTag === undefined || tag === wantTag);
}

interface Filter {
  build(all: ListedImage[]): (img: ListedImage) => boolean;
}

/** docker images --filter: reference, dangling, before, since, label. */
function parseFilters(specs: string[]): Filter[] {
  return specs.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value): ${JSON.stringify(spec)}`);
    const key = spec.slice(0, eq);
    const value = spec.slice(eq + 1);
    switch (key) {
      case 'reference': {
        const pattern = globToRegExp(value);
        return {
          build: () => (img) => {
            const { repository, tag } = repositoryAndTag(img.name);
            return pattern.test(repository) || pattern.test(`${repository}:${tag}`);
          },
        };
      }
      case 'dangling': {
        if (value !== 'true' && value !== 'false') throw new UsageError(`invalid filter 'dangling=${value}': true or false`);
        return { build: () => (img) => (repositoryAndTag(img.name).tag === '<none>') === (value === 'true') };
      }
      case 'before':
      case 'since':
        return {
          build: (all) => {
            const ref = all.find((i) => i.name === value || repositoryAndTag(i.name).repository + ':' + repositoryAndTag(i.name).tag === value || i.configDescriptor.digest === value || shortDigest(i.configDescriptor.digest).startsWith(value.replace(/^sha256:/, '')));
            if (!ref) throw new UsageError(`no such image for filter ${key}=${value}`);
            const t = created(ref);
            return (img) => (key === 'before' ? created(img) < t : created(img) > t);
          },
        };
      case 'label': {
        const [k, v] = value.split('=', 2) as [string, string | undefined];
        return { build: () => (img) => { const labels = (img.config.config?.['Labels'] ?? {}) as Record<string, string>; return k in labels && (v === undefined || labels[k] === v); } };
      }
      default:
        throw new UsageError(`invalid filter '${key}': reference, dangling, before, since or label`);
    }
  });
}

/** docker's reference filter: path.Match patterns, `*` not crossing `/`. */
function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}
