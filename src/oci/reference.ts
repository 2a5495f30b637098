import { InvalidDigestError, InvalidReferenceError } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';

/**
 * A parsed, normalised image reference (docker's rules): `ubuntu:15.04` becomes
 * registry `docker.io`, repository `library/ubuntu`, tag `15.04`.
 */
export interface Reference {
  /** Registry host as users name it: `docker.io`, `localhost:5000`, `ghcr.io`. */
  readonly registry: string;
  /** Repository path inside the registry, e.g. `library/ubuntu`. */
  readonly repository: string;
  /** Tag; `latest` when neither tag nor digest was given. Undefined for a digest-only reference. */
  readonly tag?: string;
  readonly digest?: Digest;
  /** Fully qualified: `docker.io/library/ubuntu:15.04`, `…@sha256:…`, or `…:tag@sha256:…`. */
  toString(): string;
  /** As docker prints it: `ubuntu:15.04`, `user/app:1`, `localhost:5000/app@sha256:…`. */
  readonly familiar: string;
  /** `docker.io/library/ubuntu` */
  readonly name: string;
}

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
const OFFICIAL_PREFIX = 'library/';
/** Other names users write for Docker Hub; all normalise to docker.io. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const NAME_TOTAL_LENGTH_MAX = 255;

// The grammar of distribution/reference (regexp.go).
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const HEX_IDENTIFIER = /^[a-f0-9]{64}$/;

class ImageReference implements Reference {
  readonly registry: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;

  constructor(registry: string, repository: string, tag: string | undefined, digest: Digest | undefined) {
    this.registry = registry;
    this.repository = repository;
    if (tag !== undefined) this.tag = tag;
    if (digest !== undefined) this.digest = digest;
    Object.freeze(this);
  }

  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  get familiar(): string {
    return withSuffix(familiarName(this), this.tag, this.digest);
  }

  toString(): string {
    return withSuffix(this.name, this.tag, this.digest);
  }

  toJSON(): string {
    return this.toString();
  }
}

function withSuffix(name: string, tag: string | undefined, digest: Digest | undefined): string {
  return name + (tag === undefined ? '' : `:${tag}`) + (digest === undefined ? '' : `@${digest}`);
}

/**
 * Parses and normalises a reference as `docker pull` does (distribution/reference's
 * ParseNormalizedNamed plus the default tag): `ubuntu` → `docker.io/library/ubuntu:latest`.
 */
export function parseReference(input: string): Reference {
  if (typeof input !== 'string') throw new InvalidReferenceError(String(input), 'not a string');
  if (input === '') throw new InvalidReferenceError(input, 'empty reference');
  if (HEX_IDENTIFIER.test(input)) {
    throw new InvalidReferenceError(input, 'a 64-character hexadecimal string is an image id, not a repository name');
  }

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = referenceDigest(input, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }

  const { registry, path } = splitRegistry(rest);

  // Any ':' left after the registry is split off can only introduce the tag.
  let repository = path;
  let tag: string | undefined;
  const colon = path.indexOf(':');
  if (colon >= 0) {
    repository = path.slice(0, colon);
    tag = path.slice(colon + 1);
  }

  checkRegistry(input, registry);
  checkRepository(input, repository);
  if (tag !== undefined) checkTag(input, tag);
  if (registry.length + 1 + repository.length > NAME_TOTAL_LENGTH_MAX) {
    throw new InvalidReferenceError(input, `repository name must not be longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return new ImageReference(registry, repository, tag, digest);
}

/** `ref` pinned to `digest`; a tag is kept, as distribution/reference's WithDigest does. */
export function withDigest(ref: Reference, digest: string): Reference {
  let parsed: Digest;
  try {
    parsed = parseDigest(digest);
  } catch (err) {
    throw new InvalidReferenceError(`${ref.name}@${digest}`, reasonOf(err));
  }
  return new ImageReference(ref.registry, ref.repository, ref.tag, parsed);
}

/** `ref` with `tag`; a digest is kept. */
export function withTag(ref: Reference, tag: string): Reference {
  checkTag(`${ref.name}:${tag}`, tag);
  return new ImageReference(ref.registry, ref.repository, tag, ref.digest);
}

/** `ref` with only its digest (for fetching children of an index, or printing a pinned reference). */
export function withoutTag(ref: Reference): Reference {
  return new ImageReference(ref.registry, ref.repository, undefined, ref.digest);
}

/** The repository as docker prints it, without tag or digest: `ubuntu`, `user/app`, `ghcr.io/o/app`. */
export function familiarName(ref: Pick<Reference, 'registry' | 'repository'>): string {
  if (ref.registry !== DEFAULT_REGISTRY) return `${ref.registry}/${ref.repository}`;
  if (ref.repository.startsWith(OFFICIAL_PREFIX)) {
    const rest = ref.repository.slice(OFFICIAL_PREFIX.length);
    // `library/foo/bar` stays as it is: only one-component official names are shortened.
    if (!rest.includes('/')) return rest;
  }
  return ref.repository;
}

/**
 * Splits the registry host off the way docker does: the first component is a host when it
 * contains `.` or `:`, is `localhost`, or has uppercase letters (which a repository never has).
 * Docker Hub's aliases become `docker.io`, and one-component Hub names get `library/`.
 */
function splitRegistry(name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  let registry = DEFAULT_REGISTRY;
  let path = name;
  if (slash >= 0) {
    const first = name.slice(0, slash);
    if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) {
      registry = DOCKER_HUB_ALIASES.has(first) ? DEFAULT_REGISTRY : first;
      path = name.slice(slash + 1);
    }
  }
  if (registry === DEFAULT_REGISTRY && !repositoryPart(path).includes('/')) path = OFFICIAL_PREFIX + path;
  return { registry, path };
}

function repositoryPart(path: string): string {
  const colon = path.indexOf(':');
  return colon < 0 ? path : path.slice(0, colon);
}

function checkRegistry(input: string, registry: string): void {
  if (!DOMAIN.test(registry)) throw new InvalidReferenceError(input, `invalid registry host ${JSON.stringify(registry)}`);
}

function checkRepository(input: string, repository: string): void {
  if (repository.toLowerCase() !== repository) {
    throw new InvalidReferenceError(input, `repository name must be lowercase (got ${JSON.stringify(repository)})`);
  }
  const components = repository.split('/');
  for (const component of components) {
    if (component === '') {
      throw new InvalidReferenceError(input, `empty path component in repository ${JSON.stringify(repository)}`);
    }
    if (!PATH_COMPONENT.test(component)) {
      throw new InvalidReferenceError(
        input,
        `invalid repository path component ${JSON.stringify(component)} (lowercase letters and digits, separated by ".", "_", "__" or dashes)`,
      );
    }
  }
}

function checkTag(input: string, tag: string): void {
  if (!TAG.test(tag)) {
    throw new InvalidReferenceError(input, `invalid tag ${JSON.stringify(tag)} (letters, digits, "_", "." and "-", not starting with "." or "-", at most 128)`);
  }
}

function referenceDigest(input: string, value: string): Digest {
  try {
    return parseDigest(value);
  } catch (err) {
    throw new InvalidReferenceError(input, reasonOf(err));
  }
}

function reasonOf(err: unknown): string {
  if (err instanceof InvalidDigestError) return err.message;
  throw err;
}
