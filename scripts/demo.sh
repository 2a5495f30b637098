#!/usr/bin/env bash
# The main job, offline on a fresh Debian machine (as root): install what is needed, start the
# Debian docker-registry on loopback serving the fixture images, and pull `ubuntu:15.04`
# (a signed schema1 image, like Docker Hub's) through a mirror setting that sends docker.io there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

work=${STRATUM_DEMO_DIR:-$(mktemp -d /tmp/stratum-demo.XXXXXX)}
mkdir -p "$work"
host=$(node dist/test/fixtures/serve-fixtures.js --port 0 --root "$work/registry" --detach)
trap 'kill "$(cat "$work/registry/serve-fixtures.pid")" 2>/dev/null || true' EXIT
echo "registry with fixtures on $host (docker.io is mirrored there)"

export STRATUM_STORE="$work/store"
set -x
node dist/src/bin/stratum.js pull --mirror "docker.io=http://$host" ubuntu:15.04
node dist/src/bin/stratum.js history ubuntu:15.04
node dist/src/bin/stratum.js pull --mirror "docker.io=http://$host" ubuntu:15.04
node dist/src/bin/stratum.js pull --mirror "docker.io=http://$host" base:1
node dist/src/bin/stratum.js pull --mirror "docker.io=http://$host" app:1
node dist/src/bin/stratum.js images
node dist/src/bin/stratum.js df -v
