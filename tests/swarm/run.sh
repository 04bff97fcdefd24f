#!/usr/bin/env bash
# The fleet in Docker (see README, "Swarm tests in Docker"). Installs the Docker engine when it is missing
# (Debian's docker.io), starts its own dockerd when none answers (vfs storage, its own data root and socket under
# tests/swarm/work), builds the static binary and the two images FROM scratch, runs tests/swarm/swarm.py, keeps
# the containers' logs in tests/swarm/work, and stops only what it started.
#
#   bash tests/swarm/run.sh                 # writes tests/swarm/results.md
#   SWARM_SIZES=5,10 bash tests/swarm/run.sh
#   SWARM_ONLY=rollout bash tests/swarm/run.sh   # one scenario (rollout or peers), no results file
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$root/tests/swarm/work
say() { printf '[swarm] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mkdir -p "$work"
if ! command -v dockerd >/dev/null 2>&1; then
  say "installing the Docker engine (docker.io)"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
command -v tc >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 || {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null
}

started_dockerd=
cleanup() {
  if [ -n "$started_dockerd" ]; then
    ids=$(docker ps -aq --filter label=firmchain-swarm=1 2>/dev/null || true)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
    kill "$(cat "$work/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 100); do [ -e "$work/dockerd.pid" ] || break; sleep 0.1; done
  fi
}
trap cleanup EXIT

if docker info >/dev/null 2>&1; then
  say "using the running Docker engine (${DOCKER_HOST:-default socket})"
else
  sock=/tmp/firmchain-swarm-$$.sock   # short: unix socket paths are limited to 108 bytes
  export DOCKER_HOST=unix://$sock
  say "starting dockerd (vfs, data in $work/docker)"
  as_root dockerd --data-root "$work/docker" --exec-root "/tmp/firmchain-swarm-exec-$$" \
    --pidfile "$work/dockerd.pid" -H "$DOCKER_HOST" --storage-driver vfs >"$work/dockerd.log" 2>&1 &
  started_dockerd=1
  for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start; see $work/dockerd.log"; tail -20 "$work/dockerd.log" >&2; exit 1; }
fi

say "building the static firmchain binary (profile swarm, fault injection for the malicious-device scenario)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --profile swarm --locked \
  --target x86_64-unknown-linux-gnu --features fault-injection --bin firmchain
bin=$root/target/x86_64-unknown-linux-gnu/swarm/firmchain

say "building the images FROM scratch"
rm -rf "$work/ctx" "$work/anvil-ctx" && mkdir -p "$work/ctx/data" "$work/anvil-ctx/rootfs/usr/local/bin"
cp "$bin" "$work/ctx/firmchain"
docker build --quiet --target local -t firmchain:swarm -f "$root/Dockerfile" "$work/ctx" >/dev/null
anvil=$root/contracts/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
[ -x "$anvil" ] || bash "$root/scripts/setup"
cp "$anvil" "$work/anvil-ctx/rootfs/usr/local/bin/anvil"
for lib in $(ldd "$anvil" | grep -o '/[^ ]*'); do
  mkdir -p "$work/anvil-ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$work/anvil-ctx/rootfs$lib"
done
docker build --quiet -t firmchain-anvil:swarm -f "$root/tests/swarm/anvil.Dockerfile" "$work/anvil-ctx" >/dev/null
version=$(docker run --rm firmchain:swarm --version)
say "image firmchain:swarm: $version ($(docker image inspect -f '{{.Size}}' firmchain:swarm) bytes)"
[ "${version%% *}" = firmchain ] || { say "docker run IMAGE --version printed '$version'"; exit 1; }

python3 "$root/tests/swarm/swarm.py" --work "$work/run" --results "$root/tests/swarm/results.md" \
  --sizes "${SWARM_SIZES:-5,10,20}" ${SWARM_ONLY:+--only "$SWARM_ONLY"}
