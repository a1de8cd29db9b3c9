#!/usr/bin/env bash
# Day two side by side: kdeploy status, list, rollback and delete against helm status, list, rollback
# and uninstall of the same objects (300 and 5,000 ConfigMaps, each release/project with two revisions),
# on the local control plane, with hyperfine. Writes benches/results/lifecycle.md and the section between
# the lifecycle markers in BENCHMARKS.md.
#
#   RUNS=5 benches/lifecycle.sh
#
# What each command does differs, and the table says so: `helm status` reads the release Secret only,
# `kdeploy status` lists every object and judges its health and whether it is still as applied (the
# `--show-resources` row lists the objects as well). Rollbacks alternate between the two revisions, so
# every run changes every object. Deletes re-install the objects before each run (not timed).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-5}

. "$repo/benches/need.sh"
need hyperfine jq
cargo build --release --quiet
kdeploy=$repo/target/release/kdeploy
tools=$("$repo/scripts/tools/build.sh" helm)

work=$(mktemp -d)
trap 'rm -rf "$work"; "$repo/scripts/dev-cluster" down > /dev/null 2>&1 || true' EXIT
export KDEPLOY_CLUSTER_DIR=$repo/target/bench-cluster
eval "$("$repo/scripts/dev-cluster" up 2> /dev/null)"
kubectl=$KDEPLOY_CLUSTER_DIR/kubectl
helm="$tools/helm --kubeconfig $KUBECONFIG"
results=$work/results.md
: > "$results"

. "$repo/benches/bench.sh"

for count in 300 5000; do
  d=$work/$count
  mkdir -p "$d/kdeploy/manifests" "$d/helm/templates"
  printf 'name: bench\nnamespace: bench-kd-%s\n' "$count" > "$d/kdeploy/kdeploy.yaml"
  cat > "$d/kdeploy/manifests/objects.yaml" << T
{% for i in range(end=$count) %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "config-{{ i }}"}
data: {index: "{{ i }}", version: "{{ values.version }}"}
{% endfor %}
T
  printf 'apiVersion: v2\nname: bench\nversion: 0.1.0\n' > "$d/helm/Chart.yaml"
  cat > "$d/helm/templates/objects.yaml" << T
{{- range \$i := until $count }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "config-{{ \$i }}"}
data: {index: "{{ \$i }}", version: "{{ \$.Values.version }}"}
{{- end }}
T
  kns=bench-kd-$count hns=bench-helm-$count
  "$kubectl" create namespace "$kns" > /dev/null
  "$kubectl" create namespace "$hns" > /dev/null
  kd="cd $d/kdeploy && $kdeploy"
  install_kdeploy="$kd apply --yes --no-wait -v version=1 > /dev/null 2>&1 && $kd apply --yes --no-wait -v version=2 > /dev/null 2>&1"
  install_helm="$helm upgrade --install bench $d/helm -n $hns --set version=1 > /dev/null && $helm upgrade bench $d/helm -n $hns --set version=2 > /dev/null"
  sh -c "$install_kdeploy"
  sh -c "$install_helm"
  # The objects are the same: both tools render the same ConfigMaps.
  [ "$("$kubectl" get configmap -n "$kns" -l applyset.kubernetes.io/part-of --no-headers | wc -l)" -eq "$count" ]

  bench "Status of $count objects" -i \
    -n "kdeploy status" "$kd status" \
    -n "helm status" "$helm status bench -n $hns" \
    -n "helm status --show-resources" "$helm status bench -n $hns --show-resources"
  bench "List the projects (one of $count objects)" \
    -n "kdeploy list" "$kd list -n $kns" \
    -n "helm list" "$helm list -n $hns"
  bench "Rollback of $count objects (to the other revision, every object changes)" \
    -n "kdeploy rollback --no-wait" "$kd rollback --yes --no-wait --history-max 1000" \
    -n "helm rollback" "$helm rollback bench -n $hns --history-max 1000"
  bench "Delete $count objects (installed again before each run, untimed)" \
    --prepare "$install_kdeploy" -n "kdeploy delete" "$kd delete --yes" \
    --prepare "$install_helm" -n "helm uninstall --wait" "$helm uninstall bench -n $hns --wait"
done

{
  echo "Run on $(date -u +%Y-%m-%d) with \`RUNS=$runs benches/lifecycle.sh\`: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sm)."
  echo "Versions: kdeploy $("$kdeploy" --version | cut -d' ' -f2), helm $("$tools/helm" version --short 2> /dev/null),"
  echo "the control plane $("$kubectl" version --client -o json | jq -r .clientVersion.gitVersion)."
  echo
  echo "Times are the median, fastest and slowest of $runs runs after one warm-up. The last column is kdeploy's"
  echo "median divided by that command's: below 1.00, kdeploy is faster. \`helm status\` reads one Secret;"
  echo "\`kdeploy status\` lists and judges every object (the \`--show-resources\` row lists them too)."
  echo "\`kdeploy delete\` waits until every object is gone, as \`helm uninstall --wait\` does."
  echo
  cat "$results"
} > "$repo/benches/results/lifecycle.md"

python3 "$repo/benches/replace_section.py" "$repo/BENCHMARKS.md" lifecycle "$repo/benches/results/lifecycle.md" \
  'Day two side by side (`benches/lifecycle.sh`)'
cat "$repo/benches/results/lifecycle.md"
