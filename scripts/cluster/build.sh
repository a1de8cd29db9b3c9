#!/usr/bin/env bash
# Builds the real control-plane binaries used by kdeploy's tests and by `scripts/dev-cluster`:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (k8s.io/kubernetes), etcd
# (go.etcd.io/etcd/server/v3) and kwok (sigs.k8s.io/kwok), each from the pinned wrapper module under
# scripts/cluster/go/.
#
# The binaries are cached in a directory keyed by a hash of the wrapper modules and the Go version, so
# they are rebuilt only when a pinned version changes. The cache lives outside the work tree (CI builds
# from a fresh clone), by default in ${XDG_CACHE_HOME:-~/.cache}/kdeploy/k8s/<key>; set
# KDEPLOY_K8S_CACHE to put it elsewhere.
#
# kwok needs "stages" (how fake nodes and pods move through their lifecycle); the default ones ship in the
# pinned kwok module and are copied next to the binaries as kwok-stages.yaml.
#
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gomods="$here/go"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: Go is needed to build the test control plane (kube-apiserver, etcd, kwok)." >&2
  echo "          Install Go 1.26 or newer (https://go.dev/doc/install or your package manager)." >&2
  exit 1
fi

key=$( { go env GOVERSION GOOS GOARCH; cat "$gomods"/*/go.mod "$gomods"/*/go.sum; } | sha256sum | cut -c1-16)
cache_root=${KDEPLOY_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdeploy/k8s}
out="$cache_root/$key"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
  local b
  for b in "${binaries[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
  [ -s "$out/bin/kwok-stages.yaml" ]
}

# The default node and pod stages of the pinned kwok release: nodes become Ready and keep a lease, pods
# become Ready, Jobs' pods complete, deleted pods go away.
write_kwok_stages() {
  local dir stage
  dir=$(cd "$gomods/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for stage in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$dir/kustomize/stage/$stage"
  done > "$1.tmp"
  mv "$1.tmp" "$1"
}

if [ -d "$out/bin" ] && ! [ -s "$out/bin/kwok-stages.yaml" ]; then
  (cd "$gomods/kwok" && go mod download sigs.k8s.io/kwok)
  write_kwok_stages "$out/bin/kwok-stages.yaml"
fi

if complete; then
  echo "$out/bin"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if complete; then # another build finished while we waited for the lock
  echo "$out/bin"
  exit 0
fi

staging="$out/bin.partial"
rm -rf "$staging"
mkdir -p "$staging"
start=$(date +%s)

module_version() { (cd "$gomods/$1" && go list -m -f '{{.Version}}' "$2"); }
k8s_version=$(module_version kubernetes k8s.io/kubernetes)
k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
build_date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

export CGO_ENABLED=0
echo "build.sh: building Kubernetes $k8s_version (kube-apiserver, controller-manager, scheduler, kubectl)" >&2
(cd "$gomods/kubernetes" && go build -trimpath -ldflags "-s -w $version_flags" -o "$staging/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

echo "build.sh: building etcd" >&2
(cd "$gomods/etcd" && go build -trimpath -ldflags "-s -w" -o "$staging/etcd" go.etcd.io/etcd/server/v3)

echo "build.sh: building kwok" >&2
kwok_version=$(module_version kwok sigs.k8s.io/kwok)
(cd "$gomods/kwok" && go build -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" \
  -o "$staging/kwok" sigs.k8s.io/kwok/cmd/kwok)

write_kwok_stages "$staging/kwok-stages.yaml"
rm -rf "$out/bin"
mv "$staging" "$out/bin"
echo "build.sh: built in $(( $(date +%s) - start ))s into $out/bin" >&2
echo "$out/bin"
