/** Label on the snapshot behind a `stratum mount`, naming where it is mounted. */
export const MOUNTPOINT_LABEL = 'dev.stratum.mountpoint';
/** Label on a writable snapshot naming the image it was made from (what `commit` builds on). */
export const IMAGE_LABEL = 'dev.stratum.image';
