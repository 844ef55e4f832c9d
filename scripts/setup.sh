#!/usr/bin/env bash
# Install what Cairn needs, quickly when it is all there already:
#   system tools (apt), node modules (npm ci), and the TypeScript build.
# Usage: scripts/setup.sh [--test]   (--test adds what only the test suite needs: PostgreSQL, pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A tools=(
  [losetup]=mount [mount]=mount [nsenter]=util-linux [unshare]=util-linux [fsfreeze]=util-linux
  [mkfs.ext4]=e2fsprogs [resize2fs]=e2fsprogs [e2fsck]=e2fsprogs
  [mkfs.xfs]=xfsprogs [xfs_growfs]=xfsprogs [crun]=crun
  [inotifywait]=inotify-tools [unzip]=unzip
  [filefrag]=e2fsprogs [blkid]=util-linux [ip]=iproute2 [nft]=nftables
  [/usr/bin/tini-static]=tini [/usr/bin/python3]=python3
  [cc]=gcc [/usr/include/stdio.h]=libc6-dev
  # images: zstd layers (Node 20's zlib has none)
  [zstd]=zstd
)
if [[ "${1:-}" == "--test" || "${1:-}" == "--bench" ]]; then
  tools[/usr/lib/postgresql/15/bin/initdb]=postgresql-15
  # the Python SDK's tests, for Debian's /usr/bin/python3 (PyPI is not needed)
  tools[/usr/lib/python3/dist-packages/httpx]=python3-httpx tools[/usr/lib/python3/dist-packages/pytest]=python3-pytest
  # images: a registry on loopback, skopeo to push what the tests build, a static busybox to build it from
  tools[docker-registry]=docker-registry tools[skopeo]=skopeo tools[/bin/busybox]=busybox-static
fi
if [[ "${1:-}" == "--bench" ]]; then
  tools[umoci]=umoci
fi
if [[ "${1:-}" == "--bench" ]]; then
  tools[wrk]=wrk tools[restic]=restic tools[hyperfine]=hyperfine
fi
missing=()
for t in "${!tools[@]}"; do
  if [[ "$t" == /* ]]; then [[ -e "$t" ]] || missing+=("${tools[$t]}")
  else command -v "$t" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$t" >/dev/null 2>&1 || missing+=("${tools[$t]}")
  fi
done
if (( ${#missing[@]} )); then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "setup: installing $pkgs" >&2
  if [[ $(id -u) -ne 0 ]]; then echo "setup: need root to install $pkgs" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# node modules: npm ci when the lock file changed since the last install
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch node_modules/.package-lock.json
fi

# build (incremental: a no-op when nothing changed)
npx --no-install tsc -b
node scripts/prune-dist.mjs
# cairnd's native helpers: cairn-mount hot-plugs mounts into a running sandbox (open_tree/
# move_mount), cairn-forward relays the router's connections into a sandbox's network namespace.
for name in cairn-mount cairn-forward; do
  helper=packages/server/dist/native/$name
  if [[ ! -x $helper || packages/server/native/$name.c -nt $helper ]]; then
    mkdir -p "$(dirname "$helper")"
    cc -O2 -Wall -Wextra -Werror -o "$helper" "packages/server/native/$name.c"
  fi
done
# The idle process and the exec timeout of a sandbox that runs an image: static, since the image
# brings its own libc (or none).
for tool in cairn-pause cairn-timeout; do
  bin=packages/server/dist/native/$tool
  if [[ ! -x $bin || packages/server/native/$tool.c -nt $bin ]]; then
    cc -static -s -O2 -Wall -Wextra -Werror -o "$bin" "packages/server/native/$tool.c"
  fi
done
# tsc does not keep the executable bit, and npm links bins only to files that existed at install:
# make `cairn` and `cairnd` runnable from node_modules/.bin (npx cairn, or PATH=$PWD/node_modules/.bin).
chmod +x packages/cli/dist/src/main.js packages/server/dist/src/main.js
mkdir -p node_modules/.bin
ln -sf ../../packages/cli/dist/src/main.js node_modules/.bin/cairn
ln -sf ../../packages/server/dist/src/main.js node_modules/.bin/cairnd
