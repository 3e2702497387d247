#!/usr/bin/env bash
# Build a real kube-apiserver, kube-controller-manager and kube-scheduler from Debian
# bookworm's kubernetes source package, and install etcd from Debian. The binaries are
# cached outside the work tree, keyed by the package version, so a second run is instant.
#
# Prints the directory that holds the binaries on its last line.
# See ../shared/k8s-testing.md for why this is built from source (no container runtime,
# no registry serves the binaries on these machines).
set -euo pipefail

K8S_DEB_VERSION="${K8S_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
K8S_GIT_VERSION="v1.20.2"
CACHE_ROOT="${MODELHOST_CACHE_DIR:-$HOME/.cache/modelhost}/k8s"
BIN_DIR="$CACHE_ROOT/$K8S_DEB_VERSION/bin"
COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

have_all() {
  for cmd in "${COMMANDS[@]}"; do [ -x "$BIN_DIR/$cmd" ] || return 1; done
  command -v etcd >/dev/null 2>&1
}

if have_all; then
  echo "$BIN_DIR"
  exit 0
fi

# Concurrent test sessions wait for one build instead of each starting their own.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build.lock"
flock 9
if have_all; then
  echo "$BIN_DIR"
  exit 0
fi

echo "building Kubernetes $K8S_GIT_VERSION from Debian source ($K8S_DEB_VERSION); about 5 minutes" >&2
SRC_LIST=/etc/apt/sources.list.d/debian-src.sources
if [ ! -f "$SRC_LIST" ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | as_root tee "$SRC_LIST" >/dev/null
fi
as_root apt-get update -qq >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go etcd-server rsync jq make golang-github-modern-go-reflect2-dev dpkg-dev openssl curl >&2

command -v kube-apiserver >/dev/null 2>&1 || true
if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] && [ -x "$BIN_DIR/kube-scheduler" ]; then
  echo "$BIN_DIR"
  exit 0
fi

WORK="$CACHE_ROOT/$K8S_DEB_VERSION/work"
rm -rf "$WORK"
mkdir -p "$WORK" "$BIN_DIR"
cd "$WORK"
apt-get source -qq --download-only "kubernetes=$K8S_DEB_VERSION" >&2
dpkg-source -x --no-check ./*.dsc src >&2

# vendored reflect2 v1.0.1 breaks on Go >= 1.18; Debian's 1.0.2 is a drop-in.
rm -f src/vendor/github.com/modern-go/reflect2/*.go src/vendor/github.com/modern-go/reflect2/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go src/vendor/github.com/modern-go/reflect2/
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s src/vendor/github.com/modern-go/reflect2/ 2>/dev/null || true

export GOPATH="$WORK/gopath" GO111MODULE=off CGO_ENABLED=0 GOCACHE="$WORK/gocache" GOFLAGS=
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$WORK/src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
make gen_openapi >&2

LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X k8s.io/kubernetes/vendor/$pkg.gitVersion=$K8S_GIT_VERSION"
  LDFLAGS="$LDFLAGS -X k8s.io/kubernetes/vendor/$pkg.gitMajor=1 -X k8s.io/kubernetes/vendor/$pkg.gitMinor=20"
done
for cmd in "${COMMANDS[@]}"; do
  go build -o "$BIN_DIR/$cmd.tmp" -ldflags "$LDFLAGS" "k8s.io/kubernetes/cmd/$cmd" >&2
  mv "$BIN_DIR/$cmd.tmp" "$BIN_DIR/$cmd"
done
cd /
rm -rf "$WORK"   # the Go cache and source are 2 GB; the binaries are all we keep
echo "$BIN_DIR"
