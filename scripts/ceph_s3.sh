#!/usr/bin/env bash
# A real S3 server for the remote suite: Ceph's RADOS Gateway on a one-node cluster.
#
#   scripts/ceph_s3.sh start DIR        start mon, osd (memstore) and radosgw; write DIR/env
#   scripts/ceph_s3.sh stop DIR         stop them by PID (idempotent)
#   scripts/ceph_s3.sh run [--] CMD...  start in a temporary DIR, run CMD with DIR/env
#                                       exported, stop the daemons however CMD ends
#
# DIR/env holds the MSTORE_TEST_RGW_* variables the tests read (endpoint, access key,
# secret). Everything listens on 127.0.0.1 only, keeps its data in memory (memstore,
# capped at MSTORE_CEPH_MEMORY_MB, default 512) and runs without cephx (auth none).
# `run` without the Ceph packages runs CMD without the server (the RGW tests then
# skip, saying why), except under CI=true, where a missing or failing server fails.
# Packages: ceph-mon ceph-osd radosgw ceph-common (Debian/Ubuntu).
set -euo pipefail

die() { echo "ceph_s3: $*" >&2; exit 1; }

have_ceph() {
  command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null &&
    command -v radosgw >/dev/null && command -v radosgw-admin >/dev/null &&
    command -v monmaptool >/dev/null && command -v ceph >/dev/null
}

free_ports() {  # two free TCP ports on 127.0.0.1
  python3 -c '
import socket
held = [socket.socket() for _ in range(2)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))'
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }

start() {
  local dir=$1
  have_ceph || die "the Ceph packages are missing (apt-get install ceph-mon ceph-osd radosgw ceph-common)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -e "$dir/ceph.conf" ] && die "$dir already holds a cluster (stop it first, or use a new directory)"
  mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd0" "$dir/rgw"
  local mon_port rgw_port fsid memory
  read -r mon_port rgw_port < <(free_ports)
  fsid=$(new_uuid)
  memory=${MSTORE_CEPH_MEMORY_MB:-512}
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
keyring = $dir/keyring
mon data = $dir/mon
osd data = $dir/osd\$id
osd objectstore = memstore
memstore device bytes = $((memory << 20))
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
paxos propose interval = 0.01
paxos min wait = 0.001
mon lease = 1
mon osd full ratio = 0.97
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw dns name = 127.0.0.1
EOF
  local conf=(-c "$dir/ceph.conf")
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon "${conf[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" >/dev/null
  ceph-mon "${conf[@]}" -i a
  local osd_uuid
  osd_uuid=$(new_uuid)
  ceph "${conf[@]}" osd new "$osd_uuid" >/dev/null
  ceph-osd "${conf[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
  ceph-osd "${conf[@]}" -i 0 2>>"$dir/log/osd.0.stderr"
  radosgw "${conf[@]}" -n client.rgw
  local access secret
  access=mstore-test-access
  secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  radosgw-admin "${conf[@]}" user create --uid=mstore-test --display-name=mstore-test \
    --access-key="$access" --secret="$secret" >/dev/null
  local endpoint="http://127.0.0.1:$rgw_port"
  local tries=0
  until python3 - "$endpoint" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer means the gateway is up
except OSError:
    sys.exit(1)
PY
  do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { stop "$dir"; die "radosgw did not answer on $endpoint (see $dir/log)"; }
    sleep 0.1
  done
  cat >"$dir/env" <<EOF
MSTORE_TEST_RGW_ENDPOINT=$endpoint
MSTORE_TEST_RGW_ACCESS_KEY=$access
MSTORE_TEST_RGW_SECRET_KEY=$secret
EOF
}

running() {  # a zombie has exited: its parent (init, for a daemon) reaps it when it can
  local state
  [ -r "/proc/$1/stat" ] || return 1
  read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null || return 1
  [ "$state" != Z ] && [ "$state" != X ]
}

stop() {
  local dir=$1 pids=() pid file
  [ -d "$dir/run" ] || return 0
  for file in "$dir/run/client.rgw.pid" "$dir/run/osd.0.pid" "$dir/run/mon.a.pid"; do
    [ -f "$file" ] || continue
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  # Each daemon takes ~2 s to shut down cleanly; the data is in memory and thrown away,
  # so after a short grace the remaining ones are killed.
  local tries=0
  for pid in "${pids[@]}"; do
    while running "$pid"; do
      tries=$((tries + 1))
      if [ "$tries" -gt 10 ]; then kill -9 "$pid" 2>/dev/null || true; fi
      sleep 0.05
    done
  done
  rm -f "$dir"/run/*.pid
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ "$#" -gt 0 ] || die "usage: $0 run [--] COMMAND..."
  if ! have_ceph; then
    [ "${CI:-}" = "true" ] && die "the Ceph packages are missing; CI needs the RGW server"
    echo "ceph_s3: no Ceph packages: running without the RGW server (its tests skip)" >&2
    exec "$@"
  fi
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/mstore-ceph.XXXXXX")
  # shellcheck disable=SC2064
  trap "stop '$dir'; rm -rf '$dir'" EXIT
  trap 'exit 130' INT TERM
  local started
  started=$(date +%s.%N)
  start "$dir"
  echo "ceph_s3: RGW up in $(python3 -c "import time; print(f'{time.time() - $started:.2f}')") s" \
    "at $(sed -n 's/^MSTORE_TEST_RGW_ENDPOINT=//p' "$dir/env")" >&2
  set -a
  # shellcheck disable=SC1091
  . "$dir/env"
  set +a
  local status=0
  "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  start) [ "$#" -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [ "$#" -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 start DIR | stop DIR | run [--] COMMAND..." ;;
esac
