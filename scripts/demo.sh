#!/usr/bin/env bash
# Runs the demo on the embedded default: a Temporal dev server and a worker in
# the background (left running for the UI), then the starter's demo.
# `scripts/demo.sh stop` stops them. Called by `make demo` / `make stop`.
set -euo pipefail
DATA=${DATA:-data}
BIN=${BIN:-bin}
TEMPORAL=${TEMPORAL:-$BIN/temporal}
ADDRESS=${MAILWAVE_TEMPORAL_ADDRESS:-localhost:7233}
mkdir -p "$DATA"

stop_pid() {
  local f=$DATA/$1.pid
  if [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill "$(cat "$f")" && echo "stopped $1"
  fi
  rm -f "$f"
}

if [[ ${1:-} == stop ]]; then
  stop_pid worker
  stop_pid codecserver
  stop_pid temporal
  exit 0
fi

# A fresh start: the demo's own server, worker and data from a former run go.
stop_pid worker
stop_pid codecserver
stop_pid temporal
listening() { (exec 3<>"/dev/tcp/${ADDRESS%:*}/${ADDRESS#*:}") 2>/dev/null; }
for _ in $(seq 1 10); do listening || break; sleep 1; done
if listening; then
  echo "something else listens on $ADDRESS: stop it, or set MAILWAVE_TEMPORAL_ADDRESS" >&2
  exit 1
fi
rm -rf "$DATA"
mkdir -p "$DATA"

# This demo's secrets, made afresh, readable by this user only: the payload
# key ring (every client seals payloads with it; the codec server opens them
# for the UI), the mailbox key secret, and the signing key of access tokens
# with a decoder's token for the user running the demo (the codec server
# lets a person decode with their own token, and records each decode).
(umask 077
 "$BIN/starter" codec-key new --id demo-1 >"$DATA/codec-keys"
 head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$DATA/key-secret")
export MAILWAVE_CODEC_KEY_FILE=$DATA/codec-keys
"$BIN/starter" access key new --dir "$DATA/access" >/dev/null
DECODER=$(id -un)
"$BIN/starter" access token --role decoder --for "$DECODER" --valid 8h \
  --key "$DATA/access/signing.key" --out "$DATA/codec-token"
# The mailbox key secret of this demo's deployment (made afresh each time).
export MAILWAVE_KEY_SECRET_FILE=$DATA/key-secret
unset MAILWAVE_KEY_SECRET
CODEC_PORT=${CODEC_PORT:-8234}
"$BIN/codecserver" --listen "127.0.0.1:$CODEC_PORT" --ui-origin "http://localhost:8233,http://127.0.0.1:8233" \
  --public-key "$DATA/access/signing.pub" --revocations "$DATA/access/revoked" \
  --audit-file "$DATA/codec-audit.jsonl" >"$DATA/codecserver.log" 2>&1 &
echo $! >"$DATA/codecserver.pid"
echo "codec server on http://localhost:$CODEC_PORT (log $DATA/codecserver.log)"
args=(server start-dev --db-filename "$DATA/temporal.db"
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal
      --ui-port 8233 --log-level warn --ui-codec-endpoint "http://localhost:$CODEC_PORT")
# The search attributes come from the contract, through the starter.
sas=$("$BIN/starter" search-attributes)
for sa in $sas; do args+=(--search-attribute "$sa"); done
"$TEMPORAL" "${args[@]}" >"$DATA/temporal.log" 2>&1 &
echo $! >"$DATA/temporal.pid"
echo "dev server starting (log $DATA/temporal.log)"
for _ in $(seq 1 60); do listening && break; sleep 1; done
listening || { echo "the dev server did not come up: see $DATA/temporal.log" >&2; exit 1; }

"$BIN/starter" estate generate --dir "$DATA/estate" --seed 42 --mailboxes 1000

# The worker, with faults injected: transient errors and throttling on 1 % of
# copy batches and cutovers each, and 0.5 % of mailboxes missing at source.
"$BIN/worker" --sim-dir "$DATA/estate" --outbox-dir "$DATA/outbox" --waves-dir "$DATA/waves" --sim-time-scale 36000 \
  --sim-transient-rate 0.01 --sim-throttle-rate 0.01 --sim-throttle-retry-after 2s --sim-not-found-rate 0.005 \
  >"$DATA/worker.log" 2>&1 &
echo $! >"$DATA/worker.pid"
echo "worker started (log $DATA/worker.log)"

"$BIN/starter" demo --data "$DATA" "$@"
echo
echo "The dev server, worker and codec server are still running: Temporal UI at http://localhost:8233"
echo "History holds only ciphertext. To read payloads in the UI, sign in to the codec server once at"
echo "  http://localhost:$CODEC_PORT/login  with $DECODER's decoder token in $DATA/codec-token (valid 8 hours),"
echo "then in the UI's codec settings (the data encoder icon) turn on \"include cross-origin credentials\"."
echo "Each decode is recorded in $DATA/codec-audit.jsonl."
echo "Stop them with: make stop"
