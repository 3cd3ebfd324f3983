#!/usr/bin/env bash
# Builds the Krew archive of kubectl-jobflow and the manifest that points at it.
#
#   bash deploy/krew/release.sh [OUT_DIR]      (default: dist/)
#
# Writes OUT_DIR/kubectl-jobflow-v<version>-linux-amd64.tar.gz (the binary at the archive's
# root, owner, order and times fixed so only the binary decides its bytes) and
# OUT_DIR/jobflow.yaml: deploy/krew/jobflow.yaml with the version, the release URI and the
# archive's sha256 filled in. The version is the workspace's (Cargo.toml).
# PROFILE=debug packs the debug build instead of building a release (for the install test);
# BINARY=<path> packs that binary and builds nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/dist}"
profile="${PROFILE:-release}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

version="v$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | sed -n 1p)"
[ "$version" != "v" ] || { echo "no version in $root/Cargo.toml" >&2; exit 1; }

binary="${BINARY:-}"
if [ -z "$binary" ]; then
  if [ "$profile" = release ]; then
    cargo build --manifest-path "$root/Cargo.toml" --release -p kubectl-jobflow
  else
    cargo build --manifest-path "$root/Cargo.toml" -p kubectl-jobflow
  fi
  binary="${CARGO_TARGET_DIR:-$root/target}/$profile/kubectl-jobflow"
fi
[ -x "$binary" ] || { echo "$binary was not built" >&2; exit 1; }

archive="kubectl-jobflow-$version-linux-amd64.tar.gz"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/kubectl-jobflow"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - kubectl-jobflow \
  | gzip -n > "$out/$archive"
sha="$(sha256sum "$out/$archive" | cut -d' ' -f1)"

uri="https://github.com/kube-zen/zen-flow/releases/download/$version/$archive"
sed -e "s|^  version: v0.0.0$|  version: $version|" \
    -e "s|^      uri: .*|      uri: $uri|" \
    -e "s|^      sha256: .*|      sha256: \"$sha\"|" \
    "$root/deploy/krew/jobflow.yaml" > "$out/jobflow.yaml"
grep -q "sha256: \"$sha\"" "$out/jobflow.yaml" || { echo "the manifest template changed shape" >&2; exit 1; }
echo "$out/$archive"
echo "$out/jobflow.yaml"
