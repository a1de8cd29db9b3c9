#!/usr/bin/env bash
# kdeploy against kubectl and helm at a cloud API server's distance: toxiproxy (built from its Go module)
# sits between every client and the local control plane, adding LATENCY ms each way (0 and 10: a 20 ms
# round trip, like EKS or GKE from a CI runner). Writes benches/results/latency.md and the section
# between the latency markers in BENCHMARKS.md.
#
#   benches/latency.sh                                  everything (about 40 minutes on 2 cores)
#   SIZES=300 LATENCIES=10 RUNS=5 benches/latency.sh    one size, one distance
#   BIG_PEERS=goal benches/latency.sh                   at 5,000 objects, only the peers the goal of
#                                                       issue #14 compares with (kubectl diff and no-op
#                                                       apply): helm and kubectl take minutes a command there
#   PEERS=none benches/latency.sh                       kdeploy's rows (and the floors) only, at every size
#
# A run without every peer keeps the peer rows it did not measure from the last full run's results
# (target/latency), with their ratios against the new kdeploy medians; the table's header line says which
# rows come from when.
#
# Workloads, each at both sizes:
#   300    objects in one namespace: 150 ConfigMaps, 100 Services, 50 Deployments
#   5000   objects across 50 namespaces and 10 kinds: ConfigMaps, Secrets, Services, ServiceAccounts,
#          Roles, RoleBindings, NetworkPolicies, PodDisruptionBudgets and two custom resources
# Operations: first apply (into empty namespaces), no-op apply, diff with no change, diff with 10% of
# the objects changed (a label), and pruning a fifth of the objects (1,000 at 5,000). The peers get the
# same objects (kdeploy renders them; each tool deploys its own copy under its own namespace prefix):
# `kubectl apply --server-side`, `kubectl diff --server-side`, `helm upgrade --install` of a chart that
# holds the rendered objects, and the floor: the same server-side dry runs alone (examples/dry-run-floor)
# at concurrency 8 and 32.
#
# Each cell is the median of RUNS runs (BIG_RUNS at 5,000 objects; the peers take minutes there) with
# the peak resident memory from GNU time. The last column is kdeploy's median divided by the command's.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-3}
big_runs=${BIG_RUNS:-1}
big_peers=${BIG_PEERS:-all}
peers=${PEERS:-all}
sizes=${SIZES:-300 5000}
latencies=${LATENCIES:-0 10}

. "$repo/benches/need.sh"
need jq curl time
cargo build --release --quiet
cargo build --release --quiet --example dry-run-floor
kdeploy=$repo/target/release/kdeploy
floor=$repo/target/release/examples/dry-run-floor
tools=$("$repo/scripts/tools/build.sh" helm toxiproxy)
"$repo/scripts/cluster/build.sh" > /dev/null

work=$(mktemp -d)
export KDEPLOY_CLUSTER_DIR=$repo/target/bench-cluster
export KDEPLOY_CACHE_DIR=$work/cache
toxiproxy_pid=""
cleanup() {
  [ -z "$toxiproxy_pid" ] || kill "$toxiproxy_pid" 2> /dev/null || true
  "$repo/scripts/dev-cluster" down > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$("$repo/scripts/dev-cluster" up 2> /dev/null)"
direct=$KUBECONFIG
kubectl=$KDEPLOY_CLUSTER_DIR/kubectl
k() { "$kubectl" --kubeconfig "$direct" "$@"; }

# --- toxiproxy in front of the API server --------------------------------------------------------------
toxi_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tools/toxiproxy-server" -host 127.0.0.1 -port "$toxi_port" > "$work/toxiproxy.log" 2>&1 &
toxiproxy_pid=$!
toxi() { curl -fsS -X "$1" "http://127.0.0.1:$toxi_port$2" ${3:+-d "$3"} > /dev/null; }
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$toxi_port/version" > /dev/null 2>&1 && break; sleep 0.2; done
server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
toxi POST /proxies "{\"name\": \"api\", \"listen\": \"127.0.0.1:$proxy_port\", \"upstream\": \"${server#https://}\"}"
sed "s#$server#https://127.0.0.1:$proxy_port#" "$direct" > "$work/proxied.kubeconfig"
export KUBECONFIG=$work/proxied.kubeconfig
set_latency() {
  for stream in upstream downstream; do
    toxi DELETE "/proxies/api/toxics/latency_$stream" 2> /dev/null || true
    [ "$1" -eq 0 ] || toxi POST /proxies/api/toxics \
      "{\"name\": \"latency_$stream\", \"type\": \"latency\", \"stream\": \"$stream\", \"attributes\": {\"latency\": $1}}"
  done
}

# --- the projects -------------------------------------------------------------------------------------
# One kdeploy project per size. `values.prefix` names the namespaces (each tool deploys its own copy),
# `values.version` changes a label on every tenth object, `values.prune` leaves out every fifth object.
mkdir -p "$work/p300/manifests" "$work/p5000/manifests"
cat > "$work/p300/manifests/objects.yaml" << 'T'
{% set ns = values.prefix ~ "-0" %}
{% for i in range(end=150) %}{% if not (values.prune and i % 5 == 4) %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "config-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
data: {index: "{{ i }}", greeting: "hello: {{ i }}"}
{% endif %}{% endfor %}
{% for i in range(end=100) %}{% if not (values.prune and i % 5 == 4) %}
---
apiVersion: v1
kind: Service
metadata: {name: "svc-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec:
  selector: {app: "app-{{ i }}"}
  ports: [{port: 80, targetPort: 8080}]
{% endif %}{% endfor %}
{% for i in range(end=50) %}{% if not (values.prune and i % 5 == 4) %}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: "app-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec:
  replicas: 1
  selector: {matchLabels: {app: "app-{{ i }}"}}
  template:
    metadata: {labels: {app: "app-{{ i }}"}}
    spec:
      containers: [{name: app, image: "nginx:1.27"}]
{% endif %}{% endfor %}
T
cat > "$work/p5000/manifests/objects.yaml" << 'T'
{% for n in range(end=50) %}{% set ns = values.prefix ~ "-" ~ n %}
{% for i in range(end=10) %}{% if not (values.prune and i % 5 == 4) %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "config-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
data: {index: "{{ i }}", greeting: "hello: {{ i }}"}
---
apiVersion: v1
kind: Secret
metadata: {name: "secret-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
stringData: {token: "t-{{ n }}-{{ i }}"}
---
apiVersion: v1
kind: Service
metadata: {name: "svc-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec: {selector: {app: "app-{{ i }}"}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: "sa-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "role-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "binding-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "role-{{ i }}"}
subjects: [{kind: ServiceAccount, name: "sa-{{ i }}", namespace: "{{ ns }}"}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: "policy-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec: {podSelector: {matchLabels: {app: "app-{{ i }}"}}, policyTypes: [Ingress]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: "pdb-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec: {minAvailable: 1, selector: {matchLabels: {app: "app-{{ i }}"}}}
---
apiVersion: bench.kdeploy.dev/v1
kind: Widget
metadata: {name: "widget-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec: {size: {{ i }}, color: blue}
---
apiVersion: bench.kdeploy.dev/v1
kind: Gadget
metadata: {name: "gadget-{{ i }}", namespace: "{{ ns }}", labels: {LABELS}}
spec: {parts: [a, b, c]}
{% endif %}{% endfor %}
{% endfor %}
T
sed -i 's/LABELS/bench: "{{ values.prefix }}"{% if i % 10 == 0 %}, version: "{{ values.version }}"{% endif %}/' \
  "$work/p300/manifests/objects.yaml" "$work/p5000/manifests/objects.yaml"
for kind in Widget Gadget; do
  plural=$(echo "${kind}s" | tr '[:upper:]' '[:lower:]')
  cat << T
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: $plural.bench.kdeploy.dev}
spec:
  group: bench.kdeploy.dev
  scope: Namespaced
  names: {kind: $kind, plural: $plural}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}}
---
T
done > "$work/crds.yaml"
k apply -f "$work/crds.yaml" > /dev/null
k wait --for=condition=Established crd/widgets.bench.kdeploy.dev crd/gadgets.bench.kdeploy.dev > /dev/null

kinds300=configmap,service,deployment
kinds5000=configmap,secret,service,serviceaccount,role,rolebinding,networkpolicy,poddisruptionbudget,widgets.bench.kdeploy.dev,gadgets.bench.kdeploy.dev

# --- measuring ----------------------------------------------------------------------------------------
# Each size and distance's rows go to target/latency/SIZE-LATENCY.md (with the commit and date they were
# measured at), so a run of one size or distance (SIZES=5000 LATENCIES=0) joins earlier runs of the
# others in the report, and what was measured survives a failure.
mkdir -p "$repo/target/latency"
# measure RUNS PREPARE COMMAND: runs COMMAND RUNS times (PREPARE before each, untimed); prints
# "median min max peak_kib" (seconds).
measure() {
  local n=$1 prepare=$2 command=$3 i
  : > "$work/times"
  for i in $(seq "$n"); do
    [ -z "$prepare" ] || sh -c "$prepare" > /dev/null 2>&1
    # kubectl diff and kdeploy diff exit 1 when there are differences.
    local allowed=0
    case $command in *" diff "*) allowed=1 ;; esac
    /usr/bin/time -f "%e %M" -o "$work/one" sh -c "$command" > /dev/null 2> "$work/stderr" || {
      grep -q "non-zero status $allowed\$" "$work/one" && [ "$allowed" -eq 1 ] || {
        echo "latency.sh: failed: $command" >&2
        tail -20 "$work/stderr" >&2
        exit 1
      }
    }
    tail -1 "$work/one" >> "$work/times"
  done
  sort -n "$work/times" | awk '{t[NR] = $1; if ($2 > m) m = $2} END {
    med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2; printf "%.2f %.2f %.2f %d\n", med, t[1], t[NR], m }'
}
# row WORKLOAD LATENCY LABEL RESULT [REFERENCE]: one table row; REFERENCE is kdeploy's median.
row() {
  # measure runs in a subshell: its failure shows here as an empty result.
  [ -n "$4" ] || { echo "latency.sh: stopping: $3 failed" >&2; exit 1; }
  local ratio="1.00 (kdeploy)"
  read -r median min max peak <<< "$4"
  [ -z "${5:-}" ] || ratio=$(awk -v a="$5" -v b="$median" 'BEGIN { printf "%.3f", a / b }')
  echo "| $1 | $2 | $3 | $median | $min | $max | $((peak / 1024)) | $ratio |" >> "$results"
}

# per_namespace COMMAND FILE_PREFIX NAMESPACES: COMMAND once per namespace on that namespace's objects
# (FILE_PREFIX-N.yaml, split by split_by_namespace), as one shell command.
per_namespace() {
  local i commands=""
  for i in $(seq 0 $(($3 - 1))); do commands="$commands$1 -n kc-$i -f $2-$i.yaml && "; done
  echo "${commands}true"
}
# split_by_namespace FILE: FILE's documents into FILE_PREFIX-N.yaml by their namespace (kc-N).
split_by_namespace() {
  awk -v prefix="${1%.yaml}" '
    /^---$/ { if (doc != "") flush(); doc = ""; next }
    { doc = doc $0 "\n"; if (match($0, /^  namespace: kc-[0-9]+$/)) ns = substr($0, 17) }
    function flush() { printf "---\n%s", doc > (prefix "-" ns ".yaml"); ns = "" }
    END { if (doc != "") flush() }' "$1"
}

# keep_earlier_peers NEW EARLIER: NEW's rows in EARLIER's order, with EARLIER's rows of the peers NEW
# did not measure, their ratio recomputed against NEW's kdeploy median for the same workload. A row NEW
# has and EARLIER had not goes after the last row of its workload.
keep_earlier_peers() {
  awk -F'|' -v OFS='|' '
    function flush(workload,   i, f) {
      for (i = 1; i <= n; i++) {
        split(order[i], f, "|")
        if ((workload == "" || f[2] == workload) && !((f[2] "|" f[4]) in used)) { print order[i]; used[f[2] "|" f[4]] = 1 }
      }
    }
    FNR == NR { order[++n] = $0; fresh[$2 "|" $4] = $0; if ($9 ~ /\(kdeploy\)/) ref[$2] = $5 + 0; next }
    FNR == 1 { next }
    {
      if (last != "" && $2 != last) flush(last)
      last = $2
      key = $2 "|" $4
      if (key in fresh) { print fresh[key]; used[key] = 1; next }
      if ($4 ~ /^ (kdeploy|floor)/ || !($2 in ref)) next
      $9 = sprintf(" %.3f ", ref[$2] / $5); print
    }
    END { flush("") }' "$1" "$2"
}

empty() { # the objects of one tool's copy
  echo "$kubectl --kubeconfig $direct delete $1 -A -l bench=$2 --wait=true"
}

commit=$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo "+changes")
last_size=$(echo $sizes | awk '{print $NF}')
last_latency=$(echo $latencies | awk '{print $NF}')
for size in $sizes; do
  p=$work/p$size
  n=$runs; [ "$size" -lt 1000 ] || n=$big_runs
  kinds=$(eval echo "\$kinds$size")
  namespaces=1; [ "$size" -lt 1000 ] || namespaces=50
  for prefix in kd kc hm; do
    for i in $(seq 0 $((namespaces - 1))); do echo "apiVersion: v1
kind: Namespace
metadata: {name: $prefix-$i}
---"; done | k apply -f - > /dev/null
  done
  (cd "$p" && "$kdeploy" render -v prefix=kc -v version=1) > "$p/kc.yaml"
  (cd "$p" && "$kdeploy" render -v prefix=kc -v version=2) > "$p/kc-changed.yaml"
  (cd "$p" && "$kdeploy" render -v prefix=kc -v version=1 -v prune=true) > "$p/kc-pruned.yaml"
  (cd "$p" && "$kdeploy" render -v prefix=kd -v version=1) > "$p/kd.yaml"
  split_by_namespace "$p/kc.yaml"
  split_by_namespace "$p/kc-pruned.yaml"
  objects=$(grep -c '^kind:' "$p/kd.yaml")
  pruned=$((objects - $(grep -c '^kind:' "$p/kc-pruned.yaml")))
  for chart in full pruned; do
    mkdir -p "$p/chart-$chart/templates"
    printf 'apiVersion: v2\nname: bench\nversion: 0.1.0\n' > "$p/chart-$chart/Chart.yaml"
  done
  (cd "$p" && "$kdeploy" render -v prefix=hm -v version=1) > "$p/chart-full/templates/objects.yaml"
  (cd "$p" && "$kdeploy" render -v prefix=hm -v version=1 -v prune=true) > "$p/chart-pruned/templates/objects.yaml"
  kd="cd $p && $kdeploy"
  kd_apply="$kd apply --yes --no-wait -n kd-0 --applyset bench -v prefix=kd -v version=1"
  kc_apply="$kubectl apply --server-side -f $p/kc.yaml"
  hm_apply="$tools/helm upgrade --install bench $p/chart-full -n hm-0"
  label="$objects objects"
  # Which peers run at this size: all, goal (kubectl's diff and no-op apply) or none.
  level=$peers
  [ "$size" -lt 1000 ] || [ "$level" = none ] || level=$big_peers
  all_peers=1
  [ "$level" = all ] || all_peers=0
  for latency in $latencies; do
    results=$repo/target/latency/$size-$latency.md.partial
    : > "$results"
    set_latency "$latency"
    rtt="$((2 * latency)) ms"
    # First apply, into empty namespaces.
    r=$(measure "$n" "$(empty "$kinds" kd)" "$kd_apply"); row "first apply, $label" "$rtt" "kdeploy apply" "$r"; ref=$(cut -d' ' -f1 <<< "$r")
    if [ "$all_peers" -eq 1 ]; then
      row "first apply, $label" "$rtt" "kubectl apply --server-side" "$(measure "$n" "$(empty "$kinds" kc)" "$kc_apply")" "$ref"
      row "first apply, $label" "$rtt" "helm upgrade --install" \
        "$(measure "$n" "$tools/helm uninstall bench -n hm-0 --wait; $(empty "$kinds" hm)" "$hm_apply")" "$ref"
    elif [ "$level" = goal ]; then
      sh -c "$kc_apply" > /dev/null # kubectl's copy, for its no-op apply and diffs
    fi
    # No-op apply.
    r=$(measure "$n" "" "$kd_apply"); row "no-op apply, $label" "$rtt" "kdeploy apply" "$r"; ref=$(cut -d' ' -f1 <<< "$r")
    [ "$level" = none ] || row "no-op apply, $label" "$rtt" "kubectl apply --server-side" "$(measure "$n" "" "$kc_apply")" "$ref"
    [ "$all_peers" -eq 0 ] || row "no-op apply, $label" "$rtt" "helm upgrade" "$(measure "$n" "" "$hm_apply")" "$ref"
    # Diff, no change and 10% changed.
    r=$(measure "$n" "" "$kd diff -n kd-0 --applyset bench -v prefix=kd -v version=1"); row "diff (no change), $label" "$rtt" "kdeploy diff" "$r"; ref=$(cut -d' ' -f1 <<< "$r")
    [ "$level" = none ] || row "diff (no change), $label" "$rtt" "kubectl diff --server-side" "$(measure "$n" "" "$kubectl diff --server-side -f $p/kc.yaml")" "$ref"
    row "diff (no change), $label" "$rtt" "kdeploy diff --full-dry-run" "$(measure "$n" "" "$kd diff -n kd-0 --applyset bench -v prefix=kd -v version=1 --full-dry-run")" "$ref"
    for c in 8 32 64; do
      row "diff (no change), $label" "$rtt" "floor: $objects dry runs at concurrency $c" "$(measure "$n" "" "$floor $p/kd.yaml kd-0 $c")" "$ref"
    done
    r=$(measure "$n" "" "$kd diff -n kd-0 --applyset bench -v prefix=kd -v version=2"); row "diff (10% changed), $label" "$rtt" "kdeploy diff" "$r"; ref=$(cut -d' ' -f1 <<< "$r")
    [ "$all_peers" -eq 0 ] || row "diff (10% changed), $label" "$rtt" "kubectl diff --server-side" "$(measure "$n" "" "$kubectl diff --server-side -f $p/kc-changed.yaml")" "$ref"
    # Pruning a fifth of the objects (restored, untimed, before each run).
    r=$(measure "$n" "$kd_apply" "$kd_apply -v prune=true"); row "prune $pruned of $label" "$rtt" "kdeploy apply" "$r"; ref=$(cut -d' ' -f1 <<< "$r")
    if [ "$all_peers" -eq 1 ]; then
      # kubectl's ApplySet keeps its members in its parent's namespace, and its label prune refuses
      # objects made by server-side apply: across 50 namespaces, kubectl prunes with one ApplySet per
      # namespace, one invocation each, timed together.
      kc_prune="KUBECTL_APPLYSET=true $kubectl apply --server-side --prune --applyset=secret/bench-kc"
      how="ApplySet"
      [ "$namespaces" -eq 1 ] || how="one ApplySet per namespace, $namespaces invocations"
      row "prune $pruned of $label" "$rtt" "kubectl apply --server-side --prune ($how)" \
        "$(measure "$n" "$(per_namespace "$kc_prune" "$p/kc" $namespaces)" "$(per_namespace "$kc_prune" "$p/kc-pruned" $namespaces)")" "$ref"
      row "prune $pruned of $label" "$rtt" "helm upgrade" "$(measure "$n" "$hm_apply" "$tools/helm upgrade bench $p/chart-pruned -n hm-0")" "$ref"
    fi
    # Empty for the next distance. After the last one the cluster is torn down anyway: emptying
    # 15,000 objects one by one took 25 minutes there.
    set_latency 0
    if [ "$size $latency" != "$last_size $last_latency" ]; then
      "$tools/helm" uninstall bench -n hm-0 --wait > /dev/null 2>&1 || true
      for prefix in kd kc hm; do sh -c "$(empty "$kinds" $prefix)" > /dev/null 2>&1; done
    fi
    header="kdeploy $commit, $(date -u +%Y-%m-%d), medians of $n run(s)"
    earlier=${results%.partial}
    if [ "$all_peers" -eq 0 ] && [ -f "$earlier" ]; then
      header="$header; peers it did not run ($level): $(head -1 "$earlier" | sed 's/^<!-- //; s/ -->$//; s/.*; peers it did not run ([a-z]*): //')"
      keep_earlier_peers "$results" "$earlier" > "$results.merged"
      mv "$results.merged" "$results"
    fi
    { echo "<!-- $header -->"; cat "$results"; } > "$earlier"
    rm "$results"
    echo "latency.sh: $size objects at $rtt done" >&2
  done
done

{
  echo "Run with \`benches/latency.sh\` (\`RUNS\` runs at 300 objects, \`BIG_RUNS\` at 5,000): $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sm)."
  echo "kdeploy $("$kdeploy" --version | cut -d' ' -f2), kubectl and the control plane $("$kubectl" version --client -o json | jq -r .clientVersion.gitVersion), helm $("$tools/helm" version --short 2> /dev/null)."
  echo "Toxiproxy adds the latency each way; every client, kdeploy's too, goes through it."
  echo
  for size in 300 5000; do
    parts=$(ls "$repo/target/latency/$size"-*.md 2> /dev/null | sort -t- -k2 -n) || true
    [ -n "$parts" ] || continue
    echo "### $size objects"
    echo
    for part in $parts; do
      echo "- $((2 * $(basename "$part" .md | cut -d- -f2))) ms round trip: $(head -1 "$part" | sed 's/^<!-- //; s/ -->$//')"
    done
    echo
    echo "| Workload | Round trip | Command | Median [s] | Min [s] | Max [s] | Peak [MiB] | kdeploy ÷ this |"
    echo "|:---|---:|:---|---:|---:|---:|---:|---:|"
    for part in $parts; do tail -n +2 "$part"; done
    echo
  done
} > "$repo/benches/results/latency.md"

python3 "$repo/benches/replace_section.py" "$repo/BENCHMARKS.md" latency "$repo/benches/results/latency.md" \
  'At a distance (`benches/latency.sh`)'
cat "$repo/benches/results/latency.md"
