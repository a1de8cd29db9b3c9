#!/usr/bin/env bash
# Diff and apply of 300 objects (150 ConfigMaps, 100 Services, 50 Deployments) against the local control
# plane: kdeploy against `kubectl --server-side`, same cluster, same objects, timed with hyperfine.
#   first apply      every object created (the namespace is emptied before each run)
#   no-op re-apply   everything already there
#   diff             nothing changed
# kdeploy applies with --no-wait (kubectl apply does not wait either). Writes
# benches/results/deploy-compare.md and prints it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-10}

command -v hyperfine > /dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq hyperfine > /dev/null; }
cargo build --release --quiet
kdeploy=$repo/target/release/kdeploy
export KDEPLOY_CLUSTER_DIR=$repo/target/bench-cluster
trap '"$repo/scripts/dev-cluster" down > /dev/null 2>&1' EXIT
eval "$("$repo/scripts/dev-cluster" up)"
kubectl=$KDEPLOY_CLUSTER_DIR/kubectl

work=$(mktemp -d)
mkdir -p "$work/manifests"
cat > "$work/manifests/objects.yaml" <<'TEMPLATE'
{% for i in range(end=150) %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "config-{{ i }}"}
data: {index: "{{ i }}", greeting: "hello: {{ i }}"}
{% endfor %}
{% for i in range(end=100) %}
---
apiVersion: v1
kind: Service
metadata: {name: "svc-{{ i }}"}
spec:
  selector: {app: "app-{{ i }}"}
  ports: [{port: 80, targetPort: 8080}]
{% endfor %}
{% for i in range(end=50) %}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: "app-{{ i }}"}
spec:
  replicas: 1
  selector: {matchLabels: {app: "app-{{ i }}"}}
  template:
    metadata: {labels: {app: "app-{{ i }}"}}
    spec:
      containers: [{name: app, image: "nginx:1.27"}]
{% endfor %}
TEMPLATE
(cd "$work" && "$kdeploy" render > "$work/rendered.yaml")
count=$(grep -c '^kind:' "$work/rendered.yaml")
[ "$count" -eq 300 ] || { echo "expected 300 objects, rendered $count" >&2; exit 1; }

for ns in bench-kdeploy bench-kubectl; do "$kubectl" create namespace "$ns" > /dev/null; done
empty() { echo "$kubectl delete configmap,service,deployment,secret -n $1 --all --wait=true > /dev/null 2>&1"; }
kd="cd $work && $kdeploy"
kd_apply="$kd apply --yes --no-wait -n bench-kdeploy --applyset bench"
kc_apply="$kubectl apply --server-side -n bench-kubectl -f $work/rendered.yaml"
mkdir -p "$repo/benches/results"
hyperfine --style basic --runs "$runs" --export-markdown "$work/first.md" \
  --prepare "$(empty bench-kdeploy)" -n "kdeploy apply (first)" "$kd_apply" \
  --prepare "$(empty bench-kubectl)" -n "kubectl apply --server-side (first)" "$kc_apply"
hyperfine --style basic --warmup 1 --runs "$runs" --export-markdown "$work/noop.md" \
  -n "kdeploy apply (no-op)" "$kd_apply" \
  -n "kubectl apply --server-side (no-op)" "$kc_apply"
hyperfine --style basic --warmup 1 --runs "$runs" -i --export-markdown "$work/diff.md" \
  -n "kdeploy diff" "$kd diff -n bench-kdeploy --applyset bench" \
  -n "kubectl diff --server-side" "$kubectl diff --server-side -n bench-kubectl -f $work/rendered.yaml"
{
  echo "300 objects, $runs runs each, Kubernetes $("$kubectl" version -o json | grep -m1 -o '"gitVersion": "[^"]*"' | tail -1 | cut -d'"' -f4)"
  echo
  cat "$work/first.md"; echo; cat "$work/noop.md"; echo; cat "$work/diff.md"
} > "$repo/benches/results/deploy-compare.md"
cat "$repo/benches/results/deploy-compare.md"
rm -rf "$work"
