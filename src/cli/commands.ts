import { formatOption, type CommandSpec, type OptionSpec, SNAPSHOTTER_CHOICES } from './spec.js';

/** Fields of each listing's `--format` (docker's names where docker has the listing). */
export const IMAGE_FIELDS = ['Repository', 'Tag', 'Digest', 'ID', 'Name', 'CreatedSince', 'CreatedAt', 'Size', 'Platform', 'Containers', 'SharedSize', 'UniqueSize', 'VirtualSize'] as const;
export const HISTORY_FIELDS = ['ID', 'CreatedSince', 'CreatedAt', 'CreatedBy', 'Size', 'CompressedSize', 'Comment'] as const;
export const DF_FIELDS = ['Type', 'TotalCount', 'Active', 'Size', 'Reclaimable'] as const;
export const SNAPSHOT_FIELDS = ['Key', 'Parent', 'Kind', 'Snapshotter', 'Created', 'Updated', 'Labels'] as const;
export const TAG_FIELDS = ['Repository', 'Tag'] as const;
export const REFERRER_FIELDS = ['Digest', 'ArtifactType', 'Size', 'CreatedAt', 'Source', 'Subject', 'MediaType', 'Annotations'] as const;

const quiet = (description: string): OptionSpec => ({ name: 'quiet', short: 'q', type: 'boolean', description });
const json = (description = 'One JSON event per line'): OptionSpec => ({ name: 'json', type: 'boolean', description });
const platform: OptionSpec = { name: 'platform', type: 'string', value: 'os/arch[/variant]', description: "Platform of a multi-platform image (default: this host's)" };
const IMAGE = { name: 'IMAGE', complete: 'image' } as const;

/** Every command of the CLI; the parser, help, completion and man pages read only this. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'pull',
    summary: 'Download an image into the store (verified, deduplicated) and unpack it',
    description: 'Download an image into the store, verifying every blob, and unpack its layers into snapshots on the store\'s storage driver.',
    args: [{ name: 'NAME[:TAG|@DIGEST]' }],
    options: [
      platform,
      { name: 'all-tags', short: 'a', type: 'boolean', description: 'Pull every tag of the repository' },
      { name: 'all-platforms', type: 'boolean', description: "Keep a multi-platform image whole: the index and every platform's image (unpacks --platform's or the host's)" },
      { name: 'no-unpack', type: 'boolean', description: 'Only fetch: do not unpack the layers into snapshots' },
      { name: 'max-layers', type: 'string', value: 'N', description: 'Refuse images with more layers (default 128; overlay: at most 500)' },
      { name: 'verify-key', type: 'string', value: 'FILE', complete: 'file', description: 'Refuse the image unless the registry holds a signature by this public key (PEM) for its digest; checked before any layer is fetched' },
      quiet('Print only the image name when done'),
      json(),
    ],
    examples: ['stratum pull ubuntu:15.04', 'stratum pull --platform linux/arm64 alpine', 'stratum pull --no-unpack -q 127.0.0.1:5000/app:1'],
    load: () => import('./commands/pull.js'),
  },
  {
    name: 'push',
    summary: 'Upload an image from the store to a registry',
    description: 'Upload an image from the store to a registry: the blobs the repository lacks, then the manifest, byte for byte (its digest does not change), then the referrers stored with it (signatures, `stratum attach` artifacts) unless --no-referrers. DESTINATION defaults to NAME itself.',
    args: [{ name: 'NAME[:TAG]', complete: 'image' }, { name: 'DESTINATION[:TAG|@DIGEST]', required: false }],
    options: [
      { name: 'no-referrers', type: 'boolean', description: 'Push only the image: not the signatures and attached artifacts stored with it' },
      quiet('Print only the destination when done'),
      json(),
    ],
    load: () => import('./commands/push.js'),
  },
  {
    name: 'sign',
    summary: "Sign an image's manifest digest (Sigstore bundle or cosign signature)",
    description:
      "Sign the manifest digest IMAGE names with an ECDSA P-256 private key (PEM), offline: no Fulcio, Rekor or timestamp authority. --format bundle (default) makes a Sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json) stored as an OCI artifact whose subject is the image, as cosign v3 does, found through the registry's referrers API or its referrers tag (sha256-<hex>); --format cosign the classic cosign signature tag sha256-<hex>.sig. A stored image keeps the signature in the store (while it is tagged) and --push uploads it to its registry too; an image not in the store is signed at its registry. Keyless signing (--keyless: Fulcio and Rekor, URLs from --fulcio-url/--rekor-url or $STRATUM_FULCIO_URL/$STRATUM_REKOR_URL, the OIDC token from --identity-token or $SIGSTORE_ID_TOKEN) needs their network; without it, it fails with ERR_KEYLESS_UNAVAILABLE naming the URL. Prints the signature artifact's digest.",
    args: [IMAGE],
    options: [
      { name: 'key', type: 'string', value: 'FILE', complete: 'file', description: 'ECDSA P-256 private key (PEM; $STRATUM_KEY_PASSWORD for an encrypted one)' },
      { name: 'format', type: 'string', value: 'FORMAT', choices: ['bundle', 'cosign'], strict: true, description: 'bundle (default: Sigstore bundle referrer) or cosign (sha256-<hex>.sig tag)' },
      { name: 'push', type: 'boolean', description: "Also upload the signature of a stored image to its registry" },
      { name: 'keyless', type: 'boolean', description: 'Instead of --key: an ephemeral key certified by Fulcio for an OIDC identity, the signature logged in Rekor (needs their network)' },
      { name: 'identity-token', type: 'string', value: 'TOKEN', description: 'Keyless: the OIDC token for Fulcio (default $SIGSTORE_ID_TOKEN; implies --keyless)' },
      { name: 'fulcio-url', type: 'string', value: 'URL', description: 'Keyless: Fulcio (default $STRATUM_FULCIO_URL, else https://fulcio.sigstore.dev)' },
      { name: 'rekor-url', type: 'string', value: 'URL', description: 'Keyless: log the signature in this Rekor (default $STRATUM_REKOR_URL, else https://rekor.sigstore.dev)' },
      json('Print the result as JSON'),
    ],
    examples: ['stratum sign --key cosign.key --push 127.0.0.1:5000/app:1', 'stratum sign --key cosign.key --format cosign 127.0.0.1:5000/app:1'],
    load: () => import('./commands/sign.js'),
  },
  {
    name: 'verify',
    summary: "Check an image's signature against a public key",
    description:
      "Find the signatures of the manifest digest IMAGE names (Sigstore bundle referrers and cosign .sig tags; kept in the store, else at the registry) and check them against a public key (PEM). Exit status 1 with the reason when none verifies: missing (ERR_SIGNATURE_MISSING), bad signature (ERR_SIGNATURE_INVALID), other digest (ERR_SIGNATURE_OTHER_DIGEST), other key (ERR_SIGNATURE_OTHER_KEY). (The store's own check is `fsck`.)",
    args: [IMAGE],
    options: [
      { name: 'key', type: 'string', value: 'FILE', complete: 'file', description: 'Public key (PEM) the signature must verify with' },
      { name: 'source', type: 'string', value: 'WHERE', choices: ['auto', 'store', 'registry'], strict: true, description: "auto (default: the store's copy when IMAGE is stored, else the registry), store or registry" },
      json('Print the result as JSON'),
    ],
    examples: ['stratum verify --key cosign.pub 127.0.0.1:5000/app:1'],
    load: () => import('./commands/verify.js'),
  },
  {
    name: 'attach',
    summary: 'Attach an artifact (SBOM, attestation, any file) to an image as an OCI referrer',
    description:
      "Store FILE as an OCI artifact about the image IMAGE names, as `oras attach` does: an image manifest with --artifact-type, the empty config (application/vnd.oci.empty.v1+json) and FILE as its one layer, whose subject is the image's manifest. A stored image keeps it (while it is tagged; `push` carries it along); when IMAGE names a registry (127.0.0.1:5000/app:1) it is pushed there too, listed through the registry's referrers API or, where the registry lacks one, the referrers tag sha256-<hex>. Prints the artifact manifest's digest.",
    args: [IMAGE, { name: 'FILE', complete: 'file' }],
    options: [
      { name: 'artifact-type', type: 'string', value: 'TYPE', description: 'The artifact type (required), e.g. application/spdx+json' },
      { name: 'media-type', type: 'string', value: 'TYPE', description: "FILE's media type (default: the artifact type)" },
      { name: 'annotation', type: 'string', multiple: true, value: 'KEY=VALUE', description: 'An annotation of the artifact manifest (repeatable)' },
      { name: 'no-push', type: 'boolean', description: 'Keep it in the store only, even when IMAGE names a registry' },
      json('Print the result as JSON'),
    ],
    examples: ['stratum attach --artifact-type application/spdx+json 127.0.0.1:5000/app:1 sbom.spdx.json', 'stratum attach --artifact-type application/vnd.example.note --annotation org.example.by=ci app:1 note.txt'],
    load: () => import('./commands/attach.js'),
  },
  {
    name: 'referrers',
    summary: 'List the artifacts that refer to an image (signatures, SBOMs, attachments)',
    description:
      'List the artifacts whose subject is the image IMAGE names, as `oras discover` does: those kept in the store with a stored image and, when IMAGE names a registry, those the registry lists (its referrers API, else the referrers tag sha256-<hex>). SOURCE says where each was found: store, registry or store+registry.',
    args: [IMAGE],
    options: [
      { name: 'artifact-type', type: 'string', value: 'TYPE', description: 'Only artifacts of this type' },
      { name: 'source', type: 'string', value: 'WHERE', choices: ['auto', 'store', 'registry'], strict: true, description: 'auto (default: the store and, for a registry name, the registry), store or registry' },
      formatOption(REFERRER_FIELDS),
    ],
    examples: ['stratum referrers 127.0.0.1:5000/app:1', 'stratum referrers --artifact-type application/vnd.dev.sigstore.bundle.v0.3+json --format json app:1'],
    load: () => import('./commands/referrers.js'),
  },
  {
    name: 'commit',
    summary: 'Create an image from the changes in a writable snapshot',
    description:
      'Create a new image from the changes in writable snapshot KEY (made by `stratum mount --rw KEY IMAGE DIR`, on any storage driver of the store): one new gzip layer on top of the image\'s layers, a config and history entry, an OCI manifest, tagged NAME in the store. The snapshot stays as it is (mounted, if it was). Prints the new image\'s ID (its config digest), as docker commit does. With SOURCE_DATE_EPOCH set (seconds since 1970), the layer is reproducible: mtimes are clamped to it and it is the created time of the config and history, so the same changes give the same digests.',
    args: [{ name: 'KEY', complete: 'snapshot' }, { name: 'NAME[:TAG]' }],
    options: [
      { name: 'message', short: 'm', type: 'string', value: 'TEXT', description: 'History comment' },
      { name: 'author', short: 'a', type: 'string', value: 'TEXT', description: 'Author (config and history)' },
      { name: 'image', type: 'string', value: 'NAME', description: 'The image KEY was made from (default: recorded on the snapshot)' },
      {
        name: 'change',
        short: 'c',
        type: 'string',
        multiple: true,
        value: 'INSTRUCTION',
        description: "Apply a Dockerfile instruction to the config, as docker commit does: ENV, CMD, ENTRYPOINT, USER, WORKDIR, LABEL, EXPOSE, VOLUME, STOPSIGNAL (JSON or shell form), e.g. --change 'ENV A=b' --change 'CMD [\"sh\"]'",
      },
      json('Print the result as JSON'),
    ],
    load: () => import('./commands/commit.js'),
  },
  {
    name: 'images',
    aliases: ['ls'],
    summary: 'List images in the store',
    description: 'List the images in the store; a multi-platform index shows each platform it holds.',
    args: [{ name: 'REPOSITORY[:TAG]', required: false }],
    options: [
      quiet('Only show image IDs'),
      { name: 'digests', type: 'boolean', description: 'Show digests' },
      { name: 'no-trunc', type: 'boolean', description: "Don't truncate output" },
      { name: 'all', short: 'a', type: 'boolean', description: 'Show all images (stratum keeps no intermediate images: the same as without)' },
      { name: 'filter', short: 'f', type: 'string', multiple: true, value: 'FILTER', description: 'Filter output: reference=PATTERN, dangling=true|false, before=IMAGE, since=IMAGE, label=KEY[=VALUE]' },
      formatOption(IMAGE_FIELDS),
    ],
    load: () => import('./commands/images.js'),
  },
  {
    name: 'inspect',
    summary: "Show an image's manifest and config (local, or remote with docker://)",
    description:
      "Print a stored image's manifest, config, ID, repo digests, chain IDs and, once unpacked, its storage driver's data (overlay: LowerDir, UpperDir, WorkDir, MergedDir) as JSON, as docker image inspect does. With docker://REF (or --remote) the image is read from its registry without pulling, like skopeo inspect. (--config here is skopeo's; the global --config FILE goes before the command.)",
    args: [{ name: 'IMAGE', complete: 'image' }],
    options: [
      { name: 'format', short: 'f', type: 'string', value: 'FORMAT', description: "json or a Go template: '{{.Id}}', '{{json .Config}}'" },
      { name: 'raw', type: 'boolean', description: "Print the manifest's bytes exactly as stored or served" },
      { name: 'config', type: 'boolean', description: "Print the image's config (with --raw: its bytes)" },
      { name: 'remote', type: 'boolean', description: 'Read IMAGE from its registry, not the store' },
      platform,
    ],
    load: () => import('./commands/inspect.js'),
  },
  {
    name: 'history',
    summary: 'Show the history of an image',
    description: 'Show the steps an image was built from, newest first: the image ID on the top row and <missing> below (as docker shows a pulled image), each layer\'s unpacked size.',
    args: [IMAGE],
    options: [
      { name: 'no-trunc', type: 'boolean', description: "Don't truncate output" },
      { name: 'human', short: 'H', type: 'boolean', description: 'Print sizes and dates in human readable format (default true; -H=false for bytes and RFC 3339)' },
      quiet('Only show image IDs'),
      platform,
      formatOption(HISTORY_FIELDS),
    ],
    load: () => import('./commands/history.js'),
  },
  {
    name: 'tag',
    summary: 'Give a stored image another name',
    description: 'Create a tag TARGET that refers to SOURCE (a name, an image ID or a digest), as docker tag does.',
    args: [{ name: 'SOURCE[:TAG]', complete: 'image' }, { name: 'TARGET[:TAG]' }],
    load: () => import('./commands/tag.js'),
  },
  {
    name: 'login',
    summary: 'Log in to a registry (credentials stored as docker login stores them)',
    description:
      "Check a user name and password against SERVER (default docker.io) and store them as docker login does: in the credential helper config.json names (credsStore, credHelpers), else in config.json ($DOCKER_CONFIG or ~/.docker) with mode 0600. Bad credentials store nothing. The password comes from --password-stdin, a prompt on a terminal, or (insecure, shown in `ps`) --password.",
    args: [{ name: 'SERVER', required: false }],
    options: [
      { name: 'username', short: 'u', type: 'string', value: 'USER', description: 'User name' },
      { name: 'password', short: 'p', type: 'string', value: 'PASSWORD', description: 'Password (insecure: visible to other users; prefer --password-stdin)' },
      { name: 'password-stdin', type: 'boolean', description: 'Read the password from standard input' },
    ],
    examples: ['echo "$TOKEN" | stratum login -u ci --password-stdin 127.0.0.1:5000'],
    load: () => import('./commands/login.js'),
  },
  {
    name: 'logout',
    summary: 'Remove the stored credentials of a registry',
    args: [{ name: 'SERVER', required: false }],
    load: () => import('./commands/logout.js'),
  },
  {
    name: 'save',
    summary: 'Write images to a tar archive (docker save)',
    description:
      "Write one or more stored images, blobs once each, to a tar archive: docker's format (default: an OCI image layout with Docker's manifest.json and repositories, as Docker 25 writes it, which Docker 20.10's `docker load` reads too) or a plain OCI archive (as `skopeo copy … oci-archive:` writes it). To FILE, or standard output when it is not a terminal. With `load`, the way to move images between stores and storage drivers.",
    args: [{ name: 'IMAGE', variadic: true, complete: 'image' }],
    options: [
      { name: 'output', short: 'o', type: 'string', value: 'FILE', complete: 'file', description: 'Write to FILE instead of standard output' },
      { name: 'format', type: 'string', value: 'FORMAT', choices: ['docker', 'oci'], strict: true, description: 'docker (default) or oci' },
      platform,
    ],
    examples: ['stratum save -o images.tar app:1 base:1', 'stratum save ubuntu:15.04 | docker load', 'docker save busybox | stratum load'],
    load: () => import('./commands/save.js'),
  },
  {
    name: 'load',
    summary: 'Load images from a tar archive (docker load)',
    description:
      "Read an archive of images from FILE or standard input, streaming: what `docker save` writes (Docker 20.10's layout with layer.tar files, and Docker 25's OCI layout), OCI archives (`skopeo copy … oci-archive:`), gzip- or zstd-compressed as a whole. Every blob is checked against its digest and every layer against the config's diff_ids before any name is tagged; a damaged archive tags nothing.",
    options: [
      { name: 'input', short: 'i', type: 'string', value: 'FILE', complete: 'file', description: 'Read from FILE instead of standard input' },
      quiet('Print only the loaded names (or IDs)'),
      { name: 'base-name', type: 'string', value: 'NAME', description: 'Repository for OCI archives whose names are bare tags (ctr import --base-name)' },
    ],
    load: () => import('./commands/load.js'),
  },
  {
    name: 'copy',
    aliases: ['cp'],
    summary: 'Copy an image between registries, layouts and the store without unpacking',
    description:
      'Copy an image as skopeo copy and crane copy do: blobs streamed from source to destination (verified on the way; mounted across repositories of the same registry; skipped when the destination has them), then the manifest byte for byte, so the digest is unchanged. SOURCE and DESTINATION: a registry reference (docker://REF or bare), oci:DIR[:TAG] (an OCI image layout), or store:NAME (the store). An index copies one platform (--platform, default the host\'s) or with --all every one.',
    args: [{ name: 'SOURCE' }, { name: 'DESTINATION' }],
    options: [
      { name: 'all', short: 'a', type: 'boolean', description: 'Copy an index and every image it lists' },
      platform,
      quiet('Print only the destination digest'),
      json(),
    ],
    examples: ['stratum copy 127.0.0.1:5000/app:1 127.0.0.1:5000/team/app:1', 'stratum copy --all docker://127.0.0.1:5000/multi:1 oci:/tmp/layout:multi'],
    load: () => import('./commands/copy.js'),
  },
  {
    name: 'list-tags',
    summary: "List a repository's tags at its registry",
    args: [{ name: 'REPOSITORY' }],
    options: [formatOption(TAG_FIELDS)],
    load: () => import('./commands/list-tags.js'),
  },
  {
    name: 'manifest',
    summary: 'Inspect manifests at a registry; create and push multi-platform indexes',
    commands: [
      {
        name: 'inspect',
        summary: "Print an image's or index's manifest at its registry, without pulling",
        args: [{ name: 'NAME[:TAG|@DIGEST]' }],
        options: [{ name: 'raw', type: 'boolean', description: 'The bytes exactly as served (their sha256 is the digest)' }],
        load: () => import('./commands/manifest.js'),
      },
      {
        name: 'create',
        summary: 'Make a multi-platform index of stored images, tagged NAME',
        description: "Write an OCI image index listing the stored IMAGEs (each entry's platform from its config), tagged NAME in the store; `stratum push NAME` or `manifest push` then uploads the images and the index.",
        args: [{ name: 'NAME[:TAG]' }, { name: 'IMAGE', variadic: true, complete: 'image' }],
        options: [{ name: 'annotation', type: 'string', multiple: true, value: 'KEY=VALUE', description: 'An annotation of the index (repeatable)' }],
        load: () => import('./commands/manifest.js'),
      },
      {
        name: 'push',
        summary: 'Upload a stored index and every image it lists (children first)',
        args: [{ name: 'NAME[:TAG]', complete: 'image' }, { name: 'DESTINATION[:TAG]', required: false }],
        options: [quiet('Print only the digest')],
        load: () => import('./commands/manifest.js'),
      },
    ],
  },
  {
    name: 'rmi',
    summary: 'Remove image tags',
    description: 'Remove image tags from the store: a tag removes that tag, an image ID (or a prefix of it, as `images` prints it) every tag of that image (-f when there are several). Run `stratum gc` to free their blobs and unpacked snapshots.',
    args: [{ name: 'IMAGE', variadic: true, complete: 'image' }],
    options: [{ name: 'force', short: 'f', type: 'boolean', description: 'Remove every tag of an image ID; no error for a missing image' }],
    load: () => import('./commands/rmi.js'),
  },
  {
    name: 'df',
    summary: 'Show store disk usage and sharing between images',
    description:
      "Show the store's disk usage: blobs, unpacked snapshots (every storage driver of the store), partial downloads, and what gc would reclaim. -v adds each image's unpacked size (SIZE, SHARED SIZE, UNIQUE SIZE as docker system df -v counts them), each layer blob, and each snapshot.",
    options: [{ name: 'verbose', short: 'v', type: 'boolean', description: 'Show images, layers and snapshots' }, formatOption(DF_FIELDS)],
    load: () => import('./commands/df.js'),
  },
  {
    name: 'mount',
    summary: "Mount an image's root filesystem (read-only view or --rw snapshot)",
    description:
      "Mount an image's root filesystem at DIR: a read-only view, or with --rw a writable snapshot KEY on the image's top layer (commit it later with `stratum commit KEY NAME`). Layers not yet unpacked are unpacked first, on the store's storage driver. The mount is recorded in the store; undo it with `stratum unmount DIR`.",
    args: [IMAGE, { name: 'DIR', complete: 'dir' }],
    options: [{ name: 'rw', type: 'string', value: 'KEY', description: 'Mount a writable snapshot KEY instead of a read-only view' }, platform],
    load: () => import('./commands/mount.js'),
  },
  {
    name: 'unmount',
    aliases: ['umount'],
    summary: 'Unmount what mount mounted',
    description: 'Unmount what `stratum mount` (or `snapshot prepare|view --target`) mounted at DIR: a read-only view made for the mount is removed, a writable snapshot kept. A path stratum did not mount is refused and left as it is.',
    args: [{ name: 'DIR', complete: 'dir' }],
    load: () => import('./commands/unmount.js'),
  },
  {
    name: 'snapshot',
    summary: 'List, prepare, view, commit, remove snapshots',
    description:
      "Work with the snapshots behind images and containers (containerd's `ctr snapshot`). A key names one snapshot in the store, whichever storage driver holds it; new snapshots without a parent go to the store's driver (or --snapshotter), with one to the parent's.",
    commands: [
      {
        name: 'ls',
        aliases: ['list'],
        summary: "List snapshots (every driver's, or only --snapshotter's)",
        args: [{ name: 'FILTER', required: false, variadic: true }],
        options: [quiet('Only show keys'), formatOption(SNAPSHOT_FIELDS)],
        load: () => import('./commands/snapshot.js'),
      },
      { name: 'tree', summary: 'Show snapshots as a tree of parents', load: () => import('./commands/snapshot.js') },
      { name: 'info', summary: 'Show one snapshot as JSON', args: [{ name: 'KEY', complete: 'snapshot' }], load: () => import('./commands/snapshot.js') },
      {
        name: 'prepare',
        summary: 'Create a writable snapshot (mount it at DIR with --target)',
        args: [{ name: 'KEY' }, { name: 'PARENT', required: false, complete: 'snapshot' }],
        options: [{ name: 'target', type: 'string', value: 'DIR', complete: 'dir', description: 'Mount the snapshot at DIR' }],
        load: () => import('./commands/snapshot.js'),
      },
      {
        name: 'view',
        summary: 'Create a read-only snapshot (mount it at DIR with --target)',
        args: [{ name: 'KEY' }, { name: 'PARENT', required: false, complete: 'snapshot' }],
        options: [{ name: 'target', type: 'string', value: 'DIR', complete: 'dir', description: 'Mount the snapshot at DIR' }],
        load: () => import('./commands/snapshot.js'),
      },
      { name: 'mounts', summary: 'Print the mount command for an active or view snapshot', args: [{ name: 'KEY', complete: 'snapshot' }, { name: 'TARGET', required: false }], load: () => import('./commands/snapshot.js') },
      { name: 'commit', summary: 'Commit an active snapshot as NAME (its mounts are undone first)', args: [{ name: 'NAME' }, { name: 'KEY', complete: 'snapshot' }], load: () => import('./commands/snapshot.js') },
      { name: 'label', summary: 'Set labels (k= removes one)', args: [{ name: 'KEY', complete: 'snapshot' }, { name: 'LABEL=VALUE', variadic: true }], load: () => import('./commands/snapshot.js') },
      {
        name: 'rm',
        aliases: ['remove', 'delete'],
        summary: 'Remove snapshots',
        args: [{ name: 'KEY', variadic: true, complete: 'snapshot' }],
        options: [{ name: 'force', short: 'f', type: 'boolean', description: 'Unmount a mounted snapshot first' }],
        load: () => import('./commands/snapshot.js'),
      },
      { name: 'usage', summary: 'Disk usage (size and inodes)', args: [{ name: 'KEY', required: false, variadic: true, complete: 'snapshot' }], load: () => import('./commands/snapshot.js') },
      { name: 'cleanup', summary: 'Reclaim space that removed snapshots left behind', load: () => import('./commands/snapshot.js') },
    ],
  },
  {
    name: 'export',
    summary: "Write an image's flattened root filesystem as a tar",
    description: "Write the image's flattened root filesystem as a tar file (- for standard output).",
    args: [IMAGE],
    options: [{ name: 'output', short: 'o', type: 'string', value: 'FILE', complete: 'file', description: 'Write to FILE (- for standard output)' }, platform],
    load: () => import('./commands/export.js'),
  },
  {
    name: 'gc',
    summary: 'Delete blobs, snapshots and leftovers nothing needs',
    description:
      'Delete what nothing needs, in the whole store: temporary snapshots and mounts that killed stratum processes left (never a mount stratum did not record), records of mounts that are gone; unpacked layer snapshots that no image, running pull, mount or other snapshot needs, on every storage driver of the store; blobs no tagged image needs, and stale partial downloads.',
    options: [
      { name: 'all', type: 'boolean', description: 'First untag every image no mount or writable snapshot uses (docker image prune -a)' },
      { name: 'dry-run', type: 'boolean', description: 'Print what would be removed; remove nothing' },
    ],
    load: () => import('./commands/gc.js'),
  },
  {
    name: 'image',
    summary: 'Manage images (prune)',
    commands: [
      {
        name: 'prune',
        summary: 'Remove unused data: dangling blobs and snapshots, or with -a every image nothing uses',
        description: 'Remove what no image needs (as gc does); with -a, first untag every image that no mount or writable snapshot uses. Asks first on a terminal unless -f.',
        options: [
          { name: 'all', short: 'a', type: 'boolean', description: 'Remove all images no mount or writable snapshot uses, not just dangling data' },
          { name: 'force', short: 'f', type: 'boolean', description: 'Do not prompt for confirmation' },
        ],
        load: () => import('./commands/prune.js'),
      },
    ],
  },
  {
    name: 'migrate',
    summary: 'Move every image to another storage driver, verified, resumable',
    description:
      "Re-unpack every image of the store from its stored blobs (no network) into storage driver DRIVER, compare each image's tree there with its tree in the current driver (names, types, modes, owners, content, symlink targets, xattrs, hardlinks), then record DRIVER as the store's driver and remove the old driver's snapshots. Each step is journaled in STORE/migrate.json: interrupted at any point, run the same command again and it resumes; until every image verified, the store keeps its old driver. Refused: an unknown driver, the one in use, a driver that cannot work on the store's filesystem, while stratum has snapshots mounted, and while the old driver holds snapshots no image carries (a writable snapshot: commit it as an image first, or --force to leave it in the old driver). --storage-opt gives the new driver's options. `save` and `load` remain the way to move images between stores.",
    options: [
      { name: 'to', type: 'string', value: 'DRIVER', choices: SNAPSHOTTER_CHOICES, description: 'The storage driver to move to (required)' },
      { name: 'force', type: 'boolean', description: "Leave snapshots no image carries in the old driver's directory instead of refusing" },
      json('One JSON event per line: start, image (one per image), switched, removed'),
    ],
    examples: ['stratum migrate --to btrfs', 'stratum migrate --to zfs --storage-opt zfs.compression=lz4 --json'],
    load: () => import('./commands/migrate.js'),
  },
  {
    name: 'fsck',
    summary: 'Check blobs, references and snapshots (--repair)',
    description:
      "Check the store: every blob's content against its digest and its size against every descriptor that names it; every reference from index.json (manifests, configs, layers present); every snapshot's parent chain and data, temporaries of dead processes, and mounts. One line per problem; exit status 1 while problems remain.",
    options: [
      { name: 'repair', type: 'boolean', description: 'Delete corrupt blobs (the next pull fetches them again), remove what dead processes left and orphaned snapshot data, forget lost mounts' },
      json('One JSON object per problem, then a summary object'),
    ],
    load: () => import('./commands/fsck.js'),
  },
  {
    name: 'info',
    summary: "Show the store's storage driver, backing filesystem and contents",
    description:
      "Show the store's storage driver as `docker info` does (Storage Driver, Backing Filesystem, Supports d_type, and the driver's own lines: overlay's Native Overlay Diff and userxattr, fuse-overlayfs's Mount Program, btrfs's usage, zfs's pool and dataset, blockfile's Base Device Size and Data Space Used/Total), why that driver, and the store's images, blobs, snapshots and mounts.",
    options: [{ name: 'format', short: 'f', type: 'string', value: 'FORMAT', description: "json or a Go template: '{{.Driver}}', '{{json .DriverStatus}}'" }],
    load: () => import('./commands/info.js'),
  },
  {
    name: 'version',
    summary: 'Show the stratum version and platform',
    options: [{ name: 'format', short: 'f', type: 'string', value: 'FORMAT', description: "json or a Go template: '{{.Version}}'" }],
    load: () => import('./commands/version.js'),
  },
  {
    name: 'completion',
    summary: 'Print a shell completion script (bash, zsh or fish)',
    description: 'Print the completion script for SHELL. bash: `source <(stratum completion bash)`; zsh: `stratum completion zsh > "${fpath[1]}/_stratum"`; fish: `stratum completion fish > ~/.config/fish/completions/stratum.fish`.',
    args: [{ name: 'SHELL', complete: ['bash', 'zsh', 'fish'] }],
    load: () => import('./commands/completion.js'),
  },
  {
    name: 'man',
    summary: 'Print or write the man pages',
    description: 'Print the man page (roff) of COMMAND, or with --output DIR write stratum.1 and one page per command (stratum-pull.1, …) into DIR.',
    args: [{ name: 'COMMAND', required: false, variadic: true }],
    options: [{ name: 'output', short: 'o', type: 'string', value: 'DIR', complete: 'dir', description: 'Write every page into DIR' }],
    load: () => import('./commands/man.js'),
  },
];
