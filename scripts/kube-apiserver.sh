#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy and prints the path of the binary.
#
# k8s.io/kubernetes cannot be built with `go install …@version`: its go.mod replaces every
# k8s.io/<staging> module with a directory of its own tree. A small wrapper module requires
# k8s.io/kubernetes and pins each staging module to the matching v0.X.Y release instead.
# The binary is cached under ${OFFSETDB_TEST_CACHE:-~/.cache/offsetdb-test}, keyed by version,
# so only the first run pays the build (about 5 minutes on 2 cores).
set -euo pipefail

version="${KUBE_VERSION:-v1.37.2}"
cache="${OFFSETDB_TEST_CACHE:-$HOME/.cache/offsetdb-test}"
out="$cache/kube-apiserver-$version"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
# One build at a time (test packages run in parallel): the others wait, then reuse it.
mkdir -p "$cache"
exec 9>"$cache/kube-apiserver.lock"
flock 9
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi

staging="v0.${version#v1.}"
goproxy="${GOPROXY:-$(go env GOPROXY)}"
proxy="${goproxy%%,*}"
case "$proxy" in http*) ;; *) proxy=https://proxy.golang.org ;; esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

curl -fsS "$proxy/k8s.io/kubernetes/@v/$version.mod" -o kubernetes.mod
{
  echo "module offsetdb.test/kube-apiserver"
  echo
  echo "go 1.25"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  # Every "k8s.io/X => ./staging/src/k8s.io/X" line becomes "k8s.io/X => k8s.io/X v0.Y.Z".
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' kubernetes.mod
  echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

// Package tools makes `go mod tidy` record every module kube-apiserver needs.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"
GO

echo "building kube-apiserver $version (staging modules $staging) in $work" >&2
GOFLAGS=-mod=mod go mod tidy -e >&2
pkg=k8s.io/component-base/version
minor="${version#v1.}"
minor="${minor%%.*}"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
  -o kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver >&2
mkdir -p "$cache"
mv kube-apiserver "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
