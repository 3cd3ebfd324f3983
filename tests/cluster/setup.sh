#!/usr/bin/env bash
# What this machine needs before anything is built: the one list of host tools the test suite,
# the demo and CI use (each of them calls this first, so a missing package is reported in
# seconds, not after a 10-minute build). Missing Debian packages are installed when running as
# root; otherwise it fails at once with the exact command to run.
#
#   bash tests/cluster/setup.sh           check, and install what is missing (as root)
#   bash tests/cluster/setup.sh --check   check only: exit 1 with the install command if anything is missing
#
# ZEN_FLOW_REAL_NODE=0 (no real node) leaves out the real node's runtime, network and image tools.
set -euo pipefail

check_only=0
[ "${1:-}" = --check ] && check_only=1

# Tools the control-plane scripts call, by the Debian package that has them.
declare -A package_of=([openssl]=openssl [curl]=curl [flock]=util-linux [setsid]=util-linux
  [ss]=iproute2 [timeout]=coreutils [base64]=coreutils [cksum]=coreutils [python3]=python3)
declare -A package_of_file=()
if [ "${ZEN_FLOW_REAL_NODE:-1}" != 0 ]; then
  # The real node (tests/cluster/real-node.sh): its runtime, network, and images built without a
  # registry (the pause image is compiled from Kubernetes' pause.c with gcc -static).
  package_of+=([containerd]=containerd [containerd-shim-runc-v2]=containerd [ctr]=containerd
    [runc]=runc [iptables]=iptables [ip6tables]=iptables [iptables-save]=iptables
    [conntrack]=conntrack [ip]=iproute2 [umoci]=umoci [skopeo]=skopeo [busybox]=busybox-static
    [gcc]=gcc [strip]=binutils [file]=file)
  package_of_file=([/usr/lib/cni/bridge]=containernetworking-plugins
    [/usr/lib/cni/host-local]=containernetworking-plugins
    [/usr/lib/cni/loopback]=containernetworking-plugins
    [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev)
fi

missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
for file in "${!package_of_file[@]}"; do
  [ -e "$file" ] || missing+=("${package_of_file[$file]}")
done
# busybox-static, not Debian's dynamic busybox: its binary goes into an image with no libc.
if [ "${ZEN_FLOW_REAL_NODE:-1}" != 0 ] && command -v busybox >/dev/null 2>&1 &&
  command -v file >/dev/null 2>&1; then
  described=$(file -L "$(command -v busybox)")
  grep -q 'statically linked' <<<"$described" || missing+=(busybox-static)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  packages=${packages% }
  if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: this machine lacks Debian packages: $packages" >&2
    echo "setup: install them with: sudo apt-get update && sudo apt-get install -y $packages" >&2
    [ "${ZEN_FLOW_REAL_NODE:-1}" != 0 ] &&
      echo "setup: (or run without the real node: ZEN_FLOW_REAL_NODE=0, which skips its runtime and image tools)" >&2
    exit 1
  fi
  echo "setup: installing $packages" >&2
  apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >&2
fi

# Toolchains come with the machine (Go builds the control plane, Rust with rustfmt and clippy).
for tool in go cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "setup: $tool is not on PATH: install Go 1.26 and Rust 1.95 (with rustfmt and clippy) first" >&2
    exit 1
  }
done
