#!/usr/bin/env bash
# Installs what stratum's tests, demo and benchmarks need on a fresh Debian machine (as root).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# docker.io (Docker 20.10), buildah, libarchive-tools (bsdtar), python3 (tarfile) and busybox-static (the shell of the
# builders' RUN steps) are writers of the differential corpus (test/differential); attr gives setfattr/getfattr;
# fuse-overlayfs (with fuse3's fusermount3) is the fuse-overlayfs snapshotter's mount program
DEBIAN_PACKAGES=(docker-registry skopeo umoci containerd btrfs-progs xfsprogs zfs-fuse pigz zstd util-linux e2fsprogs attr tar docker.io buildah libarchive-tools busybox-static python3 fuse-overlayfs erofs-utils)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package starts nothing without systemd; our scripts start registries themselves.

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci"
  npm ci --no-audit --no-fund
fi
npm run build --silent
