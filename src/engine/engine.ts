import { existsSync } from 'node:fs';
import { readdir, realpath, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { chainIds, digestOf, type Digest } from '../oci/digest.js';
import { parseReference, type Reference } from '../oci/reference.js';
import { OciStore, defaultStoreRoot } from '../content/store.js';
import type { GcResult } from '../content/gc.js';
import type { Descriptor, Platform } from '../oci/types.js';
import { isIndexMediaType, MediaType } from '../oci/mediatypes.js';
import { RegistryClient } from '../registry/client.js';
import { DockerConfigCredentials, type CredentialSource } from '../registry/credentials.js';
import type { RegistryConfig } from '../registry/hosts.js';
import type { PullEvent, PullResult } from '../image/pull.js';
import type { ResolvedManifest } from '../registry/types.js';
import type { ImageSigner } from '../sign/key.js';
import type { SignOptions, SignResult, VerifyImageOptions, VerifyImageResult } from '../sign/sign.js';
import type { PushEvent, PushResult } from '../image/push.js';
import type { PushedReferrer } from '../image/push-referrers.js';
import type { AttachOptions, AttachResult, Referrer, ReferrersOptions } from '../referrers/attach.js';
import type { CommitImageResult } from '../image/commit.js';
import type { MutableImage } from '../image/mutate.js';
import type { SaveOptions, SaveResult } from '../image/archive/save.js';
import type { LoadOptions, LoadResult } from '../image/archive/load.js';
import type { StoredImage } from '../image/image.js';
import type { ImageListing, ListedImage } from '../image/resolve.js';
import type { HistoryRow } from '../image/history.js';
import type { CopyLocation, CopyOptions, CopyResult } from '../image/copy.js';
import type { InspectRemoteOptions, RemoteInspection } from '../image/inspect-remote.js';
import type { CredentialFileOptions, LoginCredentials, LoginOptions, LoginResult, LogoutResult } from '../registry/login.js';
import type { StoreUsage } from '../image/usage.js';
import type { StoreProblem, VerifyResult } from '../image/verify.js';
import { IMAGE_LABEL, MOUNTPOINT_LABEL } from '../image/labels.js';
import type { UnpackEvent } from '../image/unpack.js';
import { openSnapshotter, SNAPSHOTTER_NAMES, validateStorageOpts, type SnapshotterName } from '../snapshotter/index.js';
import type { Info, Mount, Snapshotter, SnapshotOptions, Usage } from '../snapshotter/snapshotter.js';
import { isMountPoint, mountAll, mountsUnder, unmountAll } from '../snapshotter/mount.js';
import { reclaimTemporaries, type ReclaimedTemporaries } from '../snapshotter/temporaries.js';
import { backingFilesystem, chooseStorageDriver, driverStatus, ensureZfsRoot, kernelLimits, normalizeDriverName, supportsDType } from '../snapshotter/driver.js';
import { loadNative } from '../sys/native.js';
import { mkdirAll } from '../sys/mkdir-all.js';
import { AbortedError, AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, isStratumError, NotFoundError } from '../errors.js';
import { readStoreConfig, writeStoreConfig } from './store-config.js';
import { resolveRegistryConfig, type RegistrySettings } from './registry-config.js';
import { MountTable, type MountRecord } from './mount-table.js';
import type { CollectedSnapshot } from './snapshot-gc.js';
import type { MigrateOptions, MigrateResult } from './migrate.js';

export interface EngineOptions extends RegistrySettings {
  /** Refuse (NotFoundError naming it) a `root` that does not exist instead of creating an empty store: a mistyped path. */
  mustExist?: boolean;
  /** The store's directory; default $STRATUM_STORE, else $XDG_DATA_HOME/stratum. */
  root?: string;
  /**
   * A storage driver for this Engine only (as `--snapshotter` or $STRATUM_SNAPSHOTTER): overlay,
   * fuse-overlayfs, native, btrfs, zfs, or Docker's names overlay2 and vfs. Default: the store's recorded driver,
   * chosen once from the backing filesystem on first use (see `driver()`).
   */
  storageDriver?: string;
  /** Says where storageDriver came from, in messages (`--snapshotter`); default "the Engine's options". */
  storageDriverSource?: string;
  /**
   * Storage options (Docker's `--storage-opt`, e.g. `blockfile.size=10G`), recorded as the store's
   * `storage-opts` when its driver is first recorded; the recorded ones hold afterwards.
   */
  storageOpts?: string[];
  /** Where the driver's snapshots live; default `<root>/snapshots/<driver>` ($STRATUM_SNAPSHOT_ROOT). */
  snapshotRoot?: string;
  /** Registry credentials; default Docker's config.json ($DOCKER_CONFIG or ~/.docker). */
  credentials?: CredentialSource;
  /** Environment read for $STRATUM_* defaults; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Notices the caller should show (a driver override, a snapshotter that cannot be opened here). */
  onWarning?: (message: string) => void;
  /** Decisions worth showing with `--debug`: each registry origin's route (proxy, certificates, HTTPS or plain HTTP). */
  onDebug?: (message: string) => void;
  /**
   * Let thread-pool bulk work (unpack) yield to the main thread (SCHED_BATCH); a CLI turns it on,
   * a library user running other work on the pool may prefer not to.
   */
  batchPoolThreads?: boolean;
}

/** The storage driver in use and why, as `stratum info` shows it. */
export interface DriverChoice {
  name: SnapshotterName;
  /** Where its snapshots live. */
  root: string;
  /** Why this driver: recorded in the store, chosen from the backing filesystem, or an override. */
  reason: string;
  /** The store's recorded driver, when this one overrides it. */
  overrides?: SnapshotterName;
}

/** A snapshot of any backend of the store. */
export interface SnapshotEntry extends Info {
  snapshotter: SnapshotterName;
  /** Where it is mounted by stratum. */
  mountedAt: string[];
}

export interface InspectResult extends StoredImage {
  /** The image ID (config digest), as `images` shows it. */
  id: Digest;
  /** The registry digests the image is known by (`repo@sha256:…`). */
  repoDigests: string[];
  /** chainIDs of the layers, oldest first: the names of its committed snapshots. */
  chainIds: Digest[];
  /** Docker's GraphDriver: the driver and, for an unpacked image, where its layers are. */
  graphDriver: { name: SnapshotterName; unpacked: boolean; data: Record<string, string> };
}

export interface EngineGcOptions {
  dryRun?: boolean;
  /** Also untag every image no mount or writable snapshot uses (docker's `image prune -a`). */
  all?: boolean;
}

export interface EngineGcResult extends GcResult {
  /** Tags removed by `all`. */
  untagged: string[];
  /** Layer snapshots no image needed. */
  snapshots: CollectedSnapshot[];
  /** Temporaries of dead processes (extract, commit and view leftovers, their mounts). */
  reclaimed: ReclaimedTemporaries;
  /** Mount records whose mount was gone. */
  staleMounts: MountRecord[];
  warnings: string[];
}

export interface EngineUsage extends StoreUsage {
  snapshots: Array<SnapshotEntry & Usage>;
  /** Bytes of all snapshots' own data. */
  snapshotBytes: number;
  /** Layer snapshots `gc` would remove (no image needs them), and their bytes. */
  reclaimableSnapshots: { count: number; bytes: number };
  /** Images a mount or a writable snapshot uses (docker's ACTIVE images: those with containers). */
  activeImages: string[];
  /** Per image (same order as `images`): its unpacked size on the driver, shared and unique. */
  unpacked: Array<{ name: string; unpacked: boolean; size: number; sharedSize: number; uniqueSize: number }>;
}

export interface EngineInfo {
  storeRoot: string;
  driver: DriverChoice;
  /** The store's storage options (daemon.json's storage-opts), as recorded. */
  storageOpts: string[];
  /** Docker's storage-driver lines (Backing Filesystem, Supports d_type, …) for this driver. */
  driverStatus: Array<[string, string]>;
  backingFilesystem: string;
  supportsDType: boolean;
  images: number;
  blobs: { count: number; bytes: number };
  snapshots: { count: number; bytes: number; bySnapshotter: Record<string, number> };
  mounts: number;
  kernel: { maxOverlayLowers: number };
}

/**
 * One object that owns a store: its content, its registry client, its storage driver and every
 * snapshotter its snapshots live in, its mounts and its garbage collection (containerd's Client
 * is the model). The stratum CLI is a thin shell over it; a build tool uses it the same way:
 *
 *   const engine = await Engine.open({ root: '/var/lib/stratum' });
 *   await engine.pull('ubuntu:15.04');
 *   await engine.mount('ubuntu:15.04', '/mnt/rootfs', { rw: 'build-1' });
 *   …
 *   await engine.close();
 */
export class Engine {
  readonly mounts: MountTable;
  private client?: RegistryClient;
  private readonly retiredClients: RegistryClient[] = [];
  private registryConfigCache?: RegistryConfig;
  private driverChoice?: Promise<DriverChoice>;
  private readonly opened = new Map<string, Promise<Snapshotter>>();
  private readonly env: NodeJS.ProcessEnv;
  private closed = false;

  private constructor(
    readonly store: OciStore,
    private readonly options: EngineOptions,
  ) {
    this.env = options.env ?? process.env;
    this.mounts = new MountTable(store.root);
  }

  /** Opens (creating if needed) the store at `options.root`. */
  static async open(options: EngineOptions = {}): Promise<Engine> {
    const env = options.env ?? process.env;
    const root = options.root ?? defaultStoreRoot(env);
    if (options.mustExist && !existsSync(resolve(root))) throw new NotFoundError(`no store at ${resolve(root)}: nothing was pulled there; check the path`);
    const store = await OciStore.open(root);
    return new Engine(store, options);
  }

  /** The store's directory. */
  get root(): string {
    return this.store.root;
  }

  private warn(message: string): void {
    this.options.onWarning?.(message);
  }

  // ---- registry ----

  /** The registry settings in effect (mirrors, insecure hosts, concurrency) after every source is merged. */
  async registryConfig(): Promise<RegistryConfig> {
    this.registryConfigCache ??= await resolveRegistryConfig(this.options, this.env);
    return this.registryConfigCache;
  }

  /** The registry client, made on first use. */
  async registry(): Promise<RegistryClient> {
    this.client ??= new RegistryClient({
      config: await this.registryConfig(),
      credentials: this.options.credentials ?? new DockerConfigCredentials(),
      env: this.env,
      ...(this.options.onDebug ? { log: this.options.onDebug } : {}),
    });
    return this.client;
  }

  // ---- storage driver and snapshotters ----

  private snapshotsDir(name: SnapshotterName): string {
    return join(this.store.root, 'snapshots', name);
  }

  /** Where snapshots live when not under the store: `snapshotRoot`, else $STRATUM_SNAPSHOT_ROOT. */
  private snapshotRootOverride(): string | undefined {
    return this.options.snapshotRoot ?? (this.env.STRATUM_SNAPSHOT_ROOT || undefined);
  }

  /**
   * The storage driver this Engine unpacks into, chosen once per store as Docker's daemon does:
   * an override (`storageDriver`, $STRATUM_SNAPSHOTTER) is checked and used for this Engine only;
   * otherwise the one recorded in `<store>/stratum.json`; otherwise (first use) the one a store
   * made before that record existed used, else the backend that matches the backing filesystem
   * (btrfs, zfs), else overlay after a real test mount, else native — and it is recorded.
   */
  driver(): Promise<DriverChoice> {
    this.driverChoice ??= this.chooseDriver();
    return this.driverChoice;
  }

  private async chooseDriver(): Promise<DriverChoice> {
    const config = await readStoreConfig(this.store.root);
    const saved = typeof config['storage-driver'] === 'string' && config['storage-driver'] !== '' ? normalizeDriverName(config['storage-driver']) : undefined;
    const fromEnv = this.env.STRATUM_SNAPSHOTTER;
    const requested = this.options.storageDriver ?? (fromEnv ? fromEnv : undefined);
    const source = this.options.storageDriver !== undefined ? (this.options.storageDriverSource ?? "the Engine's options") : '$STRATUM_SNAPSHOTTER';
    const rootFor = (name: SnapshotterName) => this.snapshotRootOverride() ?? this.snapshotsDir(name);
    if (this.options.storageOpts !== undefined) {
      await validateStorageOpts(this.options.storageOpts);
      const recorded = config['storage-opts'];
      if (recorded !== undefined && JSON.stringify(recorded) !== JSON.stringify(this.options.storageOpts)) {
        this.warn(`the store's recorded storage-opts hold (${recorded.join(', ') || 'none'}), not the ones given; stratum migrate --to DRIVER --storage-opt … changes them with the driver`);
      }
    }
    // Why it was chosen is kept beside it, so `info` can still say so later.
    const opts = this.options.storageOpts !== undefined && config['storage-opts'] === undefined ? { 'storage-opts': this.options.storageOpts } : {};
    const record = async (name: SnapshotterName, why: string) => writeStoreConfig(this.store.root, { ...config, 'storage-driver': name, 'storage-driver-chosen': why, ...opts });

    if (requested !== undefined) {
      const name = normalizeDriverName(requested);
      await mkdirAll(rootFor(name));
      const checked = await chooseStorageDriver({ root: rootFor(name), requested: name });
      if (saved === undefined) {
        await record(checked.name, `${source}: ${checked.reason}`);
        return { name: checked.name, root: rootFor(checked.name), reason: `${source} (${checked.reason}); recorded as the store's driver` };
      }
      if (saved !== checked.name) {
        this.warn(`using the ${checked.name} storage driver (${source}), not the store's ${saved}`);
        return { name: checked.name, root: rootFor(checked.name), reason: `${source}, overriding the store's ${saved}`, overrides: saved };
      }
      return { name: saved, root: rootFor(saved), reason: `${source} (the store's driver too)` };
    }
    if (saved !== undefined) {
      const why = typeof config['storage-driver-chosen'] === 'string' ? `; chosen on first use: ${config['storage-driver-chosen']}` : '';
      return { name: saved, root: rootFor(saved), reason: `the store's driver (${join(this.store.root, 'stratum.json')})${why}` };
    }

    // A store made before drivers were recorded: the backend that holds its snapshots.
    const existing = await this.existingBackends();
    if (existing.length === 1) {
      const name = existing[0]!;
      const why = `the backend of the store's existing snapshots`;
      await record(name, why);
      return { name, root: rootFor(name), reason: `${why}; recorded as the store's driver` };
    }
    const probeRoot = this.snapshotRootOverride() ?? join(this.store.root, 'snapshots');
    await mkdirAll(probeRoot);
    const chosen = await chooseStorageDriver({ root: probeRoot });
    await record(chosen.name, chosen.reason);
    return { name: chosen.name, root: rootFor(chosen.name), reason: `${chosen.reason}; recorded as the store's driver` };
  }

  /** Backends that have a snapshot directory in this store (`<root>/snapshots/<name>`) with snapshots in it. */
  private async existingBackends(): Promise<SnapshotterName[]> {
    const out: SnapshotterName[] = [];
    for (const name of SNAPSHOTTER_NAMES) {
      const entries = await readdir(join(this.snapshotsDir(name), 'snapshots')).catch(() => [] as string[]);
      if (entries.length > 0) out.push(name);
    }
    return out;
  }

  /** The store's storage options: the recorded ones, else this Engine's (a store whose driver is not recorded yet). */
  private async storageOpts(): Promise<string[]> {
    return (await readStoreConfig(this.store.root))['storage-opts'] ?? this.options.storageOpts ?? [];
  }

  /** `storageOpts`: for a driver the store is not recorded with yet (migrate's target); default the store's. */
  private openAt(name: SnapshotterName, root: string, reclaim: boolean, storageOpts?: readonly string[]): Promise<Snapshotter> {
    const key = resolve(root);
    let opened = this.opened.get(key);
    if (!opened) {
      opened = (storageOpts ? Promise.resolve(storageOpts) : this.storageOpts()).then((opts) => openSnapshotter(name, root, { reclaim, storageOpts: opts }));
      opened.catch(() => this.opened.delete(key));
      this.opened.set(key, opened);
    }
    return opened;
  }

  /** Runs `fn`; when `signal` fired, whatever it threw becomes one AbortedError (ERR_ABORTED) carrying the signal's reason. */
  private async cancellable<T>(signal: AbortSignal | undefined, what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (signal?.aborted && !(err instanceof AbortedError)) throw new AbortedError(what, signal.reason);
      throw err;
    }
  }

  /** The snapshotter of the store's driver (what pull, unpack, mount and export use). */
  async snapshotter(): Promise<Snapshotter> {
    this.checkOpen();
    const choice = await this.driver();
    if (this.options.batchPoolThreads) loadNative().batchPoolThreads();
    if (choice.name === 'zfs') await ensureZfsRoot(choice.root, await this.storageOpts());
    return this.openAt(choice.name, choice.root, true);
  }

  /**
   * Every snapshotter that holds snapshots of this store: the driver's, and every backend with a
   * directory under `<root>/snapshots`, so a key is found whichever driver made it. One that
   * cannot be opened on this machine (a btrfs root off btrfs) is skipped with a warning.
   */
  async snapshotters(): Promise<Snapshotter[]> {
    this.checkOpen();
    const roots = new Map<string, SnapshotterName>();
    for (const name of SNAPSHOTTER_NAMES) if (existsSync(this.snapshotsDir(name))) roots.set(resolve(this.snapshotsDir(name)), name);
    const override = this.snapshotRootOverride();
    if (override && existsSync(override)) {
      const choice = await this.driver();
      roots.set(resolve(choice.root), choice.name);
    }
    for (const record of await this.mounts.list()) if (existsSync(record.snapshotRoot)) roots.set(resolve(record.snapshotRoot), record.snapshotter);
    const out: Snapshotter[] = [];
    for (const [root, name] of roots) {
      try {
        out.push(await this.openAt(name, root, false));
      } catch (err) {
        this.warn(`cannot open the ${name} snapshotter at ${root}: ${(err as Error).message}`);
      }
    }
    return out;
  }

  /** The snapshot `key` in whichever backend of the store holds it. */
  async findSnapshot(key: string): Promise<{ snapshotter: Snapshotter; info: Info }> {
    for (const snapshotter of await this.snapshotters()) {
      try {
        return { snapshotter, info: await snapshotter.stat(key) };
      } catch (err) {
        if (!isStratumError(err, 'ERR_NOT_FOUND')) throw err;
      }
    }
    // One message whatever the backends: scripts match `snapshot "K" not found`.
    throw new NotFoundError(`snapshot ${JSON.stringify(key)} not found`);
  }

  private async checkKeyFree(key: string): Promise<void> {
    const found = await this.findSnapshot(key).catch((err: unknown) => {
      if (isStratumError(err, 'ERR_NOT_FOUND')) return undefined;
      throw err;
    });
    if (found) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)} already exists in this store (${found.snapshotter.name}, ${found.info.kind}): a key names one snapshot in one store`);
  }

  // ---- images ----

  /**
   * A stored image by any name `images` and `pull` show: a tag in any spelling, `sha256:<image
   * ID>`, an IMAGE ID prefix, `repo@sha256:<digest>`, a short name when unambiguous; a tag naming
   * an index gives the host's platform (or `platform`).
   */
  async resolveImage(name: string, options: { platform?: Platform } = {}): Promise<ListedImage> {
    const { resolveImage } = await import('../image/resolve.js');
    return resolveImage(this.store, name, options);
  }

  /** Every image in the store (an index: each platform present), and the tags that could not be read. */
  async listImages(): Promise<ImageListing> {
    const { listImages } = await import('../image/resolve.js');
    return listImages(this.store);
  }

  /**
   * `docker tag`: names `target` the image `source` resolves to (a name, an image ID or prefix,
   * a digest); an existing `target` tag is moved. Returns the stored target name.
   */
  async tag(source: string, target: string): Promise<string> {
    const ref = parseReference(target);
    if (ref.digest !== undefined) throw new InvalidArgumentError(`cannot tag ${target}: a tag cannot name a digest (give NAME[:TAG])`);
    const image = await this.resolveImage(source);
    const descriptor = image.index ?? image.descriptor;
    const name = ref.toString();
    await this.store.setTag(name, descriptor);
    return name;
  }

  /**
   * `docker manifest create` / ggcr's `mutate.AppendManifests`: an OCI image index of stored
   * images (each entry's platform from its config), tagged `name`. Its blob is leased until the
   * tag holds it. Returns the index's descriptor.
   */
  async createIndex(name: string, images: string[], options: { annotations?: Record<string, string> } = {}): Promise<Descriptor> {
    if (images.length === 0) throw new InvalidArgumentError(`an index needs at least one image`);
    const manifests: Descriptor[] = [];
    for (const input of images) {
      const image = await this.resolveImage(input);
      const { os, architecture, variant } = image.config;
      const entry: Descriptor = { mediaType: image.descriptor.mediaType, digest: image.descriptor.digest, size: image.descriptor.size, platform: { os, architecture, ...(variant ? { variant } : {}) } };
      const clash = manifests.find((m) => m.platform?.os === os && m.platform.architecture === architecture && m.platform.variant === variant);
      if (clash) throw new InvalidArgumentError(`cannot index ${input}: its platform ${os}/${architecture}${variant ? `/${variant}` : ''} is already given by ${clash.digest}`);
      manifests.push(entry);
    }
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests, ...(options.annotations && Object.keys(options.annotations).length > 0 ? { annotations: options.annotations } : {}) };
    const bytes = Buffer.from(JSON.stringify(index));
    const { Lease } = await import('../content/lease.js');
    const lease = await Lease.create(this.store.root);
    try {
      const digest = digestOf(bytes);
      await lease.add(digest);
      await this.store.put(bytes, digest);
      const descriptor: Descriptor = { mediaType: MediaType.OciIndex, digest, size: bytes.length };
      await this.store.setTag(parseReference(name).toString(), descriptor);
      return descriptor;
    } finally {
      await lease.release();
    }
  }

  /**
   * `docker rmi`: a tag removes that tag; an image ID (or prefix) removes every tag of that image,
   * which needs `force` when there are several. Blobs and snapshots go at the next `gc`.
   */
  async removeImage(name: string, options: { force?: boolean } = {}): Promise<string[]> {
    const tags = await this.store.listTags();
    const ref = (() => {
      try {
        return parseReference(name).toString();
      } catch {
        return undefined;
      }
    })();
    const exact = tags.find((t) => t.name === name || t.name === ref);
    let names: string[];
    if (exact) names = [exact.name];
    else {
      const image = await this.resolveImage(name);
      const id = image.configDescriptor.digest;
      const { images } = await this.listImages();
      names = [...new Set(images.filter((i) => i.configDescriptor.digest === id).map((i) => i.name))];
      const byId = /^(?:sha256:)?[0-9a-f]{4,64}$/.test(name.toLowerCase()) && !name.includes('/');
      if (byId && names.length > 1 && !options.force) {
        throw new FailedPreconditionError(`unable to remove image ${name} (must be forced): it is tagged in ${names.length} repositories (${names.sort().join(', ')})`);
      }
      if (!byId) names = [image.name];
    }
    const removed: string[] = [];
    for (const tag of names) if (await this.store.removeTag(tag)) removed.push(tag);
    return removed;
  }

  /** Pulls an image into the store and (unless `unpack: false`) unpacks it on the store's driver. */
  async pull(
    reference: string | Reference,
    options: {
      platform?: Platform;
      unpack?: boolean;
      maxLayers?: number;
      /** Refuse the image unless the registry holds a signature by this public key (PEM) for the digest the reference resolves to; checked before any layer is fetched (see verifyImage). */
      verifyKey?: string | Buffer;
      onEvent?: (event: PullEvent) => void;
      signal?: AbortSignal;
    } = {},
  ): Promise<PullResult & { snapshotter?: SnapshotterName }> {
    return this.cancellable(options.signal, `pull of ${String(reference)}`, () => this.pullImage(reference, options));
  }

  private async pullImage(
    reference: string | Reference,
    options: { platform?: Platform; unpack?: boolean; maxLayers?: number; verifyKey?: string | Buffer; onEvent?: (event: PullEvent) => void; signal?: AbortSignal } = {},
  ): Promise<PullResult & { snapshotter?: SnapshotterName }> {
    this.checkOpen();
    if (this.options.batchPoolThreads) loadNative().batchPoolThreads();
    const client = await this.registry();
    const config = await this.registryConfig();
    const snapshotter = options.unpack === false ? undefined : await this.snapshotter();
    const beforeFetch = options.verifyKey !== undefined ? await this.signatureCheck(reference, options.verifyKey, options.signal) : undefined;
    // The manifest's round trips (probe, token, manifest) run while the pull's modules load. Only
    // now: the request cannot be withdrawn, and a pull refused before it (its driver, its key)
    // must end at once, not when a slow registry answers.
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const resolving = client.resolve(ref);
    resolving.catch(() => {}); // awaited by pull()
    const { pull } = await import('../image/pull.js');
    const result = await pull(ref, {
      store: this.store,
      client,
      resolving,
      ...(options.platform ? { platform: options.platform } : {}),
      ...(config.concurrency !== undefined ? { concurrency: config.concurrency } : {}),
      ...(options.maxLayers !== undefined ? { maxLayers: options.maxLayers } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(snapshotter ? { unpack: { snapshotter } } : {}),
      ...(beforeFetch ? { beforeFetch } : {}),
    });
    // Where each layer came from: a later push to that registry mounts it instead of uploading it.
    const { recordSources } = await import('../content/sources.js');
    await recordSources(this.store.root, result.layers.map((l) => ({ digest: l.digest, source: result.reference })));
    return { ...result, ...(snapshotter ? { snapshotter: snapshotter.name as SnapshotterName } : {}) };
  }

  /** Unpacks a stored image on the store's driver; returns its top chainID (undefined: no layers). */
  async unpack(name: string, options: { onEvent?: (e: UnpackEvent) => void } = {}): Promise<Digest | undefined> {
    const image = await this.resolveImage(name);
    const { ensureUnpacked } = await import('../image/rootfs.js');
    return ensureUnpacked(this.store, await this.snapshotter(), image, options.onEvent);
  }

  /**
   * Pushes a stored image to a registry (default: its own name), then the referrers stored with it
   * (signature bundles, cosign signatures, attach()'s artifacts), unless `referrers: false`.
   */
  async push(source: string, destination?: string | Reference, options: { onEvent?: (e: PushEvent) => void; referrers?: boolean; signal?: AbortSignal } = {}): Promise<PushResult & { referrers: PushedReferrer[] }> {
    const result = await this.pushStored(source, destination, options);
    if (options.referrers === false) return { ...result, referrers: [] };
    const { findStored } = await import('../referrers/local.js');
    const stored = await findStored(this.store, source);
    if (!stored) return { ...result, referrers: [] };
    const { pushStoredReferrers } = await import('../image/push-referrers.js');
    const client = await this.registry();
    const referrers = await this.cancellable(options.signal, `push of the referrers of ${source}`, () => pushStoredReferrers(this.store, client, stored.entry, result.digest, parseReference(result.destination), options.signal));
    return { ...result, referrers };
  }

  private async pushStored(source: string, destination: string | Reference | undefined, options: { onEvent?: (e: PushEvent) => void; signal?: AbortSignal }): Promise<PushResult> {
    // A tag naming an index stored whole goes up whole (it may lack this host's platform).
    const { parsesAs } = await import('../image/resolve.js');
    const tagged = await this.store.getTag(parsesAs(source)?.toString() ?? source);
    if (tagged && isIndexMediaType(tagged.descriptor.mediaType) && (await this.wholeIndex(tagged.descriptor))) return this.pushIndex(tagged.name, destination, options);
    const image = await this.resolveImage(source);
    if (image.index && (await this.wholeIndex(image.index))) return this.pushIndex(image.name, destination, options);
    const dest = destination === undefined ? undefined : typeof destination === 'string' ? parseReference(destination) : destination;
    const config = await this.registryConfig();
    const { pushImage } = await import('../image/push.js');
    const client = await this.registry();
    return this.cancellable(options.signal, `push of ${source}`, () => pushImage(image.name, dest, {
      store: this.store,
      client,
      ...(config.concurrency !== undefined ? { concurrency: config.concurrency } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    }));
  }

  /** Whether every manifest an index lists is in the store (an index pulled for one platform is not). */
  private async wholeIndex(index: Descriptor): Promise<boolean> {
    const parsed = JSON.parse((await this.store.read(index.digest)).toString('utf8')) as { manifests?: Descriptor[] };
    for (const child of parsed.manifests ?? []) if (!(await this.store.has(child.digest))) return false;
    return true;
  }

  /** An index stored whole goes up whole: every child's blobs and manifest first, then the index (a copy). */
  private async pushIndex(name: string, destination: string | Reference | undefined, options: { onEvent?: (e: PushEvent) => void; signal?: AbortSignal }): Promise<PushResult> {
    const dest = destination === undefined ? parseReference(name) : typeof destination === 'string' ? parseReference(destination) : destination;
    let pushed = 0;
    let bytesUploaded = 0;
    const result = await this.copy(`store:${name}`, `docker://${dest.toString()}`, {
      all: true,
      ...(options.signal ? { signal: options.signal } : {}),
      onEvent: (e) => {
        if (e.type === 'done') {
          pushed++;
          bytesUploaded += e.size;
          options.onEvent?.({ type: 'pushed', digest: e.digest, size: e.size });
        } else if (e.type === 'exists') options.onEvent?.({ type: 'exists', digest: e.digest, size: e.size });
        else if (e.type === 'mounted') options.onEvent?.({ type: 'mounted', digest: e.digest, size: e.size, from: e.from });
      },
    });
    const size = (await this.store.info(result.digest))?.size ?? 0;
    return { source: name, destination: dest.toString(), digest: result.digest, size, pushed, mounted: result.mounted, existed: result.existed, bytesUploaded };
  }

  // ---- registry-side operations (issue 10): thin delegations to src/image/copy.ts,
  // src/image/inspect-remote.ts and src/registry/login.ts, with this Engine's registry settings.

  /** Every tag of `repository` at its registry (`127.0.0.1:5000/library/app`, `ubuntu`), all pages followed. */
  async listTags(repository: string, options: { pageSize?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    const client = await this.registry();
    return this.cancellable(options.signal, `tag listing of ${repository}`, () => client.listTags(parseReference(repository), options));
  }

  /** A registry image's manifest (bytes as served), index and config, verified, without pulling it (`skopeo inspect`). */
  async inspectRemote(reference: string | Reference, options: InspectRemoteOptions = {}): Promise<RemoteInspection> {
    const { inspectRemote } = await import('../image/inspect-remote.js');
    const client = await this.registry();
    return this.cancellable(options.signal, `inspection of ${String(reference)}`, () => inspectRemote(client, reference, options));
  }

  /**
   * Copies an image without unpacking it (`skopeo copy`): `docker://REF` or a bare reference, `oci:DIR[:TAG]`,
   * `store:NAME` (this Engine's store) on either side; see copyImage.
   */
  async copy(source: string | CopyLocation, destination: string | CopyLocation, options: CopyOptions = {}): Promise<CopyResult> {
    this.checkOpen();
    const config = await this.registryConfig();
    const { copyImage } = await import('../image/copy.js');
    const context = { client: await this.registry(), store: this.store, ...(config.concurrency !== undefined ? { concurrency: config.concurrency } : {}) };
    return this.cancellable(options.signal, `copy of ${String(source)}`, () => copyImage(source, destination, context, options));
  }

  // ---- signatures (issue 11): thin delegations to src/sign/ (Sigstore bundles as OCI referrers,
  // cosign's .sig tags), with this Engine's store and registry client.

  /**
   * Signs the manifest digest of image `ref` with `signer` (keySigner(pem) for a local ECDSA P-256
   * key; any @sigstore/sign Signer: KMS, HSM, keylessSigner). `format: 'bundle'` (default) makes a
   * Sigstore bundle stored as an OCI artifact whose `subject` is the image (cosign v3's layout);
   * `'cosign'` the classic `sha256-<hex>.sig` simple-signing manifest. A stored image keeps its
   * signature in the store (GC keeps it while the image is tagged) and `push` uploads it too; an
   * image not in the store is signed at its registry. See signImage.
   */
  async sign(ref: string, signer: ImageSigner, options: SignOptions = {}): Promise<SignResult> {
    const { signImage } = await import('../sign/sign.js');
    return signImage({ store: this.store, client: await this.registry() }, ref, signer, options);
  }

  /**
   * Checks that image `ref` is signed by `options.key` (both formats; in the store or at the
   * registry, see VerifyImageOptions.source). Throws SignatureError with the reason: missing,
   * bad-signature, other-digest, other-key. (`verify()` is the store's fsck.)
   */
  async verifyImage(ref: string, options: VerifyImageOptions): Promise<VerifyImageResult> {
    const { verifyImageSignature } = await import('../sign/sign.js');
    return verifyImageSignature({ store: this.store, client: await this.registry() }, ref, options);
  }

  /**
   * `oras attach`: stores `options.blob` (or the file at `options.path`) as an OCI artifact about
   * image `ref`: an image manifest with `artifactType`, the empty config
   * (`application/vnd.oci.empty.v1+json`), the blob as its one layer and `subject` = the image's
   * manifest descriptor. A stored image keeps it (GC keeps it while the image is tagged; push
   * carries it along); when `ref` names a registry (`127.0.0.1:5000/app:1`) it is pushed there
   * too, listed through the registry's referrers API or, without one, the referrers tag schema
   * (`sha256-<hex>`). Throws NotFoundError for an image neither stored nor at a named registry,
   * InvalidArgumentError for an unreadable file or a malformed artifact type. See attachArtifact.
   */
  async attach(ref: string, options: AttachOptions): Promise<AttachResult> {
    const { attachArtifact } = await import('../referrers/attach.js');
    const client = await this.registry();
    return this.cancellable(options.signal, `attach to ${ref}`, () => attachArtifact({ store: this.store, client }, ref, options));
  }

  /**
   * `oras discover`: the artifacts that refer to image `ref` (signatures, SBOMs, attestations,
   * attach()'s), optionally of one `artifactType`: those kept in the store with a stored image,
   * and those the registry lists (referrers API, else the `sha256-<hex>` tag) when `ref` names a
   * registry. Each says where it was found. See listReferrers.
   */
  async referrers(ref: string, options: ReferrersOptions = {}): Promise<Referrer[]> {
    const { listReferrers } = await import('../referrers/attach.js');
    const client = await this.registry();
    return this.cancellable(options.signal, `referrers of ${ref}`, () => listReferrers({ store: this.store, client }, ref, options));
  }

  /** The pull hook of `verifyKey`: the registry's signatures of the resolved digest, checked before any layer moves. */
  private async signatureCheck(reference: string | Reference, key: string | Buffer, signal?: AbortSignal): Promise<(resolved: ResolvedManifest) => Promise<void>> {
    const { verifyResolved } = await import('../sign/sign.js');
    const { readPublicKey } = await import('../sign/key.js');
    const publicKey = readPublicKey(key);
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const client = await this.registry();
    return async (resolved) => void (await verifyResolved(client, ref, resolved.descriptor, resolved.bytes, publicKey, signal));
  }

  /**
   * Checks credentials against `registry` and stores them as `docker login` does (config.json of
   * $DOCKER_CONFIG or ~/.docker, where this Engine reads them; see login()).
   */
  async login(registry: string, credentials: LoginCredentials, options: Omit<LoginOptions, 'registryConfig'> = {}): Promise<LoginResult> {
    const { login } = await import('../registry/login.js');
    const result = await login(registry, credentials, { registryConfig: await this.registryConfig(), ...options });
    this.forgetCredentials();
    return result;
  }

  /** Removes stored credentials of `registry` as `docker logout` does; see logout(). */
  async logout(registry: string, options: CredentialFileOptions = {}): Promise<LogoutResult> {
    const { logout } = await import('../registry/login.js');
    const result = await logout(registry, options);
    this.forgetCredentials();
    return result;
  }

  /**
   * The registry client caches what config.json said and the tokens it got: after login/logout the
   * next call gets a new client. The old one may still serve a call in flight; close() ends it.
   */
  private forgetCredentials(): void {
    if (this.options.credentials || !this.client) return;
    this.retiredClients.push(this.client);
    this.client = undefined;
  }

  /** The steps an image was built from, newest first, with the layer each made (`docker history`). */
  async history(name: string, options: { platform?: Platform } = {}): Promise<HistoryRow[]> {
    const { imageHistory } = await import('../image/history.js');
    const image = await this.resolveImage(name, options);
    const rows = imageHistory(image);
    const chain = chainIds(image.config.rootfs.diff_ids);
    for (const row of rows) {
      const key = row.layerIndex !== undefined ? chain[row.layerIndex] : undefined;
      if (key === undefined) continue;
      try {
        row.unpackedSize = (await this.snapshotUsage(key)).size;
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    return rows;
  }

  /** The image with its ID, chainIDs and, when unpacked, where its layers are (Docker's GraphDriver). */
  async inspect(name: string, options: { platform?: Platform } = {}): Promise<InspectResult> {
    const image = await this.resolveImage(name, options);
    const chain = chainIds(image.config.rootfs.diff_ids);
    const driver = await this.driver();
    const data: Record<string, string> = {};
    let unpacked = false;
    const top = chain.at(-1);
    if (top !== undefined) {
      const snapshotter = await this.snapshotter();
      try {
        await snapshotter.stat(top);
        unpacked = true;
        Object.assign(data, (await snapshotter.driverData?.(top)) ?? {});
        const mounted = (await this.mounts.list()).find((r) => r.image === image.name && r.snapshotRoot === resolve(driver.root));
        if (snapshotter.applyMode !== 'full') data.MergedDir = mounted?.target ?? '';
      } catch (err) {
        if (!isStratumError(err, 'ERR_NOT_FOUND')) throw err;
      }
    }
    const source = image.descriptor.annotations?.['dev.stratum.source.digest'] ?? image.descriptor.digest;
    return {
      ...image,
      id: image.configDescriptor.digest,
      repoDigests: [`${parseReference(image.name).name}@${source}`],
      chainIds: chain,
      graphDriver: { name: driver.name, unpacked, data },
    };
  }

  /**
   * `docker commit` for writable snapshot `key` (any backend of the store): its changes become a
   * new layer on the image it was made from, tagged `name`. The snapshot stays, mounted if it was.
   */
  async commitImage(
    key: string,
    name: string,
    options: { image?: string; message?: string; author?: string; createdBy?: string; changes?: string[]; epoch?: number } = {},
  ): Promise<CommitImageResult> {
    const { snapshotter } = await this.findSnapshot(key);
    const { commitImage } = await import('../image/commit.js');
    return commitImage({ store: this.store, snapshotter, key, name, ...options });
  }

  // ---- image mutation (issue 11): a thin delegation to src/image/mutate.ts ----

  /**
   * A stored image (any name resolveImage takes; `scratch` for the empty image of `platform`,
   * default linux/amd64) as an immutable value to change as go-containerregistry's `mutate`
   * does: withConfig, withChanges, appendLayer({ dir | tar | snapshot | diffOf }), rebase…, then
   * `write(tag)`. `epoch` (seconds since 1970, as SOURCE_DATE_EPOCH) makes the layers appended
   * and the dates reproducible.
   */
  async image(name: string, options: { platform?: Platform; epoch?: number } = {}): Promise<MutableImage> {
    const { MutableImage } = await import('../image/mutate.js');
    const ctx = { store: this.store, findSnapshot: (key: string) => this.findSnapshot(key) };
    const image = name === 'scratch' ? MutableImage.scratch(ctx, options.platform) : await MutableImage.load(ctx, await this.resolveImage(name, options.platform ? { platform: options.platform } : {}));
    return image.withEpoch(options.epoch);
  }

  /** Writes the image's flattened root filesystem as a tar to `out`. */
  async export(name: string, out: Writable, options: { platform?: Platform } = {}): Promise<{ entries: number }> {
    const image = await this.resolveImage(name, options);
    const [{ withImageRootfs }, { writeTreeAsTar }] = await Promise.all([import('../image/rootfs.js'), import('../image/export.js')]);
    return withImageRootfs(this.store, await this.snapshotter(), image, (dir) => writeTreeAsTar(dir, out));
  }

  /**
   * `docker save`: writes the images `names` resolve to as one tar archive to `out` (ended when
   * done), blobs streamed from the store, each once. `format` `docker` (default) is Docker 25's
   * layout, loadable by Docker 20.10 and later; `oci` an OCI archive as skopeo writes. An unknown
   * name fails before anything is written.
   */
  async save(names: string[], out: Writable, options: SaveOptions = {}): Promise<SaveResult> {
    const { saveImages } = await import('../image/archive/save.js');
    return saveImages(this.store, names, out, options);
  }

  /**
   * `docker load`: reads a `docker save` archive (Docker 20.10's or 25's) or an OCI archive, plain
   * or compressed, from `input` in one pass, and tags its images once all of them check out.
   */
  async load(input: Readable, options: LoadOptions = {}): Promise<LoadResult> {
    const { loadArchive } = await import('../image/archive/load.js');
    return loadArchive(this.store, input, options);
  }

  // ---- mounts ----

  private async refuseTakenTarget(target: string): Promise<void> {
    const record = await this.mounts.get(target);
    if (record && (await isMountPoint(target))) throw new AlreadyExistsError(`${target} is already a stratum mount (snapshot ${record.key}); unmount it first`);
    if (await isMountPoint(target)) throw new FailedPreconditionError(`${target} is already a mount point that stratum did not make; refusing to mount over it`);
  }

  /**
   * Mounts an image at `target`: a read-only view (removed by unmount), or with `rw` a writable
   * snapshot of that key (kept by unmount, for commitImage). Unpacks what is missing first.
   */
  async mount(name: string, target: string, options: { rw?: string; onEvent?: (e: UnpackEvent) => void; platform?: Platform } = {}): Promise<MountRecord> {
    const mountpoint = resolve(target);
    const image = await this.resolveImage(name, options.platform ? { platform: options.platform } : {});
    await this.refuseTakenTarget(mountpoint);
    if (options.rw !== undefined) await this.checkKeyFree(options.rw);
    const snapshotter = await this.snapshotter();
    const { mountImage } = await import('../image/rootfs.js');
    const mounted = await mountImage(this.store, snapshotter, image, mountpoint, {
      ...(options.rw !== undefined ? { rwKey: options.rw } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
    try {
      return await this.mounts.add({
        target: mounted.target,
        snapshotter: snapshotter.name as SnapshotterName,
        snapshotRoot: resolve(snapshotter.root),
        key: mounted.key,
        readonly: mounted.readonly,
        ownsSnapshot: mounted.readonly,
        image: image.name,
      });
    } catch (err) {
      await unmountAll(mounted.target, true).catch(() => {});
      if (mounted.readonly) await snapshotter.remove(mounted.key).catch(() => {});
      throw err;
    }
  }

  /**
   * Undoes a mount stratum made (and only such a one: a path without a record is refused and left
   * as it is). A view made for the mount is removed; a writable snapshot keeps its data.
   */
  async unmount(target: string): Promise<{ record: MountRecord; removedSnapshot: boolean; wasMounted: boolean }> {
    const mountpoint = resolve(target);
    const record = await this.mounts.get(mountpoint);
    if (!record) {
      const what = (await isMountPoint(mountpoint)) ? 'a mount point that stratum did not make' : 'not mounted by stratum';
      throw new FailedPreconditionError(`${mountpoint} is ${what} (no record in ${this.mounts.dir}); left as it is`);
    }
    return this.undoMount(record);
  }

  private async undoMount(record: MountRecord): Promise<{ record: MountRecord; removedSnapshot: boolean; wasMounted: boolean }> {
    const wasMounted = await isMountPoint(record.target);
    if (wasMounted) await unmountAll(record.target);
    let removedSnapshot = false;
    const snapshotter = existsSync(record.snapshotRoot) ? await this.openAt(record.snapshotter, record.snapshotRoot, false).catch(() => undefined) : undefined;
    if (snapshotter) {
      try {
        if (record.ownsSnapshot) {
          await snapshotter.remove(record.key);
          removedSnapshot = true;
        } else {
          const info = await snapshotter.stat(record.key);
          if (info.labels[MOUNTPOINT_LABEL] === record.target) await snapshotter.update({ name: record.key }, `labels.${MOUNTPOINT_LABEL}`);
        }
      } catch (err) {
        if (!isStratumError(err, 'ERR_NOT_FOUND')) throw err;
      }
    }
    await this.mounts.remove(record.target);
    return { record, removedSnapshot, wasMounted };
  }

  // ---- snapshots (containerd's verbs, over every backend of the store) ----

  /** Every snapshot of every backend matching any of `filters` (containerd's syntax), with where stratum has it mounted. */
  async listSnapshots(...filters: string[]): Promise<SnapshotEntry[]> {
    const records = await this.mounts.list();
    const out: SnapshotEntry[] = [];
    for (const snapshotter of await this.snapshotters()) {
      const root = resolve(snapshotter.root);
      await snapshotter.walk((info) => {
        const mountedAt = records.filter((r) => r.snapshotRoot === root && r.key === info.name).map((r) => r.target);
        out.push({ ...info, snapshotter: snapshotter.name as SnapshotterName, mountedAt });
      }, ...filters);
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A writable snapshot on `parent` (in the backend that holds the parent; the driver's without one), mounted at `target` if given. */
  prepare(key: string, parent?: string, options: SnapshotOptions & { target?: string } = {}): Promise<Mount[]> {
    return this.createSnapshot('active', key, parent, options);
  }

  /** A read-only snapshot of `parent`, mounted at `target` if given. */
  view(key: string, parent?: string, options: SnapshotOptions & { target?: string } = {}): Promise<Mount[]> {
    return this.createSnapshot('view', key, parent, options);
  }

  private async createSnapshot(kind: 'active' | 'view', key: string, parent: string | undefined, options: SnapshotOptions & { target?: string }): Promise<Mount[]> {
    await this.checkKeyFree(key);
    const snapshotter = parent !== undefined ? (await this.findSnapshot(parent)).snapshotter : await this.snapshotter();
    const target = options.target !== undefined ? resolve(options.target) : undefined;
    if (target !== undefined) await this.refuseTakenTarget(target);
    const labels = { ...(options.labels ?? {}), ...(target !== undefined ? { [MOUNTPOINT_LABEL]: target } : {}) };
    const mounts = kind === 'active' ? await snapshotter.prepare(key, parent, { labels }) : await snapshotter.view(key, parent, { labels });
    if (target !== undefined) {
      try {
        await mkdirAll(target);
        await mountAll(mounts, target);
        await this.mounts.add({ target, snapshotter: snapshotter.name as SnapshotterName, snapshotRoot: resolve(snapshotter.root), key, readonly: kind === 'view', ownsSnapshot: false });
      } catch (err) {
        await unmountAll(target, true).catch(() => {});
        await snapshotter.remove(key).catch(() => {});
        throw err;
      }
    }
    return mounts;
  }

  /** The mounts of snapshot `key`, whichever backend holds it. */
  async snapshotMounts(key: string): Promise<Mount[]> {
    return (await this.findSnapshot(key)).snapshotter.mounts(key);
  }

  /**
   * Commits active snapshot `key` as `name`. Its stratum mounts are undone first: a committed
   * snapshot is read-only, and an overlay still mounted on its upper directory would write into it.
   */
  async commitSnapshot(name: string, key: string, options: SnapshotOptions = {}): Promise<{ unmounted: string[] }> {
    const { snapshotter, info } = await this.findSnapshot(key);
    if (name !== key) await this.checkKeyFree(name);
    const unmounted: string[] = [];
    // Not active: the backend's commit refuses it, with nothing unmounted first.
    if (info.kind === 'active') {
      for (const record of await this.mounts.forSnapshot(resolve(snapshotter.root), key)) {
        await this.undoMount(record);
        unmounted.push(record.target);
      }
    }
    const labels = { ...info.labels };
    delete labels[MOUNTPOINT_LABEL];
    await snapshotter.commit(name, key, { labels: { ...labels, ...(options.labels ?? {}) } });
    return { unmounted };
  }

  /** Removes snapshot `key`; a mounted one is refused unless `force`, which unmounts it first. */
  async removeSnapshot(key: string, options: { force?: boolean } = {}): Promise<{ unmounted: string[] }> {
    const { snapshotter } = await this.findSnapshot(key);
    const records = await this.mounts.forSnapshot(resolve(snapshotter.root), key);
    const live: MountRecord[] = [];
    for (const r of records) if (await isMountPoint(r.target)) live.push(r);
    if (live.length > 0 && !options.force) {
      throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is mounted at ${live.map((r) => r.target).join(', ')}: unmount it first (or remove with --force)`);
    }
    const unmounted: string[] = [];
    for (const record of records) {
      if (await isMountPoint(record.target)) {
        await unmountAll(record.target);
        unmounted.push(record.target);
      }
      await this.mounts.remove(record.target);
    }
    await snapshotter.remove(key);
    return { unmounted };
  }

  /** Sets labels of snapshot `key` (containerd's fieldpaths: `labels.k`; a path without a value removes it). */
  async updateSnapshotLabels(key: string, labels: Record<string, string>, fieldpaths: string[]): Promise<Info> {
    return (await this.findSnapshot(key)).snapshotter.update({ name: key, labels }, ...fieldpaths);
  }

  /** Bytes and inodes of snapshot `key`'s own data (not its parents'). */
  async snapshotUsage(key: string): Promise<Usage> {
    return (await this.findSnapshot(key)).snapshotter.usage(key);
  }

  // ---- moving between drivers ----

  /**
   * `stratum migrate --to DRIVER`: re-unpacks every image from the stored blobs into driver `to`,
   * verifies each tree against the old driver's, switches the store's recorded driver, then removes
   * the old driver's snapshots; resumable after a kill (see migrateStore). Refuses an unknown
   * driver, the one in use, one that cannot work where the store is, mounted snapshots, and
   * snapshots no image carries (unless `force`).
   */
  async migrate(options: MigrateOptions): Promise<MigrateResult> {
    this.checkOpen();
    if (this.snapshotRootOverride() !== undefined) {
      throw new InvalidArgumentError('migrate moves snapshots between STORE/snapshots/<driver> directories; it cannot be used with --snapshot-root or $STRATUM_SNAPSHOT_ROOT');
    }
    const { migrateStore } = await import('./migrate.js');
    try {
      return await migrateStore(
        {
          storeRoot: this.store.root,
          store: this.store,
          recorded: async () => {
            const config = await readStoreConfig(this.store.root);
            const name = typeof config['storage-driver'] === 'string' && config['storage-driver'] !== '' ? normalizeDriverName(config['storage-driver']) : undefined;
            return { name: name ?? (await this.driver()).name, storageOpts: await this.storageOpts() };
          },
          rootFor: (name) => this.snapshotsDir(name),
          open: async (name, storageOpts) => {
            if (name === 'zfs') await ensureZfsRoot(this.snapshotsDir(name), storageOpts);
            return this.openAt(name, this.snapshotsDir(name), true, storageOpts);
          },
          forget: async (name) => {
            const key = resolve(this.snapshotsDir(name));
            const opened = this.opened.get(key);
            this.opened.delete(key);
            await (await opened?.catch(() => undefined))?.close();
          },
          listImages: () => this.listImages(),
          liveMounts: async () => {
            const live: MountRecord[] = [];
            for (const record of await this.mounts.list()) if (await isMountPoint(record.target)) live.push(record);
            return live;
          },
          record: async (name, storageOpts, why) => {
            const config = await readStoreConfig(this.store.root);
            await writeStoreConfig(this.store.root, { ...config, 'storage-driver': name, 'storage-opts': storageOpts, 'storage-driver-chosen': why });
          },
          removeRoot: async (name) => {
            // A zfs root is a dataset's mountpoint: the dataset stays, empty. A recursive remove never descends into a mount.
            const root = resolve(this.snapshotsDir(name));
            if (name === 'zfs' || !existsSync(root)) return;
            const mounted = await mountsUnder(await realpath(root));
            if (mounted.length > 0) this.warn(`the old ${name} root ${root} is left in place: ${mounted.join(', ')} still mounted there`);
            else await rm(root, { recursive: true, force: true });
          },
        },
        options,
      );
    } finally {
      this.driverChoice = undefined;
    }
  }

  // ---- usage, gc, verify, info ----

  /** `df`: the content store's usage, each snapshot's, and each image's unpacked size on the driver. */
  async usage(): Promise<EngineUsage> {
    const [{ storeUsage }, { neededChains, collectSnapshots }] = await Promise.all([import('../image/usage.js'), import('./snapshot-gc.js')]);
    const base = await storeUsage(this.store);
    const snapshots: Array<SnapshotEntry & Usage> = [];
    const sizes = new Map<string, Map<string, number>>();
    const byRoot = new Map<string, Snapshotter>();
    for (const s of await this.snapshotters()) byRoot.set(resolve(s.root), s);
    const records = await this.mounts.list();
    for (const [root, snapshotter] of byRoot) {
      const own = new Map<string, number>();
      sizes.set(root, own);
      const infos: Info[] = [];
      await snapshotter.walk((i) => void infos.push(i));
      for (const info of infos) {
        const usage = await snapshotter.usage(info.name).catch(() => ({ size: 0, inodes: 0 }));
        own.set(info.name, usage.size);
        const mountedAt = records.filter((r) => r.snapshotRoot === root && r.key === info.name).map((r) => r.target);
        snapshots.push({ ...info, ...usage, snapshotter: snapshotter.name as SnapshotterName, mountedAt });
      }
    }
    snapshots.sort((a, b) => a.snapshotter.localeCompare(b.snapshotter) || a.name.localeCompare(b.name));
    const driver = await this.driver();
    const own = sizes.get(resolve(driver.root)) ?? new Map<string, number>();
    const fullTree = (await this.snapshotter()).applyMode === 'full';
    const chainsOf = base.images.map((u) => chainIds(u.image.config.rootfs.diff_ids));
    const users = new Map<string, number>();
    for (const chain of chainsOf) for (const c of new Set(chain)) users.set(c, (users.get(c) ?? 0) + 1);
    const unpacked = base.images.map((u, i) => {
      const chain = chainsOf[i]!;
      const present = chain.length > 0 && chain.every((c) => own.has(c));
      if (!present) return { name: u.image.name, unpacked: false, size: 0, sharedSize: 0, uniqueSize: 0 };
      // overlay: each layer's snapshot holds its own files; full-tree backends: the top holds the whole tree.
      const size = fullTree ? own.get(chain.at(-1)!)! : chain.reduce((sum, c) => sum + own.get(c)!, 0);
      const sharedSize = fullTree
        ? (users.get(chain.at(-1)!)! > 1 ? size : 0)
        : chain.filter((c) => users.get(c)! > 1).reduce((sum, c) => sum + own.get(c)!, 0);
      return { name: u.image.name, unpacked: true, size, sharedSize, uniqueSize: size - sharedSize };
    });
    const reclaimableSnapshots = { count: 0, bytes: 0 };
    const needed = await neededChains(this.store);
    if (needed.unreadable.length === 0) {
      for (const snapshotter of byRoot.values()) {
        for (const r of (await collectSnapshots(snapshotter, needed.chains, { dryRun: true })).removed) {
          reclaimableSnapshots.count++;
          reclaimableSnapshots.bytes += r.size;
        }
      }
    }
    const activeImages = new Set<string>();
    for (const s of snapshots) if (s.kind !== 'committed' && s.labels[IMAGE_LABEL] !== undefined) activeImages.add(s.labels[IMAGE_LABEL]);
    for (const r of records) if (r.image !== undefined) activeImages.add(r.image);
    return { ...base, snapshots, snapshotBytes: snapshots.reduce((sum, s) => sum + s.size, 0), reclaimableSnapshots, activeImages: [...activeImages].sort(), unpacked };
  }

  /**
   * Garbage collection of the whole store: what dead processes left (temporary snapshots and
   * their mounts), mount records whose mount is gone, layer snapshots no image or running pull
   * needs (unless a tag could not be read), then blobs no image needs.
   */
  async gc(options: EngineGcOptions = {}): Promise<EngineGcResult> {
    const dryRun = options.dryRun === true;
    const startedAt = new Date();
    const warnings: string[] = [];
    const untagged: string[] = [];
    if (options.all) {
      const used = new Set((await this.listSnapshots()).filter((s) => s.kind !== 'committed').map((s) => s.labels[IMAGE_LABEL]).filter((n): n is string => n !== undefined));
      for (const record of await this.mounts.list()) if (record.image) used.add(record.image);
      for (const tagged of await this.store.listTags()) {
        if (used.has(tagged.name)) continue;
        if (!dryRun) await this.store.removeTag(tagged.name);
        untagged.push(tagged.name);
      }
    }
    const staleMounts: MountRecord[] = [];
    const reclaimed: ReclaimedTemporaries = { mounts: [], snapshots: [] };
    if (!dryRun) {
      for (const record of await this.mounts.stale()) {
        await this.undoMount(record).catch((err: unknown) => warnings.push(`mount record ${record.target}: ${(err as Error).message}`));
        staleMounts.push(record);
      }
      for (const snapshotter of await this.snapshotters()) {
        const r = await reclaimTemporaries(snapshotter).catch((err: unknown) => {
          warnings.push(`${snapshotter.name}: ${(err as Error).message}`);
          return { mounts: [], snapshots: [] };
        });
        reclaimed.mounts.push(...r.mounts);
        reclaimed.snapshots.push(...r.snapshots);
      }
    }
    const [{ neededChains, collectSnapshots }, { collectGarbage }] = await Promise.all([import('./snapshot-gc.js'), import('../content/gc.js')]);
    const needed = await neededChains(this.store);
    const snapshots: CollectedSnapshot[] = [];
    if (needed.unreadable.length > 0) {
      warnings.push(`snapshots not collected: ${needed.unreadable.map((u) => `${u.name} (${u.error})`).join('; ')}`);
    } else {
      for (const snapshotter of await this.snapshotters()) {
        const r = await collectSnapshots(snapshotter, needed.chains, { dryRun, startedAt });
        snapshots.push(...r.removed);
        for (const f of r.failed) warnings.push(`snapshot ${f.key} (${snapshotter.name}) kept: ${f.error}`);
      }
    }
    const blobs = await collectGarbage(this.store, { dryRun });
    return { ...blobs, untagged, snapshots, reclaimed, staleMounts, warnings };
  }

  /** `fsck`: every blob's digest, every reference, every backend's snapshots and mounts. */
  async verify(options: { repair?: boolean; onProblem?: (p: StoreProblem) => void } = {}): Promise<VerifyResult> {
    const { verifyStore } = await import('../image/verify.js');
    return verifyStore(this.store, { snapshotters: await this.snapshotters(), ...options });
  }

  /** Docker's `info` storage section for this store. */
  async info(): Promise<EngineInfo> {
    const driver = await this.driver();
    await mkdirAll(driver.root);
    const storageOpts = await this.storageOpts();
    const [status, backing, dtype, disk, tags, snapshots] = await Promise.all([
      driverStatus(driver.name, driver.root, storageOpts),
      backingFilesystem(driver.root),
      supportsDType(driver.root),
      this.store.diskUsage(),
      this.store.listTags(),
      this.usage().then((u) => u.snapshots),
    ]);
    const bySnapshotter: Record<string, number> = {};
    for (const s of snapshots) bySnapshotter[s.snapshotter] = (bySnapshotter[s.snapshotter] ?? 0) + 1;
    return {
      storeRoot: this.store.root,
      driver,
      storageOpts,
      driverStatus: status,
      backingFilesystem: backing,
      supportsDType: dtype,
      images: tags.length,
      blobs: { count: disk.blobs, bytes: disk.bytes },
      snapshots: { count: snapshots.length, bytes: snapshots.reduce((sum, s) => sum + s.size, 0), bySnapshotter },
      mounts: (await this.mounts.list()).length,
      kernel: kernelLimits(),
    };
  }

  private checkOpen(): void {
    if (this.closed) throw new FailedPreconditionError('the Engine is closed');
  }

  /** Closes the snapshotters and the registry client. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const opened of this.opened.values()) await (await opened.catch(() => undefined))?.close();
    this.opened.clear();
    await this.client?.close?.();
    for (const client of this.retiredClients.splice(0)) await client.close();
  }
}
