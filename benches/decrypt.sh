#!/usr/bin/env bash
# Decrypting a SOPS file whose data key is wrapped by an OpenBao transit key, and one wrapped by an AWS
# KMS key: `kdeploy vault decrypt` beside `sops -d`, with hyperfine (a warm-up, then RUNS runs each).
# Both servers run on loopback (OpenBao's dev server; moto's server mode for KMS), so the times are the
# tools' own plus one loopback round trip each. Prints a markdown table (medians, kdeploy ÷ sops).
#
#   benches/decrypt.sh            (RUNS=30 by default; KDEPLOY=path/to/kdeploy to time a build you have)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-30}
. "$repo/benches/need.sh"
need hyperfine
kdeploy=${KDEPLOY:-}
if [ -z "$kdeploy" ]; then
  (cd "$repo" && cargo build --release --quiet)
  kdeploy=$repo/target/release/kdeploy
fi
sops=$("$repo/scripts/tools/build.sh" sops)/sops
py=$("$repo/scripts/tools/venv.sh")

work=$(mktemp -d)
cd "$work"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bao_port=$(port); moto_port=$(port)
"$py/bao" server -dev -dev-listen-address="127.0.0.1:$bao_port" -dev-root-token-id=root > bao.log 2>&1 & bao_pid=$!
"$py/moto_server" -H 127.0.0.1 -p "$moto_port" > moto.log 2>&1 & moto_pid=$!
trap 'kill $bao_pid $moto_pid 2> /dev/null; rm -rf "$work"' EXIT
export HOME=$work KDEPLOY_NO_KEYRING=1 VAULT_ADDR=http://127.0.0.1:$bao_port VAULT_TOKEN=root
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
for _ in $(seq 60); do "$py/bao" status > /dev/null 2>&1 && break; sleep 0.5; done
"$py/bao" secrets enable transit > /dev/null
"$py/bao" write -f transit/keys/bench > /dev/null
arn=$("$py/python" "$repo/scripts/stores/aws-fixture" create-key)

printf 'db:\n  user: app\n  password: hunter2\n  port: 5432\napi_token: abc123\n' > plain.yaml
"$sops" -e --hc-vault-transit "$VAULT_ADDR/v1/transit/keys/bench" plain.yaml > transit.yaml
"$sops" -e --kms "$arn" plain.yaml > kms.yaml

echo "| file | kdeploy vault decrypt | sops -d | kdeploy ÷ sops |"
echo "|---|---:|---:|---:|"
for file in transit kms; do
  hyperfine -N --style none --warmup 2 --runs "$runs" --export-json "$file.json" \
    "$kdeploy vault decrypt $file.yaml" "$sops -d $file.yaml" > /dev/null
  python3 - "$file" "$file.json" <<'PY'
import json, statistics, sys
runs = [statistics.median(r["times"]) for r in json.load(open(sys.argv[2]))["results"]]
print(f"| {sys.argv[1]}-wrapped | {runs[0]*1000:.1f} ms | {runs[1]*1000:.1f} ms | {runs[0]/runs[1]:.2f} |")
PY
done
