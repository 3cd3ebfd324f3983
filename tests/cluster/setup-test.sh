#!/usr/bin/env bash
# Tests tests/cluster/setup.sh's precondition check: with one package's binary hidden from PATH,
# `setup.sh --check` must fail at once (no build) and name the package and the command that
# installs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hidden=${1:-umoci}
package=${2:-umoci}

# A PATH with every executable of today's PATH but $hidden.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for file in "$dir"/*; do
    name=${file##*/}
    [ "$name" = "$hidden" ] || [ -e "$bin/$name" ] || [ ! -x "$file" ] || ln -s "$file" "$bin/$name"
  done
done

status=0
output=$(ZEN_FLOW_REAL_NODE=1 PATH=$bin timeout 30 bash "$here/setup.sh" --check 2>&1) || status=$?
fail() { echo "setup-test: $*" >&2; echo "--- setup.sh said:" >&2; echo "$output" >&2; exit 1; }
[ "$status" = 1 ] || fail "with $hidden hidden, setup.sh --check exited $status, not 1"
grep -q "lacks Debian packages: .*\b$package\b" <<<"$output" || fail "the message does not name $package"
grep -q "sudo apt-get update && sudo apt-get install -y .*\b$package\b" <<<"$output" ||
  fail "the message does not give the install command"
# And with nothing hidden, the check passes on this machine (CI installed everything).
PATH=$PATH bash "$here/setup.sh" --check || fail "setup.sh --check fails with nothing hidden"
echo "setup-test: ok (hiding $hidden: refused at once, naming $package and the install command)"
