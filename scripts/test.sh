#!/usr/bin/env bash
# Install what the tests need, then run them: the README's test command, and CI's.
#
#   scripts/test.sh [PYTEST ARGS...]
#
# 1. Debian packages, when missing (as root): b3sum (tests compare object names with
#    it), openssh-client (signatures are checked against `ssh-keygen -Y`), chromium and
#    chromium-driver (the web view's tests drive a real headless browser) and ceph-mon,
#    ceph-osd, radosgw, ceph-common (the remote suite runs against a real S3 server,
#    Ceph's RADOS Gateway, as well as moto and a directory), xfsprogs (step 4) and git
#    (a store inside a git work tree is tested with git itself).
# 2. .venv with mstore and its test tools (`pip install -e '.[dev]'`).
# 3. pytest, with the gateway started for the run and stopped by PID however it ends
#    (scripts/ceph_s3.sh run). Without the Ceph packages (not root, no apt) the RGW
#    cases skip and say why in pytest's summary, and so do the browser tests without
#    Chromium; under CI=true they fail instead.
#    Every test runs, the slow sweeps too (`-m ""` lifts the `not slow` that `pytest`
#    alone applies), on two workers (pytest-xdist: each keeps to its own temporary
#    directories, buckets and ports; both talk to the one gateway). Arguments come after
#    these, so `-m 'not slow'` or `-n 0` given to this script win.
# 4. After a green full run (no arguments): the link-mode, view and crash suites again
#    on XFS loop-mounted from a file (scripts/xfs_tmp.sh; root only), where `auto` is
#    reflink. Under CI=true a mount that cannot be made fails the run.
#
# Exits with pytest's status, except that "no tests collected" (5) is a failure too.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v b3sum >/dev/null 2>&1 || missing+=(b3sum)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
command -v git >/dev/null 2>&1 || missing+=(git)
for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    missing+=(ceph-mon ceph-osd radosgw ceph-common)
    break
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "test.sh: missing ${missing[*]} (install them as root for the full suite)" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]'

set +e
scripts/ceph_s3.sh run -- .venv/bin/python -m pytest -rs -m "" -n 2 --durations=10 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing" >&2
  exit 1
fi
if [ "$status" -eq 0 ] && [ $# -eq 0 ]; then
  # The link-mode, view and crash suites again on a real reflink filesystem, where
  # `auto` resolves to reflink (scripts/xfs_tmp.sh: XFS on a loop device, as root).
  set +e
  scripts/xfs_tmp.sh run -- sh -c '.venv/bin/python -m pytest -rs -m "" -n 2 \
    -p no:cacheprovider --basetemp="$MSTORE_TEST_XFS/pytest" tests/views \
    tests/guarantees/test_crashes.py tests/guarantees/test_view_guarantees.py'
  status=$?
  set -e
fi
exit "$status"
