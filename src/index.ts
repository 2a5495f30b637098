/**
 * stratum's library API: the Engine the CLI is a shell over, and the pieces it is built from.
 *
 *   import { Engine } from 'stratum';
 *   const engine = await Engine.open({ root: '/var/lib/stratum', mirrors: ['docker.io=http://127.0.0.1:5000'] });
 *   await engine.pull('ubuntu:15.04');
 *   await engine.mount('ubuntu:15.04', '/mnt/rootfs', { rw: 'build-1' });
 *   // … write into /mnt/rootfs …
 *   await engine.commitImage('build-1', 'my/image:1');
 *   await engine.unmount('/mnt/rootfs');
 *   await engine.close();
 *
 * @packageDocumentation
 */
export * from './errors.js';

// The Engine: one object that owns a store, its registry client, its storage driver and snapshots,
// its mounts and its GC. Start here; the pieces below are what it is built from.
export {
  Engine,
  type EngineOptions,
  type DriverChoice,
  type SnapshotEntry,
  type InspectResult,
  type EngineGcOptions,
  type EngineGcResult,
  type EngineUsage,
  type EngineInfo,
} from './engine/engine.js';
export { MountTable, type MountRecord } from './engine/mount-table.js';
export type { MigrateOptions, MigrateEvent, MigrateResult } from './engine/migrate.js';
export { resolveRegistryConfig, registryConfigPath, type RegistrySettings } from './engine/registry-config.js';
export { neededChains, collectSnapshots, type NeededChains, type CollectedSnapshot } from './engine/snapshot-gc.js';

// References, digests, media types and the OCI shapes.
export { parseReference, withDigest, withTag, withoutTag, familiarName, type Reference } from './oci/reference.js';
export { parseDigest, isDigest, digestOf, digestHex, shortDigest, chainIds, Digester, EMPTY_GZIP_LAYER_DIGEST, type Digest, type DigestAlgorithm } from './oci/digest.js';
export { MediaType, MANIFEST_ACCEPT, layerCompression, type LayerCompression } from './oci/mediatypes.js';
export type { Descriptor, ImageConfig, ImageIndex, ImageManifest, HistoryEntry, Platform } from './oci/types.js';
export { parseManifest, type ParsedManifest } from './oci/manifest.js';
export { parseImageConfig, checkConfigMatchesManifest } from './oci/config.js';
export { parsePlatform, normalizePlatform, formatPlatform, hostPlatform, platformMatches, selectManifest } from './oci/platform.js';
export { parseSchema1, schema1PayloadDigest, convertSchema1, schema1Blobs, verifySchema1Signatures, signSchema1, type Schema1Manifest } from './oci/schema1.js';

// The content store.
export type { BlobInfo, IngestWriter, IngestOptions, Provider, Ingester, TagStore, TaggedImage } from './content/content.js';
export { OciStore, defaultStoreRoot } from './content/store.js';
export { collectGarbage, type GcOptions, type GcResult } from './content/gc.js';
export { Lease } from './content/lease.js';

// The registry client.
export { RegistryClient, type RegistryClientOptions } from './registry/client.js';
export { loadRegistryConfig, parseMirrorFlag, resolveEndpoints, type HostSettings, type RegistryConfig, type RetryConfig } from './registry/hosts.js';
export { Transport, type TransportOptions, type HostTlsSettings, type Route } from './registry/transport/transport.js';
export { defaultCertsDirs, certsDirFor, type HostTls } from './registry/transport/certs.js';
export { ProxyRules, proxyFromEnv, type ProxySettings } from './registry/transport/proxy.js';
export { DEFAULT_PARALLEL_FETCH, type ParallelFetchOptions } from './registry/ranged-fetch.js';
export { DockerConfigCredentials, StaticCredentials, NO_CREDENTIALS, type Credentials, type CredentialSource } from './registry/credentials.js';
export { downloadBlob, createLimiter } from './registry/download.js';
export { DEFAULT_CHUNK_SIZE, DEFAULT_MONOLITHIC_THRESHOLD, type UploadOptions } from './registry/upload.js';
export { login, logout, type LoginCredentials, type LoginOptions, type LoginResult, type LogoutResult, type CredentialFileOptions } from './registry/login.js';
export type { Endpoint, ResolvedManifest, BlobResponse, DownloadEvent, BlobFetcher, ManifestFetcher } from './registry/types.js';

// Images: pull, push, read back, history, disk usage.
export { pull, type PullOptions, type PullResult, type PullEvent } from './image/pull.js';
export { pushImage, type PushOptions, type PushResult, type PushEvent } from './image/push.js';
export { commitImage, type CommitImageOptions, type CommitImageResult } from './image/commit.js';
export { MutableImage, type LayerSource, type AppendLayerOptions, type MutationContext, type WrittenImage } from './image/mutate.js';
export { applyChanges, mergeContainerConfig, CHANGE_INSTRUCTIONS, type ContainerConfig } from './image/changes.js';
export { writeLayerBlob, sourceDateEpoch, checkEpoch, type LayerBlob, type LayerBlobOptions, type LayerBlobCompression } from './image/layer-blob.js';
export { writeTreeAsTar } from './image/export.js';
export { TreeTarWriter, type TreeTarOptions } from './tar/tree-writer.js';
export { saveImages, type ArchiveFormat, type SaveOptions, type SaveResult, type SavedImage } from './image/archive/save.js';
export { loadArchive, type LoadOptions, type LoadResult, type LoadedImage } from './image/archive/load.js';
export { writeTreeDiff, type DiffStats } from './image/diff.js';
export { findImage, loadImage, loadImageByName, imageSize, type StoredImage } from './image/image.js';
export { resolveImage, listImages, type ListedImage, type ImageListing } from './image/resolve.js';
export { imageHistory, type HistoryRow } from './image/history.js';
export { copyImage, parseCopyLocation, formatCopyLocation, type CopyLocation, type CopyOptions, type CopyContext, type CopyResult, type CopyEvent } from './image/copy.js';
export { inspectRemote, fetchConfig, MAX_CONFIG_BYTES, type RemoteInspection, type InspectRemoteOptions } from './image/inspect-remote.js';
export { storeUsage, type StoreUsage, type ImageUsage, type LayerUsage } from './image/usage.js';
export { verifyStore, type VerifyOptions, type VerifyResult, type StoreProblem, type StoreProblemKind } from './image/verify.js';

// Signing and verifying images (Sigstore bundles as OCI referrers, cosign's .sig tags); Engine.sign / Engine.verifyImage.
export { keySigner, keylessSigner, keylessSettings, publicKeyHint, readPublicKey, DEFAULT_FULCIO_URL, DEFAULT_REKOR_URL, type ImageSigner, type KeylessOptions } from './sign/key.js';
export { signImage, verifyImageSignature, verifyResolved, type SignContext, type SignOptions, type SignResult, type VerifyImageOptions, type VerifyImageResult } from './sign/sign.js';
export { createImageBundle, checkImageBundle, SIGSTORE_BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, type SignatureCheck, type WitnessOptions } from './sign/bundle.js';
export { bundleArtifact, cosignArtifact, simpleSigningPayload, cosignTag, COSIGN_SIMPLE_SIGNING_MEDIA_TYPE, COSIGN_SIGNATURE_ANNOTATION, type SignatureFormat, type CosignLayer } from './sign/artifact.js';
export { findRegistrySignatures, pushCosignSignature } from './sign/remote.js';
export { findStoreSignatures } from './sign/local.js';
export type { FoundSignature, VerifiedSignature } from './sign/found.js';

// Referrers (OCI artifacts whose subject is an image: signatures, SBOMs, attestations); Engine.attach / Engine.referrers.
export { artifactManifest, referrersTag, referrersIndex, EMPTY_JSON, type Artifact, type ArtifactSpec } from './referrers/artifact.js';
export { attachToStore, storedReferrers, REFERRERS_ANNOTATION } from './referrers/local.js';
export { pushReferrer, registryReferrers, type RegistryAttachment } from './referrers/remote.js';
export { attachArtifact, listReferrers, namesRegistry, type AttachOptions, type AttachResult, type Referrer, type ReferrersOptions, type ReferrersContext } from './referrers/attach.js';
export { pushStoredReferrers, type PushedReferrer } from './image/push-referrers.js';

// Snapshotters (what verifyStore checks besides the content store).
export { openSnapshotter, defaultSnapshotter, validateStorageOpts, reclaimTemporaries, type Snapshotter, type SnapshotterName, type SnapshotProblem, type ReclaimedTemporaries } from './snapshotter/index.js';

// EROFS layer images, written straight from a layer's tar (the erofs snapshotter's format).
export { writeLayerImage, PendingImage, type LayerImageOptions, type LayerImageResult } from './erofs/build.js';
export { writeDirImage } from './erofs/from-dir.js';
export type { ImageStats } from './erofs/image.js';

// Decompression.
export { uncompressedDigest, detectCompression, decompressor } from './unpack/decompress.js';

// Storage drivers: which backend a store uses, chosen as Docker's daemon chooses its graph driver.
export { backingFilesystem, supportsDType, normalizeDriverName, checkStorageDriver, chooseStorageDriver, driverStatus, kernelLimits, zfsDatasetAt, FS_NAMES } from './snapshotter/driver.js';
export { readStoreConfig, writeStoreConfig, STORE_CONFIG_FILE, type StoreConfig } from './engine/store-config.js';
