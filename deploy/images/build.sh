#!/usr/bin/env bash
# Builds zen-flow's container images as OCI archives, with no Docker daemon and no registry:
#
#   jobflow-agent.tar  docker.io/library/jobflow-agent:<workspace version>
#       One layer holding only /usr/local/bin/jobflow-agent, a static release binary (glibc with
#       crt-static; DWARF stripped, symbols kept). The agent reaches the API server by the IP in
#       KUBERNETES_SERVICE_HOST and binds IP addresses, so it needs no NSS modules, no CA files
#       (the service account mount has the CA) and no /etc/passwd (the user is numeric).
#       User 65532:65532, entrypoint the binary, no Cmd (the Deployment passes the arguments).
#   busybox.tar        docker.io/library/busybox:<Debian's busybox version, 1.35.0 on Debian 12>
#       Debian's busybox-static as /bin/busybox with every applet symlinked beside it, /tmp (1777)
#       and PATH; user left at root (the image works under runAsNonRoot with any runAsUser). Named
#       like the Docker Hub image so a flow written for a real cluster (`image: busybox:1.35.0`)
#       runs unchanged on the local real node.
#
# `deployment.yaml` says `image: jobflow-agent:0.1.0`, which containerd normalizes to
# docker.io/library/jobflow-agent:0.1.0: each archive's index carries its full name as
# org.opencontainers.image.ref.name, which `ctr -n k8s.io images import FILE` registers as is
# (tests/cluster/import-images.sh imports both into the local real node).
#
# Usage: bash deploy/images/build.sh
#
# Output: ${ZEN_FLOW_IMAGES_DIR:-$cache/images}/{jobflow-agent,busybox}.tar, where cache is
# ${ZEN_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-flow}. The agent is built in its own target
# dir, $cache/image-target, so the static release build never invalidates the debug builds.
# cargo runs every time (a no-op when fresh); an image is repacked only when its inputs (the
# binary's or busybox's sha256, this script, the name) differ from those recorded in
# <tarball>.inputs. The layers are reproducible: files, the config and history are stamped with
# SOURCE_DATE_EPOCH (default 0), so the same binary gives the same image digest.
#
# Tools: umoci and skopeo (the OCI layout and the archive), file, objcopy, busybox-static;
# installed from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=${ZEN_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-flow}
out=${ZEN_FLOW_IMAGES_DIR:-$cache/images}
target_dir=$cache/image-target
triple=x86_64-unknown-linux-gnu
epoch=${SOURCE_DATE_EPOCH:-0}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
# The workspace's version and repository (the [workspace.package] table of Cargo.toml).
workspace_field() {
  sed -n "/^\[workspace\.package\]/,/^\[/s/^$1 = \"\(.*\)\"$/\1/p" Cargo.toml
}
version=$(workspace_field version)
source_url=$(workspace_field repository)
agent_ref=docker.io/library/jobflow-agent:$version
agent_path=/usr/local/bin/jobflow-agent

# log MSG...: progress on stderr, like the cluster scripts.
log() { printf '[images] %s\n' "$*" >&2; }

# ensure_tools: installs what is missing from Debian's packages (the only registry for tools).
ensure_tools() {
  local -A package_of=([umoci]=umoci [skopeo]=skopeo [file]=file [objcopy]=binutils
    [ldd]=libc-bin [sha256sum]=coreutils [flock]=util-linux)
  local missing=() tool
  for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
  done
  [ -x /bin/busybox ] || missing+=(busybox-static)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

# require_static FILE: fails unless FILE is a statically linked ELF (no interpreter, no libraries).
require_static() {
  local described ldd_out
  described=$(file -b "$1")
  ldd_out=$(ldd "$1" 2>&1 || true)
  case $described in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) log "$1 is not static: $described"; return 1 ;;
  esac
  case $ldd_out in
    *"statically linked"* | *"not a dynamic executable"*) ;;
    *) log "$1 links libraries: $ldd_out"; return 1 ;;
  esac
}

# build_agent: the static release binary; prints its path. RUSTFLAGS apply to the target only
# because --target is explicit, so build scripts and proc macros stay dynamic (they must: a
# static proc macro cannot be loaded by rustc).
build_agent() {
  log "cargo build --release (static, $triple) into $target_dir"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    -p jobflow-agent --bin jobflow-agent --target "$triple" --target-dir "$target_dir" >&2
  local bin=$target_dir/$triple/release/jobflow-agent
  require_static "$bin"
  "$bin" --help >/dev/null
  printf '%s\n' "$bin"
}

# inputs_of FILE...: the record that decides whether an image is stale: the sha256 of each input
# file and of this script, and the image's name.
inputs_of() {
  local ref=$1
  shift
  sha256sum "$@" "${BASH_SOURCE[0]}" | awk '{print $1}'
  printf '%s\n' "$ref"
}

# fresh TARBALL RECORD: true when TARBALL exists and was packed from the inputs in RECORD.
fresh() {
  [ -f "$1" ] && [ -f "$1.inputs" ] && [ "$(cat "$1.inputs")" = "$2" ]
}

# stamp DIR: every file and directory under DIR (symlinks themselves) gets mtime SOURCE_DATE_EPOCH.
stamp() {
  find "$1" -exec touch -h -d "@$epoch" {} +
}

# pack TARBALL REF ROOTFS CONFIG_FLAG...: one image whose single layer is ROOTFS, configured by
# umoci config flags, written as an OCI archive named REF (replacing TARBALL atomically).
# unpack + repack rather than `umoci insert`: Debian's umoci 0.4.7 insert writes a layer whose tar
# stream ends without the last file's padding and the end-of-archive blocks (GNU tar and the tar
# crate reject it; containerd happens to accept it).
pack() {
  local tarball=$1 ref=$2 rootfs=$3
  shift 3
  local work=$tmp/pack-${tarball##*/}
  mkdir -p "$work"
  local rootless=()
  [ "$(id -u)" = 0 ] || rootless=(--rootless)
  local history=(--history.created "$created" --history.created_by "deploy/images/build.sh")
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:img"
  umoci unpack "${rootless[@]}" --image "$work/oci:img" "$work/bundle"
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  stamp "$work/bundle/rootfs"
  umoci repack "${rootless[@]}" "${history[@]}" --image "$work/oci:img" "$work/bundle"
  umoci config "${history[@]}" --image "$work/oci:img" --created "$created" --author zen-flow "$@"
  umoci gc --layout "$work/oci"
  skopeo copy --quiet "oci:$work/oci:img" "oci-archive:$work/image.tar:$ref"
  mv -f "$work/image.tar" "$tarball"
}

# image_agent BIN: the agent image from the static binary BIN, unless already packed from it.
image_agent() {
  local bin=$1 tarball=$out/jobflow-agent.tar record
  record=$(inputs_of "$agent_ref" "$bin")
  if fresh "$tarball" "$record"; then
    log "$agent_ref: up to date"
    return
  fi
  local rootfs=$tmp/rootfs-agent
  # Without DWARF (the release profile's line tables are 120 of its 150 MB); the symbol table
  # stays, so a backtrace still names functions.
  mkdir -p "$rootfs${agent_path%/*}"
  objcopy --strip-debug "$bin" "$rootfs$agent_path"
  chmod 0755 "$rootfs$agent_path"
  require_static "$rootfs$agent_path"
  pack "$tarball" "$agent_ref" "$rootfs" \
    --config.user 65532:65532 --config.entrypoint "$agent_path" \
    --config.label "org.opencontainers.image.source=$source_url" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.title=jobflow-agent"
  printf '%s\n' "$record" >"$tarball.inputs"
}

# image_busybox: the step image from Debian's busybox-static, unless already packed from it.
image_busybox() {
  local busybox=/bin/busybox tarball=$out/busybox.tar banner bb_version
  require_static "$busybox"
  banner=$("$busybox" 2>&1 || true)
  bb_version=$(printf '%s\n' "$banner" | sed -n '1s/^BusyBox v\([0-9][0-9.]*\).*/\1/p')
  [ -n "$bb_version" ] || { log "cannot read busybox's version from: ${banner%%$'\n'*}"; return 1; }
  local ref=docker.io/library/busybox:$bb_version record debian
  debian=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo unknown)
  record=$(inputs_of "$ref" "$busybox")
  if fresh "$tarball" "$record"; then
    log "$ref: up to date"
    return
  fi
  local rootfs=$tmp/rootfs-busybox applet
  mkdir -p "$rootfs/bin" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  install -m 0755 "$busybox" "$rootfs/bin/busybox"
  # Relative links: `busybox --install -s` would point them at this build's temporary path.
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  pack "$tarball" "$ref" "$rootfs" \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.cmd sh \
    --config.label "org.opencontainers.image.source=$source_url" \
    --config.label "org.opencontainers.image.version=$bb_version" \
    --config.label "org.opencontainers.image.description=Debian's busybox-static $debian"
  printf '%s\n' "$record" >"$tarball.inputs"
}

# report TARBALL...: each archive's path and size (the layers inside are gzip-compressed).
report() {
  local tarball bytes mib
  for tarball in "$@"; do
    bytes=$(stat -c %s "$tarball")
    mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
    printf '%s  %s bytes (%s MiB)\n' "$tarball" "$bytes" "$mib"
  done
}

ensure_tools
mkdir -p "$out"
# Two builds at once (the demo and the tests) would race on the same tarballs.
exec 8>"$out/.lock"
flock 8
# Scratch space (rootfs trees, OCI layouts) beside the output, so the final mv is a rename.
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
agent_bin=$(build_agent)
log "agent binary: $agent_bin ($(stat -c %s "$agent_bin") bytes before stripping)"
image_agent "$agent_bin"
image_busybox
report "$out/jobflow-agent.tar" "$out/busybox.tar"
