# OCI images without Docker or a registry (sourced, not run; needs paths.sh sourced first).
#
#   oci_image TARBALL REF ROOTFS [UMOCI_CONFIG_ARGS...]
#       Builds a one-layer image whose filesystem is the content of directory ROOTFS, configures it
#       with `umoci config` arguments (e.g. --config.entrypoint /pause --config.user 65535:65535),
#       and writes it to TARBALL as an oci-archive whose image is named REF
#       (e.g. registry.k8s.io/pause:3.10.1). Uses umoci for the layout and skopeo for the archive
#       (both Debian packages). The file appears atomically: a half-built TARBALL never exists.
#   import_image TARBALL
#       Imports an oci-archive (or docker-archive) tarball into the real node's containerd, in the
#       k8s.io namespace the kubelet reads, under the name recorded in the archive. Pods then use
#       it with imagePullPolicy IfNotPresent or Never (there is no registry to pull from).
#   node_ctr ARGS...
#       `ctr` against the real node's containerd ($CONTAINERD_SOCKET), namespace k8s.io.

# oci_image TARBALL REF ROOTFS [UMOCI_CONFIG_ARGS...]: see above.
oci_image() {
  local out=$1 ref=$2 rootfs=$3 work status=0; shift 3
  work=$(mktemp -d "${TMPDIR:-/tmp}/zen-flow-oci.XXXXXX")
  {
    umoci init --layout "$work/layout" &&
      umoci new --image "$work/layout:image" &&
      # unpack + repack, not `umoci insert`: Debian's umoci 0.4.7 writes insert's layer without the
      # tar's end (a truncated archive that containerd refuses). Files keep their owners and modes
      # from ROOTFS (root-owned unless the caller chowned them).
      umoci unpack --image "$work/layout:image" "$work/bundle" >/dev/null &&
      cp -a "$rootfs/." "$work/bundle/rootfs/" &&
      umoci repack --image "$work/layout:image" --history.created_by "zen-flow oci_image $ref" \
        "$work/bundle" &&
      umoci config --image "$work/layout:image" --os linux --architecture amd64 "$@" &&
      mkdir -p "$(dirname "$out")" &&
      skopeo copy --quiet "oci:$work/layout:image" "oci-archive:$out.partial:$ref" &&
      mv "$out.partial" "$out"
  } || status=$?
  rm -rf "$work" "$out.partial"
  return "$status"
}

# node_ctr ARGS...: ctr on our containerd's socket, in the namespace the CRI plugin uses.
node_ctr() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }

# import_image TARBALL: see above.
import_image() {
  [ -S "$CONTAINERD_SOCKET" ] || {
    echo "import_image: no containerd at $CONTAINERD_SOCKET (is the real node up?)" >&2
    return 1
  }
  node_ctr images import --platform linux/amd64 "$1" >/dev/null
}
