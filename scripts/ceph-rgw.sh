#!/usr/bin/env bash
# ceph-rgw.sh start|stop -- a throwaway single-node Ceph cluster with the RADOS Gateway (S3)
# on 127.0.0.1, for drey's tests: 1 mon, 1 osd (memstore), no mgr, auth none, pool size 1.
# Adapted from the workplace's shared start script. Needs the Debian packages ceph-mon,
# ceph-osd and radosgw (scripts/test.sh installs them).
#
# start: prints the S3 endpoint; writes a sourceable env file ($DREY_RGW_ENV, default
#        ${TMPDIR:-/tmp}/drey-rgw.env) with AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...; the
#        same gateway also serves HTTPS (DREY_RGW_TLS_ENDPOINT) with a certificate for
#        127.0.0.1 and localhost, signed by a throwaway CA (DREY_RGW_TLS_CA, PEM).
# stop:  kills the daemons recorded in that file and removes the cluster directory.
set -Eeuo pipefail
ENV_FILE=${DREY_RGW_ENV:-${TMPDIR:-/tmp}/drey-rgw.env}
ACCESS_KEY=DREYTESTACCESSKEY000
SECRET_KEY=dreytestsecretkey00000000000000000000000
log() { printf '[ceph-rgw] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1; [ -n "$st" ] && [ "$st" != Z ]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
s3_ok() { local b; b=$(curl -fsS -m 3 "$1/" 2>/dev/null) || return 1; [[ $b == *ListAllMyBucketsResult* ]]; }

stop() {
  [ -f "$ENV_FILE" ] || return 0
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  for p in ${DREY_RGW_PIDS:-}; do alive "$p" && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in ${DREY_RGW_PIDS:-}; do alive "$p" && kill -9 "$p" 2>/dev/null || true; done
  [ -n "${DREY_RGW_DIR:-}" ] && [ -d "$DREY_RGW_DIR" ] && rm -rf "$DREY_RGW_DIR"
  rm -f "$ENV_FILE"
}

start() {
  if [ -f "$ENV_FILE" ]; then
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    if s3_ok "$AWS_ENDPOINT_URL"; then echo "$AWS_ENDPOINT_URL"; return 0; fi
    stop
  fi
  for b in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool curl setsid openssl; do
    command -v "$b" >/dev/null || die "missing $b (apt-get install ceph-mon ceph-osd radosgw)"
  done
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/drey-rgw.XXXXXX")
  CONF=$DIR/ceph.conf
  PIDS=""
  MON_PORT=$(free_port); RGW_PORT=$(free_port); ENDPOINT=http://127.0.0.1:$RGW_PORT
  TLS_PORT=$(free_port); TLS_ENDPOINT=https://127.0.0.1:$TLS_PORT; TLS=$DIR/tls
  write_env() {
    cat >"$ENV_FILE" <<EOF
export DREY_RGW_DIR='$DIR'
export DREY_RGW_PIDS='$PIDS'
export AWS_ENDPOINT_URL='$ENDPOINT'
export AWS_ACCESS_KEY_ID='$ACCESS_KEY'
export AWS_SECRET_ACCESS_KEY='$SECRET_KEY'
export AWS_REGION='us-east-1'
export AWS_DEFAULT_REGION='us-east-1'
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required
export AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
export DREY_RGW_TLS_ENDPOINT='$TLS_ENDPOINT'
export DREY_RGW_TLS_CA='$TLS/ca.pem'
EOF
  }
  write_env
  trap 'rc=$?; if [ $rc != 0 ]; then tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null; stop; fi' EXIT
  mkdir -p "$DIR"/{run,log,mon/mon.a,osd/osd.0,rgw,tls}
  # A CA of this cluster's own, and the gateway's certificate for the loopback.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=drey test CA" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" >"$DIR/log/tls.out" 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" >>"$DIR/log/tls.out" 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS/ext.cnf"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 2 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" >>"$DIR/log/tls.out" 2>&1
  FSID=$(cat /proc/sys/kernel/random/uuid); OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
# radosgw never comes up with auth none unless the mon client mode allows crc
ms mon client mode = crc secure
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
pid file = $DIR/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
mon mgr mkfs grace = 31536000
[mon]
mon data = $DIR/mon/\$name
paxos propose interval = 0.05
paxos min wait = 0.01
[osd]
osd data = $DIR/osd/\$name
osd objectstore = memstore
memstore device bytes = 8589934592
osd memory target = 939524096
[client.rgw.drey]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$TLS_PORT ssl_certificate=$TLS/server.pem ssl_private_key=$TLS/server.key tcp_nodelay=1
rgw data = $DIR/rgw
rgw thread pool size = 64
rgw enable usage log = false
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
  daemon() { local name=$1; shift; setsid "$@" -c "$CONF" -f </dev/null >>"$DIR/log/$name.out" 2>&1 & echo $!; }
  monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null 2>&1
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" >"$DIR/log/mon-mkfs.out" 2>&1
  PIDS="$(daemon mon ceph-mon -i a)"; write_env
  local osd=""
  for _ in 1 2 3 4 5 6; do osd=$(timeout 30 ceph -c "$CONF" --connect-timeout 10 osd new "$OSD_UUID" 2>/dev/null) && break; sleep 0.5; done
  [ "$osd" = 0 ] || die "could not register osd.0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.out" 2>&1
  PIDS="$PIDS $(daemon osd ceph-osd -i 0)"; write_env
  local deadline=$(( $(date +%s) + 60 ))
  until [[ $(ceph -c "$CONF" osd stat -f json 2>/dev/null) == *'"num_up_osds":1'* ]]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "osd.0 not up after 60 s"; sleep 0.1
  done
  timeout 120 radosgw-admin -c "$CONF" user create --uid=drey --display-name=drey \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$DIR/log/user.out" 2>&1
  PIDS="$PIDS $(daemon rgw radosgw -n client.rgw.drey)"; write_env
  deadline=$(( $(date +%s) + 120 ))
  until s3_ok "$ENDPOINT"; do [ "$(date +%s)" -lt "$deadline" ] || die "S3 not answering"; sleep 0.1; done
  curl -fsS -m 5 --cacert "$TLS/ca.pem" "$TLS_ENDPOINT/" >/dev/null || die "S3 not answering over HTTPS"
  trap - EXIT
  log "S3 ready at $ENDPOINT (env: $ENV_FILE)"
  echo "$ENDPOINT"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
