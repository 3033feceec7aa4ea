#!/usr/bin/env bash
# Builds the tracer image with buildah, with no daemon and nothing pulled:
# static tracer binaries per GOARCH, then the Containerfile's FROM scratch
# stages. Produces, in the local containers-storage:
#
#   $IMAGE:$VERSION-$ARCH            per architecture, runs as root
#   $IMAGE:$VERSION-nonroot-$ARCH    per architecture, uid 65532 with file capabilities
#   $IMAGE:$VERSION, $IMAGE:$VERSION-nonroot   manifest lists over $ARCHES
#
# Environment: IMAGE (offsetdb/tracer), VERSION (git describe), ARCHES
# ("amd64 arm64"), CONTEXT (a temporary build context, removed unless given).
# Prints the per-architecture image size at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-localhost/offsetdb/tracer}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ARCHES="${ARCHES:-amd64 arm64}"
# The capabilities the non-root image's binary carries: what docs/deployment.md
# measured the tracer to need (BPF and uprobes; other processes' /proc maps and
# executables, which belong to other users).
FILECAPS="${FILECAPS:-cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep}"
CACERTS="${CACERTS:-/etc/ssl/certs/ca-certificates.crt}"

for tool in buildah setcap; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool not found (apt-get install buildah libcap2-bin)" >&2; exit 1; }
done
[ -r "$CACERTS" ] || { echo "image.sh: $CACERTS not found (apt-get install ca-certificates)" >&2; exit 1; }

ctx="${CONTEXT:-}"
if [ -z "$ctx" ]; then
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
fi
cp "$CACERTS" "$ctx/ca-certificates.crt"

for arch in $ARCHES; do
  mkdir -p "$ctx/linux-$arch/root" "$ctx/linux-$arch/nonroot"
  CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -ldflags "-s -w" -o "$ctx/linux-$arch/root/tracer" ./tracer
  cp "$ctx/linux-$arch/root/tracer" "$ctx/linux-$arch/nonroot/tracer"
  setcap "$FILECAPS" "$ctx/linux-$arch/nonroot/tracer"
done

build() { # target arch tag
  buildah build --quiet --layers=false --platform "linux/$2" --target "$1" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
    -f Containerfile -t "$3" "$ctx" >/dev/null
}

for variant in root nonroot; do
  suffix=""
  [ "$variant" = nonroot ] && suffix="-nonroot"
  list="$IMAGE:$VERSION$suffix"
  buildah manifest rm "$list" >/dev/null 2>&1 || true
  buildah manifest create "$list" >/dev/null
  for arch in $ARCHES; do
    tag="$IMAGE:$VERSION$suffix-$arch"
    build "$variant" "$arch" "$tag"
    buildah manifest add --arch "$arch" --os linux "$list" "containers-storage:$tag" >/dev/null
    size="$(buildah inspect --type image --format '{{.Docker.Size}}' "$tag" 2>/dev/null || true)"
    echo "built $tag ($(podman image inspect --format '{{.Size}}' "$tag" 2>/dev/null || echo "$size") bytes)"
  done
  echo "manifest list $list: $ARCHES"
done
