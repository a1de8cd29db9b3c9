#!/usr/bin/env bash
# kdeploy for Flux, timed against the real source-controller and kustomize-controller (scripts/tools),
# the distribution registry and the local control plane:
#   - `kdeploy push` of kube-prometheus (125 objects, 3 Secrets encrypted for one age recipient) to a
#     new tag, and again unchanged to the same tag, beside `kdeploy render` of the same project;
#   - from `kdeploy push` of a small project (a vault Secret) to its Kustomization being Ready, for a
#     first deploy and for an update (the OCIRepository re-applied with the new digest, as
#     `kdeploy flux generate --digest` prints it).
# Writes benches/results/flux.md.
#
#   RUNS=5 benches/flux.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-5}

. "$repo/benches/need.sh"
need hyperfine jq
cargo build --release --quiet
kdeploy=$repo/target/release/kdeploy
tools=$("$repo/scripts/tools/build.sh" registry flux)

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  "$repo/scripts/dev-cluster" down > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export KDEPLOY_CLUSTER_DIR=$repo/target/bench-cluster
eval "$("$repo/scripts/dev-cluster" up 2> /dev/null)"
kubectl=$KDEPLOY_CLUSTER_DIR/kubectl
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

registry_port=$(port)
printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work/registry" "$registry_port" > "$work/registry.yml"
"$tools/registry" serve "$work/registry.yml" > /dev/null 2>&1 & pids+=($!)
registry=127.0.0.1:$registry_port

$kubectl apply --server-side -f "$tools/flux-crds/" > /dev/null
$kubectl wait --for condition=Established --all crd > /dev/null
$kubectl create namespace flux-system > /dev/null
storage_port=$(port)
mkdir -p "$work/storage"
RUNTIME_NAMESPACE=flux-system "$tools/source-controller" --storage-path="$work/storage" \
  --storage-addr=127.0.0.1:$storage_port --storage-adv-addr=127.0.0.1:$storage_port \
  --metrics-addr=127.0.0.1:$(port) --health-addr=127.0.0.1:$(port) --enable-leader-election=false \
  > "$work/source.log" 2>&1 & pids+=($!)
RUNTIME_NAMESPACE=flux-system "$tools/kustomize-controller" --metrics-addr=127.0.0.1:$(port) \
  --health-addr=127.0.0.1:$(port) --enable-leader-election=false > "$work/kustomize.log" 2>&1 & pids+=($!)

export HOME=$work/home KDEPLOY_NO_KEYRING=1 DOCKER_CONFIG=$work/docker
mkdir -p "$HOME"
(cd "$work" && "$kdeploy" vault init --file team.txt > team.pub 2> /dev/null &&
  "$kdeploy" vault init --file cluster.txt > cluster.pub 2> /dev/null)
export SOPS_AGE_KEY_FILE=$work/team.txt

# kube-prometheus.
kp=$work/kp
mkdir -p "$kp"
# With a vault, so that an unchanged Secret is recognised (see docs/flux.md).
printf 'name: kp\nsources:\n  - manifests: %s\nsecrets: [secrets.yaml]\nrecipients: [%s]\nflux:\n  recipients: [%s]\n' \
  "$repo/../shared/realworld/kube-prometheus/manifests" "$(cat "$work/team.pub")" "$(cat "$work/cluster.pub")" > "$kp/kdeploy.yaml"
(cd "$kp" && printf 'unused' | "$kdeploy" vault set secrets.yaml unused > /dev/null 2>&1)
(cd "$kp" && hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/kp.json" \
  -n "render" "$kdeploy render > /dev/null" \
  -n "push, new tag" --prepare "date +%s%N > $work/tag" "$kdeploy push oci://$registry/kp:\$(cat $work/tag) --plain-http > /dev/null" \
  -n "push, unchanged" "$kdeploy push oci://$registry/kp:same --plain-http > /dev/null" > /dev/null)

# From push to Ready.
app=$work/app
mkdir -p "$app/manifests"
printf 'name: shop\nnamespace: shop\nsecrets: [secrets.yaml]\nvalues: [values.yaml]\nrecipients: [%s]\nflux:\n  recipients: [%s]\n  repository: oci://%s/shop\n' \
  "$(cat "$work/team.pub")" "$(cat "$work/cluster.pub")" "$registry" > "$app/kdeploy.yaml"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: "{{ values.v }}"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {{ secrets.pw }}\n' > "$app/manifests/app.yaml"
cd "$app"
printf 's3cret-value' | "$kdeploy" vault set secrets.yaml pw > /dev/null
$kubectl create secret generic shop-sops -n flux-system --from-file=identity.agekey="$work/cluster.txt" > /dev/null
ready_ms=()
for run in $(seq 1 "$runs"); do
  echo "v: \"$run\"" > values.yaml
  start=$(date +%s%N)
  digest=$("$kdeploy" push "oci://$registry/shop:v$run" --plain-http -o json | jq -r .digest)
  "$kdeploy" flux generate --plain-http --digest "$digest" 2> /dev/null | $kubectl apply --server-side -f - > /dev/null
  until [ "$($kubectl get kustomization shop -n flux-system -o jsonpath='{.status.lastAppliedRevision}')" = "$digest" ] &&
        [ "$($kubectl get kustomization shop -n flux-system -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; do
    if [ $(( ($(date +%s%N) - start) / 1000000000 )) -gt 120 ]; then
      echo "flux.sh: $digest was not applied within 120 s" >&2
      tail -n 5 "$work/source.log" "$work/kustomize.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  ready_ms+=($(( ($(date +%s%N) - start) / 1000000 )))
done
cd "$repo"

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
{
  echo "| kube-prometheus (125 objects, 3 Secrets) | median | min | max |"
  echo "|---|---:|---:|---:|"
  jq -r '.results[] | "| \(.command) | \(.median*1000|round) ms | \(.min*1000|round) ms | \(.max*1000|round) ms |"' "$work/kp.json"
  echo
  echo "| small project (3 objects, 1 vault Secret) | median | min | max |"
  echo "|---|---:|---:|---:|"
  echo "| first push to Ready | ${ready_ms[0]} ms | | |"
  rest=("${ready_ms[@]:1}")
  echo "| update: push to Ready (runs 2-$runs) | $(median "${rest[@]}") ms | $(printf '%s\n' "${rest[@]}" | sort -n | head -1) ms | $(printf '%s\n' "${rest[@]}" | sort -n | tail -1) ms |"
} > "$repo/benches/results/flux.md"
cat "$repo/benches/results/flux.md"
