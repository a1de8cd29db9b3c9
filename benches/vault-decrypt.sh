#!/usr/bin/env bash
# Decrypting a vault file of 1,000 values: `kdeploy vault decrypt` against `sops -d`, same file, same age
# identity, timed side by side with hyperfine (warm-up, then repeated runs). Writes the table to
# benches/results/vault-decrypt.md and prints it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if ! command -v hyperfine > /dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -qq hyperfine > /dev/null
fi
cargo build --release --quiet
kdeploy=$repo/target/release/kdeploy
sops=$("$repo/scripts/tools/build.sh" sops)/sops

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=$work KDEPLOY_NO_KEYRING=1
unset SOPS_AGE_KEY SOPS_AGE_KEY_FILE
recipient=$(cd "$work" && "$kdeploy" vault init --file "$work/key.txt") # outside any project
for group in $(seq 1 20); do
  echo "group$group:"
  for key in $(seq 1 50); do
    echo "  key$key: \"value-$group-$key-$(printf '%032d' "$key")\""
  done
done > "$work/secrets.yaml"
"$kdeploy" vault encrypt "$work/secrets.yaml" -r "$recipient" 2> /dev/null
SOPS_AGE_KEY_FILE=$work/key.txt "$sops" -d "$work/secrets.yaml" > /dev/null # both can read it

mkdir -p "$repo/benches/results"
SOPS_AGE_KEY_FILE=$work/key.txt hyperfine --warmup 3 --runs 30 --style basic \
  --export-markdown "$repo/benches/results/vault-decrypt.md" \
  -n "kdeploy vault decrypt" "$kdeploy vault decrypt $work/secrets.yaml --identity $work/key.txt" \
  -n "sops -d" "$sops -d $work/secrets.yaml"
cat "$repo/benches/results/vault-decrypt.md"
