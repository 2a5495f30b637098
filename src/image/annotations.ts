/** Annotations stratum puts on index.json entries. Keys ending in `.digest` are GC roots. */
export const SOURCE_DIGEST_ANNOTATION = 'dev.stratum.source.digest';
export const SOURCE_MEDIA_TYPE_ANNOTATION = 'dev.stratum.source.mediaType';
/** The signed schema1 manifest as the registry served it, kept beside the converted image. */
export const SCHEMA1_BLOB_ANNOTATION = 'dev.stratum.schema1.manifest.digest';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
