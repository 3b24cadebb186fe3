#!/usr/bin/env bash
# A real reflink filesystem for the link-mode suites: XFS in a file, loop-mounted.
#
#   scripts/xfs_tmp.sh run [--] CMD...   make a 2 GiB sparse XFS image (reflink=1),
#                                        mount it with -o loop, run CMD with
#                                        MSTORE_TEST_XFS set to the mount point, then
#                                        unmount and delete the image however CMD ends
#
# Needs root (mount), xfsprogs (mkfs.xfs) and a free loop device. Without them CMD is
# not run and the script says why: exit 0 normally, exit 1 under CI=true (CI must not
# pass without the reflink suites having run). Packages: xfsprogs (Debian/Ubuntu).
set -euo pipefail

die() { echo "xfs_tmp: $*" >&2; exit 1; }

unavailable() {
  if [ "${CI:-}" = "true" ]; then
    die "$* (under CI=true the XFS suites must run)"
  fi
  echo "xfs_tmp: $*; the reflink suites did not run" >&2
  exit 0
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "usage: xfs_tmp.sh run [--] CMD..."
  [ "$(id -u)" -eq 0 ] || unavailable "not root: cannot mount a loop device"
  command -v mkfs.xfs >/dev/null || unavailable "mkfs.xfs is missing (apt-get install xfsprogs)"
  local dir image mount status
  dir=$(mktemp -d /tmp/mstore-xfs.XXXXXX)
  image="$dir/image"
  mount="$dir/mnt"
  mkdir "$mount"
  cleanup() {
    umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
    rm -rf "$dir"
  }
  trap cleanup EXIT
  truncate -s 2G "$image"
  mkfs.xfs -q -m reflink=1 "$image" || unavailable "mkfs.xfs failed"
  mount -o loop "$image" "$mount" || unavailable "mount -o loop failed (no loop device?)"
  echo "xfs_tmp: XFS (reflink) mounted at $mount" >&2
  set +e
  MSTORE_TEST_XFS="$mount" "$@"
  status=$?
  set -e
  exit "$status"
}

case "${1:-}" in
  run) shift; run "$@" ;;
  *) die "usage: xfs_tmp.sh run [--] CMD..." ;;
esac
