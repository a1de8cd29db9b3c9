#!/usr/bin/env bash
# Builds the Go tools kdeploy's tests and benchmarks use (sops; helm, kustomize and the distribution OCI
# registry for source tests; toxiproxy for the fault tests), each from its pinned wrapper module under
# scripts/tools/go/<name>/. These copies are test and benchmark dependencies only: at runtime kdeploy
# runs the user's own helm or kustomize, and only for projects with charts or overlays.
#
#   scripts/tools/build.sh sops [more names]   build (or reuse) and print the folder holding them
#
# A tool's folder may also hold GOTOOLCHAIN (the Go version it needs, taken from the module proxy as go
# does), ldflags (extra linker flags, e.g. its version) and post-build (a script run in the output folder
# with the module folder as $1, for what a release image would add). All of them are part of the hash.
# Each tool is cached by a hash of its go.mod and go.sum and the Go version, in
# ${KDEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kdeploy/tools}/<name>-<hash>/, and linked into one
# folder, whose path is printed on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -gt 0 ] || set -- $(ls "$here/go")
command -v go > /dev/null 2>&1 || {
  echo "tools/build.sh: Go 1.26+ is needed to build $* (https://go.dev/doc/install)." >&2
  exit 1
}
cache=${KDEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdeploy/tools}
mkdir -p "$cache"
exec 9> "$cache/.lock"
flock 9

links=$cache/bin
mkdir -p "$links"
for name in "$@"; do
  module=$here/go/$name
  [ -f "$module/go.mod" ] || { echo "tools/build.sh: no tool named $name" >&2; exit 1; }
  toolchain=$(cat "$module/GOTOOLCHAIN" 2>/dev/null || go env GOTOOLCHAIN)
  key=$( { GOTOOLCHAIN=$toolchain go env GOVERSION GOOS GOARCH
           cat "$module/go.mod" "$module/go.sum"
           for extra in ldflags post-build; do [ ! -f "$module/$extra" ] || cat "$module/$extra"; done; } |
         sha256sum | cut -c1-12)
  out=$cache/$name-$key
  if [ ! -f "$out/.complete" ]; then
    echo "tools/build.sh: building $name" >&2
    started=$(date +%s)
    rm -rf "$out"
    mkdir -p "$out"
    # `tool pkg` lines and `tool ( ... )` blocks alike.
    packages=$(awk '$1 == "tool" && $2 == "(" {block = 1; next}
                    block && $1 == ")" {block = 0; next}
                    block {print $1}
                    $1 == "tool" && $2 != "(" {print $2}' "$module/go.mod")
    ldflags="-s -w $(cat "$module/ldflags" 2>/dev/null || true)"
    (cd "$module" && GOTOOLCHAIN=$toolchain CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" $packages)
    if [ -x "$module/post-build" ]; then
      (cd "$out" && GOTOOLCHAIN=$toolchain "$module/post-build" "$module")
    fi
    # Generic command names (cmd/server) get the tool's name in front: toxiproxy-server.
    for binary in "$out"/server "$out"/cli; do
      [ -f "$binary" ] && mv "$binary" "$out/$name-$(basename "$binary")"
    done
    touch "$out/.complete"
    echo "tools/build.sh: built $name in $(( $(date +%s) - started ))s" >&2
  fi
  for binary in "$out"/*; do
    ln -sfn "$binary" "$links/$(basename "$binary")"
  done
done
echo "$links"
