#!/usr/bin/env bash
# Offline validation, timed: `kdeploy render` with and without validation (what validation adds to a
# render), and the rendered objects checked by `kdeploy validate -m` beside kubeconform v0.8.0 (built
# from the Go module proxy by scripts/tools/build.sh) with the same Kubernetes 1.36 schemas passed
# locally (benches/kubeconform_schemas.py writes them from kdeploy's embedded ones). Writes
# benches/results/validate.md and the section between the validate markers in BENCHMARKS.md.
#
#   RUNS=10 benches/validate.sh
#
# Workload: the render workload of benches/compare.sh (Deployments, Services, ConfigMaps, Secrets from
# 50 templates with loops), at 1,000 and 10,000 objects. Both validators must find the output valid
# before anything is timed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=${RUNS:-10}

. "$repo/benches/need.sh"
need hyperfine jq
cargo build --release --quiet
kdeploy=$repo/target/release/kdeploy
tools=$("$repo/scripts/tools/build.sh" kubeconform)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=$work/results.md
: > "$results"
. "$repo/benches/bench.sh"
. "$repo/benches/workload.sh"

schemas=$work/schemas
mkdir -p "$schemas"
python3 "$repo/benches/kubeconform_schemas.py" "$repo/crates/core/src/check/kubernetes/v1.36.json.gz" "$schemas" \
  Deployment:apps/v1 Service:v1 ConfigMap:v1 Secret:v1
# One command word for hyperfine: the schema-location template has spaces in it.
cat > "$work/kubeconform" << EOF
#!/bin/sh
exec "$tools/kubeconform" -strict -summary -kubernetes-version 1.36.3 \\
  -schema-location '$schemas/{{ .ResourceKind }}-{{ .Group }}-{{ .ResourceAPIVersion }}.json' "\$@"
EOF
chmod +x "$work/kubeconform"
kubeconform=("$work/kubeconform")

for size in 1000 10000; do
  instances=$((size / 200))
  dir=$work/render$size
  gen "$dir" "$instances"
  (cd "$dir/kdeploy" && "$kdeploy" render) > "$dir/out.yaml"
  objects=$(grep -c '^kind: ' "$dir/out.yaml")
  [ "$objects" -eq "$size" ] || { echo "validate.sh: rendered $objects objects, expected $size" >&2; exit 1; }
  "${kubeconform[@]}" "$dir/out.yaml" | grep -q "Valid: $size, Invalid: 0, Errors: 0" ||
    { echo "validate.sh: kubeconform does not find the $size objects valid:" >&2; "${kubeconform[@]}" "$dir/out.yaml" >&2; exit 1; }
  "$kdeploy" validate -m "$dir/out.yaml" 2> /dev/null
  bench "render, $size objects: what validation adds" \
    -n "kdeploy render --no-validate" "cd $dir/kdeploy && $kdeploy render --no-validate" \
    -n "kdeploy render (validates)" "cd $dir/kdeploy && $kdeploy render"
  bench "validating the $size rendered objects (one YAML file)" \
    -n "kdeploy validate -m" "$kdeploy validate -m $dir/out.yaml" \
    -n "kubeconform -strict" "$work/kubeconform $dir/out.yaml"
done

mkdir -p "$repo/benches/results"
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, kdeploy $(git -C "$repo" rev-parse --short HEAD), kubeconform v0.8.0,"
  echo "medians of $runs runs after a warm-up (\`RUNS=$runs benches/validate.sh\`)."
  echo
  cat "$results"
} > "$repo/benches/results/validate.md"
python3 "$repo/benches/replace_section.py" "$repo/BENCHMARKS.md" validate "$repo/benches/results/validate.md" "Offline validation: side by side (generated)"
echo "validate.sh: wrote benches/results/validate.md and BENCHMARKS.md" >&2
