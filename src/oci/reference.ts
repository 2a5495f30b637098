import type { Digest } from './digest.js';

/**
 * A parsed, normalised image reference (docker's rules): `ubuntu:15.04` becomes
 * registry `docker.io`, repository `library/ubuntu`, tag `15.04`.
 * CONTRACT ONLY: the implementation of parseReference is being written.
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

export declare function parseReference(input: string): Reference;
