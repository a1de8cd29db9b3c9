#!/usr/bin/env bash
# Side-by-side benchmarks: kdeploy against the tools users would pick instead, on the same inputs, in one
# run, with hyperfine (a warm-up, then RUNS runs each). Writes benches/results/compare.md and the section
# between the compare markers in BENCHMARKS.md.
#
#   RUNS=10 benches/compare.sh
#
# Peers are pinned and built from the Go module proxy by scripts/tools/build.sh: helm v3 and kustomize v5
# (the control plane's kubectl and sops come the same way). ytt and kapp are not served by the Go module
# proxy this project reaches (every module path answers 403), so they are not in the comparison.
#
# Workloads:
#   render      1,000 objects (Deployments, Services, ConfigMaps, Secrets) from 50 templates with loops and
#               a values file of 200 keys: kdeploy templates, the same as a helm chart, and a static
#               kustomize base. Every tool's output is decoded by kubectl and must be the same set of
#               objects before anything is timed.
#               The same templates at 50 instances each (10,000 objects): kdeploy and helm, both counted.
#   floor       parsing and re-emitting that output with kdeploy's own YAML code (examples/yaml-floor)
#   start-up    rendering the tiny bundled example
#   vault       decrypting 1,000 values: kdeploy vs sops -d
#   diff/apply  300 objects against the local control plane: kdeploy vs kubectl --server-side, diff with
#               no changes and with 10% changed, plus the floor of 300 bare dry runs (examples/dry-run-floor)
#               against the same live objects kdeploy diff compares with
#   memory      peak resident memory of each command (GNU time)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-10}

. "$repo/benches/need.sh"
need hyperfine jq time
cargo build --release --quiet
cargo build --release --quiet --example yaml-floor --example dry-run-floor
kdeploy=$repo/target/release/kdeploy
floor=$repo/target/release/examples/yaml-floor
dry_floor=$repo/target/release/examples/dry-run-floor
tools=$("$repo/scripts/tools/build.sh" sops helm kustomize)
k8s=$("$repo/scripts/cluster/build.sh")

work=$(mktemp -d)
trap 'rm -rf "$work"; "$repo/scripts/dev-cluster" down > /dev/null 2>&1 || true' EXIT
export KDEPLOY_CLUSTER_DIR=$repo/target/bench-cluster
results=$work/results.md
: > "$results"

. "$repo/benches/bench.sh"

peak_kib() { /usr/bin/time -f %M sh -c "$1 > /dev/null 2>&1" 2>&1 | tail -1; }

# --- the render workload, three ways -----------------------------------------------------------------
. "$repo/benches/workload.sh"

# Every output, decoded by kubectl, as one sorted JSON list.
decoded() {
  KUBECONFIG=/dev/null "$k8s/kubectl" label --local -f "$1" kdeploy-bench=x -o json |
    jq -S -s 'map(if .kind == "List" then .items[] else . end) | map(del(.metadata.labels["kdeploy-bench"])) | sort_by(.kind, .metadata.name)'
}

gen "$work/render" 5
gen "$work/render10k" 50
r=$work/render
(cd "$r/kdeploy" && "$kdeploy" render) > "$r/kdeploy.yaml"
"$tools/helm" template bench "$r/helm" > "$r/helm.yaml"
"$tools/kustomize" build "$r/kustomize" > "$r/kustomize.yaml"
"$floor" "$r/kdeploy.yaml" > "$r/floor.yaml"
decoded "$r/kdeploy.yaml" > "$r/kdeploy.json"
objects=$(jq length "$r/kdeploy.json")
[ "$objects" -eq 1000 ] || { echo "compare.sh: kdeploy rendered $objects objects, expected 1000" >&2; exit 1; }
for other in helm kustomize floor; do
  if ! decoded "$r/$other.yaml" | cmp -s - "$r/kdeploy.json"; then
    echo "compare.sh: $other's output is not the same set of objects as kdeploy's:" >&2
    decoded "$r/$other.yaml" | diff - "$r/kdeploy.json" | head -20 >&2
    exit 1
  fi
done
echo "render outputs checked: 1,000 identical objects from kdeploy, helm, kustomize and the floor" >&2

bench "Render 1,000 objects (50 templates, 200 values)" \
  -n "kdeploy render" "cd $r/kdeploy && $kdeploy render" \
  -n "helm template" "$tools/helm template bench $r/helm" \
  -n "kustomize build (static base)" "$tools/kustomize build $r/kustomize" \
  -n "floor: parse + emit with kdeploy's YAML code" "$floor $r/kdeploy.yaml"
r10k=$work/render10k
(cd "$r10k/kdeploy" && "$kdeploy" render) > "$r10k/kdeploy.yaml"
"$tools/helm" template bench "$r10k/helm" > "$r10k/helm.yaml"
for out in kdeploy helm; do
  n=$(grep -c '^kind:' "$r10k/$out.yaml")
  [ "$n" -eq 10000 ] || { echo "compare.sh: $out rendered $n objects, expected 10000" >&2; exit 1; }
done
bench "Render 10,000 objects (the same 50 templates, 50 instances each)" \
  -n "kdeploy render" "cd $r10k/kdeploy && $kdeploy render" \
  -n "helm template" "$tools/helm template bench $r10k/helm" \
  -n "floor: parse + emit with kdeploy's YAML code" "$floor $r10k/kdeploy.yaml"

# --- start-up ------------------------------------------------------------------------------------------
mkdir -p "$work/tiny/helm/templates" "$work/tiny/kustomize"
printf 'apiVersion: v2\nname: tiny\nversion: 0.1.0\n' > "$work/tiny/helm/Chart.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tiny}\ndata: {a: "1"}\n' | tee "$work/tiny/helm/templates/cm.yaml" > "$work/tiny/kustomize/cm.yaml"
printf 'resources: [cm.yaml]\n' > "$work/tiny/kustomize/kustomization.yaml"
bench "Start-up: render the tiny bundled example (5 objects) / one ConfigMap" \
  -N -n "kdeploy render (bundled example)" "$kdeploy render -p $repo/kdeploy.yaml" \
  -n "helm template (one ConfigMap)" "$tools/helm template tiny $work/tiny/helm" \
  -n "kustomize build (one ConfigMap)" "$tools/kustomize build $work/tiny/kustomize"

# --- vault ---------------------------------------------------------------------------------------------
v=$work/vault
mkdir -p "$v"
recipient=$(cd "$v" && HOME=$v KDEPLOY_NO_KEYRING=1 "$kdeploy" vault init --file "$v/key.txt" 2> /dev/null) # outside any project
for g in $(seq 1 20); do echo "group$g:"; for k in $(seq 1 50); do echo "  key$k: \"value-$g-$k-$(printf '%032d' "$k")\""; done; done > "$v/secrets.yaml"
HOME=$v "$kdeploy" vault encrypt "$v/secrets.yaml" -r "$recipient" 2> /dev/null
SOPS_AGE_KEY_FILE=$v/key.txt "$tools/sops" -d "$v/secrets.yaml" > /dev/null
bench "Vault: decrypt 1,000 values" \
  -n "kdeploy vault decrypt" "HOME=$v KDEPLOY_NO_KEYRING=1 $kdeploy vault decrypt $v/secrets.yaml --identity $v/key.txt" \
  -n "sops -d" "SOPS_AGE_KEY_FILE=$v/key.txt $tools/sops -d $v/secrets.yaml"

# --- diff and apply of 300 objects -------------------------------------------------------------------------
eval "$("$repo/scripts/dev-cluster" up 2> /dev/null)"
kubectl=$KDEPLOY_CLUSTER_DIR/kubectl
d=$work/deploy
mkdir -p "$d/manifests"
cat > "$d/manifests/objects.yaml" << 'T'
{% for i in range(end=150) %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "config-{{ i }}"}
data: {index: "{{ i }}", greeting: "hello: {{ i }}", version: "{{ values.version | default(value='1') }}"}
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
T
(cd "$d" && "$kdeploy" render -n bench-kubectl) > "$d/rendered.yaml"
(cd "$d" && "$kdeploy" render -n bench-kubectl -v version=2) > "$d/rendered-changed.yaml" # 30 of 300 change
for ns in bench-kdeploy bench-kubectl; do "$kubectl" create namespace "$ns" > /dev/null; done
empty() { echo "$kubectl delete configmap,service,deployment,secret -n $1 --all --wait=true > /dev/null 2>&1"; }
# After the first-apply runs, the controllers are still collecting the ReplicaSets and Pods of the deleted
# Deployments and rolling out the new ones. Let that settle (one ReplicaSet and Pod per Deployment, all
# available) so the later timings do not share the 2 cores with it.
settle() {
  local deployments
  deployments=$("$kubectl" get deployment -n "$1" --no-headers | wc -l)
  for _ in $(seq 1 180); do
    [ "$("$kubectl" get replicaset,pod -n "$1" --no-headers | wc -l)" -eq $((2 * deployments)) ] && break
    sleep 1
  done
  "$kubectl" wait --for=condition=Available deployment --all -n "$1" --timeout=120s > /dev/null
}
kd="cd $d && $kdeploy"
bench "Apply 300 objects (first apply; the namespace is emptied before each run)" \
  --prepare "$(empty bench-kdeploy)" -n "kdeploy apply --no-wait" "$kd apply --yes --no-wait -n bench-kdeploy --applyset bench" \
  --prepare "$(empty bench-kubectl)" -n "kubectl apply --server-side" "$kubectl apply --server-side -f $d/rendered.yaml"
settle bench-kdeploy
settle bench-kubectl
bench "Apply 300 objects (no-op re-apply)" \
  -n "kdeploy apply --no-wait" "$kd apply --yes --no-wait -n bench-kdeploy --applyset bench" \
  -n "kubectl apply --server-side" "$kubectl apply --server-side -f $d/rendered.yaml"
bench "Diff 300 objects, no changes" -i \
  -n "kdeploy diff" "$kd diff -n bench-kdeploy --applyset bench" \
  -n "kubectl diff --server-side" "$kubectl diff --server-side -f $d/rendered.yaml" \
  -n "floor: 300 bare dry runs at concurrency 8" "KUBECONFIG=$KUBECONFIG $dry_floor $d/rendered.yaml bench-kdeploy"
bench "Diff 300 objects, 10% changed" -i \
  -n "kdeploy diff" "$kd diff -n bench-kdeploy --applyset bench -v version=2" \
  -n "kubectl diff --server-side" "$kubectl diff --server-side -f $d/rendered-changed.yaml"

# --- peak memory ---------------------------------------------------------------------------------------
memory() { # memory WORKLOAD LABEL COMMAND [LABEL COMMAND]...: kdeploy first; one run each
  local workload=$1 reference="" label kib
  shift
  while [ $# -gt 0 ]; do
    label=$1 kib=$(peak_kib "$2")
    shift 2
    [ -n "$reference" ] || reference=$kib
    echo "| $workload | $label | $kib | $(awk -v a="$reference" -v b="$kib" 'BEGIN { printf "%.2f", a / b }') |"
  done
}
{
  echo "### Peak memory (maximum resident set, one run each)"
  echo
  echo "| Workload | Command | Peak [KiB] | kdeploy ÷ this |"
  echo "|:---|:---|---:|---:|"
  memory "render 1,000 objects" "kdeploy render" "cd $r/kdeploy && $kdeploy render" \
    "helm template" "$tools/helm template bench $r/helm" "kustomize build" "$tools/kustomize build $r/kustomize"
  memory "decrypt 1,000 values" "kdeploy vault decrypt" \
    "HOME=$v KDEPLOY_NO_KEYRING=1 $kdeploy vault decrypt $v/secrets.yaml --identity $v/key.txt" \
    "sops -d" "SOPS_AGE_KEY_FILE=$v/key.txt $tools/sops -d $v/secrets.yaml"
  memory "diff 300 objects" "kdeploy diff" "$kd diff -n bench-kdeploy --applyset bench" \
    "kubectl diff --server-side" "$kubectl diff --server-side -f $d/rendered.yaml"
  memory "apply 300 objects (no-op)" "kdeploy apply" "$kd apply --yes --no-wait -n bench-kdeploy --applyset bench" \
    "kubectl apply --server-side" "$kubectl apply --server-side -f $d/rendered.yaml"
  echo
} >> "$results"

version() { "$@" 2> /dev/null | head -1; }
{
  echo "Run on $(date -u +%Y-%m-%d) with \`RUNS=$runs benches/compare.sh\`: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sm)."
  echo "Versions: kdeploy $("$kdeploy" --version | cut -d' ' -f2), helm $("$tools/helm" version --short 2> /dev/null),"
  echo "kustomize $(version "$tools/kustomize" version), sops $(SOPS_DISABLE_VERSION_CHECK=1 "$tools/sops" --disable-version-check --version 2> /dev/null | head -1 | cut -d' ' -f2),"
  echo "kubectl and the control plane $("$kubectl" version --client -o json | jq -r .clientVersion.gitVersion)."
  echo "ytt and kapp could not be installed here (see the script's header)."
  echo
  echo "Times are the median, fastest and slowest of $runs runs after one warm-up. The last column is kdeploy's"
  echo "median divided by that command's: below 1.00, kdeploy is faster."
  echo
  cat "$results"
} > "$repo/benches/results/compare.md"

# Replace the generated section of BENCHMARKS.md.
python3 "$repo/benches/replace_section.py" "$repo/BENCHMARKS.md" compare "$repo/benches/results/compare.md" \
  'Side by side (`benches/compare.sh`)'
cat "$repo/benches/results/compare.md"
