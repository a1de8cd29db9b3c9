# Sourced by the benchmark scripts: `need COMMAND...` installs the Debian packages the benchmarks use
# (hyperfine, jq, curl, and GNU time as /usr/bin/time) when they are missing.
need() {
  local missing=() command
  for command in "$@"; do
    case $command in
      time) [ -x /usr/bin/time ] || missing+=(time) ;;
      *) command -v "$command" > /dev/null || missing+=("$command") ;;
    esac
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -qq "${missing[@]}" > /dev/null
}
