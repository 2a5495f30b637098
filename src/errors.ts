/**
 * Every error stratum throws on purpose is a StratumError with a stable `code`,
 * so scripts and callers can branch on `err.code` instead of parsing messages
 * (the way undici and containerd's errdefs do).
 */
export type ErrorCode =
  | 'ERR_INVALID_REFERENCE'
  | 'ERR_INVALID_DIGEST'
  | 'ERR_DIGEST_MISMATCH'
  | 'ERR_SIZE_MISMATCH'
  | 'ERR_INVALID_MANIFEST'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'ERR_NO_MATCHING_PLATFORM'
  | 'ERR_INVALID_PLATFORM'
  | 'ERR_NOT_FOUND'
  | 'ERR_ALREADY_EXISTS'
  | 'ERR_FAILED_PRECONDITION'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_DENIED'
  | 'ERR_RATE_LIMITED'
  | 'ERR_REGISTRY'
  | 'ERR_NETWORK'
  | 'ERR_INSECURE_REGISTRY'
  | 'ERR_TLS_CERTIFICATE'
  | 'ERR_CREDENTIALS'
  | 'ERR_STORE'
  | 'ERR_UNSAFE_LOCATION'
  | 'ERR_NO_SPACE'
  | 'ERR_LOCKED'
  | 'ERR_CONFIG'
  | 'ERR_INVALID_IMAGE_CONFIG'
  | 'ERR_UNSAFE_ENTRY'
  | 'ERR_LIMIT_EXCEEDED'
  | 'ERR_INVALID_LAYER'
  | 'ERR_INVALID_ARCHIVE'
  | 'ERR_MOUNT'
  | 'ERR_EROFS'
  | 'ERR_UNSAFE_PATH'
  | 'ERR_APPLY'
  | 'ERR_NATIVE_ADDON'
  | 'ERR_DRIVER_UNSUPPORTED'
  | 'ERR_ABORTED'
  | 'ERR_INVALID_CHANGE'
  | 'ERR_LAYER_SOURCE'
  | 'ERR_SIGNATURE_MISSING'
  | 'ERR_SIGNATURE_INVALID'
  | 'ERR_SIGNATURE_OTHER_DIGEST'
  | 'ERR_SIGNATURE_OTHER_KEY'
  | 'ERR_KEYLESS_UNAVAILABLE'
  | 'ERR_MIGRATE_BLOCKED'
  | 'ERR_MIGRATE_MISMATCH';

export class StratumError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class InvalidReferenceError extends StratumError {
  constructor(readonly reference: string, reason: string) {
    super('ERR_INVALID_REFERENCE', `invalid reference ${JSON.stringify(reference)}: ${reason}`);
  }
}

export class InvalidDigestError extends StratumError {
  constructor(readonly digest: string, reason: string) {
    super('ERR_INVALID_DIGEST', `invalid digest ${JSON.stringify(digest)}: ${reason}`);
  }
}

/** Content did not hash to what its descriptor promised. `subject` names the blob or manifest at fault. */
export class DigestMismatchError extends StratumError {
  constructor(readonly subject: string, readonly expected: string, readonly actual: string) {
    super('ERR_DIGEST_MISMATCH', `${subject}: digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/** Content was not the size its descriptor promised; `atLeast` when the reader stopped early on a body that ran past it. */
export class SizeMismatchError extends StratumError {
  constructor(readonly subject: string, readonly expected: number, readonly actual: number, atLeast = false) {
    super('ERR_SIZE_MISMATCH', `${subject}: size mismatch: expected ${expected} bytes, got ${atLeast ? `at least ${actual} (stopped reading)` : actual}`);
  }
}

export class InvalidManifestError extends StratumError {
  constructor(readonly subject: string, reason: string) {
    super('ERR_INVALID_MANIFEST', `${subject}: invalid manifest: ${reason}`);
  }
}

export class UnsupportedMediaTypeError extends StratumError {
  constructor(readonly subject: string, readonly mediaType: string) {
    super('ERR_UNSUPPORTED_MEDIA_TYPE', `${subject}: unsupported media type ${JSON.stringify(mediaType)}`);
  }
}

export class NotFoundError extends StratumError {
  constructor(message: string) {
    super('ERR_NOT_FOUND', message);
  }
}

export class AlreadyExistsError extends StratumError {
  constructor(message: string) {
    super('ERR_ALREADY_EXISTS', message);
  }
}

export class FailedPreconditionError extends StratumError {
  constructor(message: string) {
    super('ERR_FAILED_PRECONDITION', message);
  }
}

export class InvalidArgumentError extends StratumError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message);
  }
}

/** A storage option (`--storage-opt`, the store's `storage-opts`) that is unknown to its driver or has a bad value; names the option. */
export class StorageOptionError extends InvalidArgumentError {
  constructor(
    readonly option: string,
    reason: string,
  ) {
    super(`storage option ${JSON.stringify(option)}: ${reason}`);
  }
}

/** `migrate` cannot start: snapshots are mounted, or hold work no image carries; `blockers` lists them. */
export class MigrationBlockedError extends StratumError {
  constructor(
    message: string,
    readonly blockers: string[],
  ) {
    super('ERR_MIGRATE_BLOCKED', message);
  }
}

/** An image unpacked into the new driver differs from its tree in the old one; the store keeps its old driver. */
export class MigrationMismatchError extends StratumError {
  constructor(
    readonly image: string,
    readonly differences: string[],
  ) {
    super('ERR_MIGRATE_MISMATCH', `${image}: its tree in the new driver differs from the old one (${differences.length} differences): ${differences.slice(0, 10).join('; ')}${differences.length > 10 ? '; …' : ''}`);
  }
}

/**
 * The caller's AbortSignal fired: the operation stopped, what it had verified is kept (a pull's
 * partial downloads resume next time). `reason` is the signal's reason, as the caller gave it.
 */
export class AbortedError extends StratumError {
  constructor(what: string, readonly reason: unknown) {
    super('ERR_ABORTED', `${what} was cancelled${reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : ''}`, { cause: reason });
  }
}

export function isStratumError(err: unknown, code?: ErrorCode): err is StratumError {
  return err instanceof StratumError && (code === undefined || err.code === code);
}

/** Credentials were refused (401 after authenticating). Names the registry, never the secret. */
export class UnauthorizedError extends StratumError {
  constructor(readonly registry: string, reason: string) {
    super('ERR_UNAUTHORIZED', `authentication to ${registry} failed: ${reason}`);
  }
}

/** The registry understood who we are and said no (403). */
export class DeniedError extends StratumError {
  constructor(readonly registry: string, reason: string) {
    super('ERR_DENIED', `access to ${registry} denied: ${reason}`);
  }
}

/** 429 from a registry; `retryAfterMs` from Retry-After when it was sent. */
export class RateLimitError extends StratumError {
  constructor(message: string, readonly retryAfterMs?: number) {
    super('ERR_RATE_LIMITED', message);
  }
}

/** A registry answered with an unexpected status; `retryAfterMs` from Retry-After when it was sent. */
export class RegistryError extends StratumError {
  constructor(message: string, readonly status?: number, readonly retryAfterMs?: number) {
    super('ERR_REGISTRY', message);
  }
}

/**
 * A storage host a registry redirected a blob to refused it (an expired signed URL: 403, or a
 * 4xx/5xx of the CDN). Worth another try from the registry, which hands out a fresh URL.
 */
export class RedirectTargetError extends RegistryError {
  constructor(message: string, status: number) {
    super(message, status);
  }
}

/** A connection-level failure (refused, reset, timed out); `cause` holds the socket error. */
export class NetworkError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NETWORK', message, options);
  }
}

export class InsecureRegistryError extends StratumError {
  constructor(readonly url: string, reason: string) {
    super('ERR_INSECURE_REGISTRY', `refusing plain HTTP to ${url}: ${reason}`);
  }
}

/**
 * A registry's TLS certificate cannot be trusted (unknown authority, expired, not for this host)
 * or the registry wanted a client certificate. Never retried: the answer would be the same.
 */
export class CertificateError extends StratumError {
  constructor(
    readonly host: string,
    readonly problem: 'unknown-authority' | 'expired' | 'not-yet-valid' | 'wrong-name' | 'wrong-purpose' | 'client-certificate',
    detail: string,
    cause?: unknown,
  ) {
    super('ERR_TLS_CERTIFICATE', `TLS with ${host}: ${detail}`, { cause });
  }
}

/** Reading credentials failed (bad config.json, a credential helper that crashed). Never carries the secret. */
export class CredentialsError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CREDENTIALS', message, options);
  }
}

/** A configuration file or flag is malformed; the message names the file (or flag) and the field. */
export class ConfigError extends StratumError {
  constructor(readonly source: string, readonly field: string, reason: string) {
    super('ERR_CONFIG', `${source}: ${field}: ${reason}`);
  }
}

/** A storage driver that cannot work where the store is (Docker's graphdriver refusals). */
export class UnsupportedDriverError extends StratumError {
  constructor(message: string) {
    super('ERR_DRIVER_UNSUPPORTED', message);
  }
}

export class InvalidPlatformError extends StratumError {
  constructor(readonly platform: string, reason: string) {
    super('ERR_INVALID_PLATFORM', `invalid platform ${JSON.stringify(platform)}: ${reason}`);
  }
}

/** An index offered no manifest for the wanted platform; `available` lists what it did offer. */
export class NoMatchingPlatformError extends StratumError {
  constructor(readonly subject: string, readonly wanted: string, readonly available: readonly string[]) {
    super(
      'ERR_NO_MATCHING_PLATFORM',
      `no manifest for ${wanted} in ${subject}; available: ${available.length > 0 ? available.join(', ') : 'none'}`,
    );
  }
}

/** An image config blob (the JSON a manifest's `config` points at) is malformed or disagrees with its manifest. */
export class InvalidImageConfigError extends StratumError {
  constructor(readonly subject: string, reason: string) {
    super('ERR_INVALID_IMAGE_CONFIG', `${subject}: invalid image config: ${reason}`);
  }
}

/** The content store's directory is unusable (not an OCI layout, a foreign layout version, a corrupt index.json, an I/O failure). */
export class StoreError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }, code: 'ERR_STORE' | 'ERR_NO_SPACE' = 'ERR_STORE') {
    super(code, message, options);
  }
}

/**
 * The filesystem holding a blob or a snapshot is full (ENOSPC) or over quota (EDQUOT): a storage
 * failure, not bad content. `subject` names the blob or layer, `where` the directory being written.
 */
export class NoSpaceError extends StoreError {
  constructor(readonly subject: string, readonly where: string, detail: string, options?: { cause?: unknown }) {
    super(`${subject}: no space left on the filesystem of ${where} (${detail})`, options, 'ERR_NO_SPACE');
  }
}

/** Whether `err` (or what caused it) is a full filesystem or an exhausted quota. */
export function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, errnoName } = e as { code?: unknown; errnoName?: unknown };
    if (code === 'ENOSPC' || code === 'EDQUOT' || errnoName === 'ENOSPC' || errnoName === 'EDQUOT') return true;
  }
  return false;
}

/**
 * A store or snapshot root placed inside content stratum keeps immutable (another store's blobs/,
 * a snapshot's data, a mounted snapshot): names the path, what it was meant to be, and why.
 */
export class UnsafeLocationError extends StratumError {
  constructor(readonly path: string, readonly role: string, reason: string) {
    super('ERR_UNSAFE_LOCATION', `refusing ${path} as a ${role}: ${reason}`);
  }
}

/** A file lock stayed held by a live process past the caller's timeout; `owner` describes the holder when readable. */
export class LockedError extends StratumError {
  constructor(readonly path: string, readonly owner: string | undefined, waitedMs: number) {
    super('ERR_LOCKED', `${path}: still locked${owner ? ` by ${owner}` : ''} after waiting ${waitedMs} ms`);
  }
}

/** A layer entry that would escape the root or is malformed (`..`, absolute, a symlinked parent, a bad whiteout); names the layer and the entry. */
export class UnsafeEntryError extends StratumError {
  constructor(readonly subject: string, readonly entry: string, reason: string) {
    super('ERR_UNSAFE_ENTRY', `${subject}: entry ${JSON.stringify(entry)}: ${reason}`);
  }
}

/** A layer exceeded a configured limit (bytes, entries, path length): a decompression bomb stops here. */
export class LayerLimitError extends StratumError {
  constructor(readonly subject: string, readonly limit: 'maxBytes' | 'maxEntries' | 'maxPathLength', readonly value: number, detail: string) {
    super('ERR_LIMIT_EXCEEDED', `${subject}: ${detail} exceeds limit ${limit}=${value}`);
  }
}

/** An image with more layers than the configured (or the backend's) limit; refused before any layer is fetched. */
export class TooManyLayersError extends StratumError {
  constructor(readonly subject: string, readonly layers: number, readonly limit: number, why: string) {
    super('ERR_LIMIT_EXCEEDED', `${subject}: ${layers} layers, more than the limit of ${limit} (${why})`);
  }
}

/** A layer blob that is not a readable (compressed) tar, or that could not be applied; names the layer. */
export class LayerApplyError extends StratumError {
  constructor(readonly subject: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_LAYER', `${subject}: ${reason}`, options);
  }
}

/**
 * An image archive (`docker save` output, an OCI archive) that is malformed, truncated or
 * inconsistent (no manifest.json or index.json, a layer count that disagrees with its config, a
 * missing entry); `entry` names the archive entry at fault when there is one.
 */
export class ArchiveError extends StratumError {
  constructor(readonly entry: string | undefined, reason: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_ARCHIVE', entry === undefined ? `image archive: ${reason}` : `image archive entry ${JSON.stringify(entry)}: ${reason}`, options);
  }
}

/** A mount or unmount failed (overlay, bind); the message names the target and what was mounted. */
export class MountError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MOUNT', message, options);
  }
}

/** An EROFS image that cannot be written (an entry EROFS cannot hold: an xattr outside its namespaces, an oversized name) or read back. */
export class ErofsError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_EROFS', message, options);
  }
}

/** Where a native filesystem call failed: the root-relative path, and the errno and syscall when the kernel refused. */
export interface FsErrorDetails {
  path: string;
  errno?: number;
  /** e.g. 'ELOOP' */
  errnoName?: string;
  syscall?: string;
  /** Index of the failed op in its batch. */
  opIndex?: number;
}

/** Base of the native filesystem errors: carries FsErrorDetails as fields. */
export class NativeFsError extends StratumError {
  readonly path: string;
  readonly errno?: number;
  readonly errnoName?: string;
  readonly syscall?: string;
  readonly opIndex?: number;
  constructor(code: 'ERR_UNSAFE_PATH' | 'ERR_APPLY', message: string, details: FsErrorDetails, options?: { cause?: unknown }) {
    super(code, message, options);
    this.path = details.path;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.errnoName !== undefined) this.errnoName = details.errnoName;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.opIndex !== undefined) this.opIndex = details.opIndex;
  }
}

/** A root-relative path refused before or by the kernel: `..`, absolute, a symlinked parent, a mount crossing. */
export class UnsafePathError extends NativeFsError {
  constructor(message: string, details: FsErrorDetails, options?: { cause?: unknown }) {
    super('ERR_UNSAFE_PATH', message, details, options);
  }
}

/** A filesystem call inside a snapshot root failed (permission, no space, a non-directory parent…); names the path and syscall. */
export class FsApplyError extends NativeFsError {
  constructor(message: string, details: FsErrorDetails, options?: { cause?: unknown }) {
    super('ERR_APPLY', message, details, options);
  }
}

/** The compiled native addon (build/Release/stratum.node) is missing or does not load. */
export class NativeAddonError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NATIVE_ADDON', message, options);
  }
}

/** A config change (`docker commit --change` syntax) that is not one docker accepts, or is malformed. */
export class InvalidChangeError extends StratumError {
  constructor(readonly change: string, reason: string) {
    super('ERR_INVALID_CHANGE', `invalid change ${JSON.stringify(change)}: ${reason}`);
  }
}

/** A layer source of an image mutation (a directory, a tar, a snapshot) that cannot be read, or was read once already. */
export class LayerSourceError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_LAYER_SOURCE', message, options);
  }
}

/** Why an image's signature did not verify; each has its own stable code (see SignatureError). */
export type SignatureFailure = 'missing' | 'bad-signature' | 'other-digest' | 'other-key';

const SIGNATURE_CODES: Record<SignatureFailure, ErrorCode> = {
  missing: 'ERR_SIGNATURE_MISSING',
  'bad-signature': 'ERR_SIGNATURE_INVALID',
  'other-digest': 'ERR_SIGNATURE_OTHER_DIGEST',
  'other-key': 'ERR_SIGNATURE_OTHER_KEY',
};

/**
 * An image did not verify against a key: no signature was found (`missing`,
 * ERR_SIGNATURE_MISSING), a signature did not check out (`bad-signature`, ERR_SIGNATURE_INVALID:
 * the signed payload or the signature was altered), a valid signature names another manifest
 * digest (`other-digest`, ERR_SIGNATURE_OTHER_DIGEST: moved from another image), or every
 * signature was made by another key (`other-key`, ERR_SIGNATURE_OTHER_KEY). When several
 * signatures fail for different reasons, the reason is the one that says most (bad-signature over
 * other-digest over other-key), and `details` lists each.
 */
export class SignatureError extends StratumError {
  constructor(
    readonly reason: SignatureFailure,
    /** The image (reference and manifest digest) that was checked. */
    readonly subject: string,
    message: string,
    readonly details: readonly string[] = [],
  ) {
    super(SIGNATURE_CODES[reason], `${subject}: ${message}`);
  }
}

/** Keyless signing (Fulcio certificate, Rekor entry) could not reach its services or has no identity token. */
export class KeylessUnavailableError extends StratumError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_KEYLESS_UNAVAILABLE', message, options);
  }
}
