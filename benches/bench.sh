# Sourced by the side-by-side scripts: `bench TITLE hyperfine-args...` times the commands with hyperfine
# (one warm-up, then $runs runs) and appends a table under TITLE to $results; $work holds its JSON.
bench() {
  local title=$1
  shift
  hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/one.json" "$@" > /dev/null
  { echo "### $title"; echo; python3 "$repo/benches/hyperfine_table.py" "$work/one.json"; echo; } >> "$results"
}
