#!/usr/bin/env bash
# Production on one machine: PostgreSQL, the Temporal server on it with mTLS
# and mailwave's roles (a signing key made afresh, a worker's token for each
# worker, an operator's for the starter, an admin's for the setup), three
# workers and the routing host's worker (bin/localfleet up, in the
# background), then a wave of N simulated mailboxes through them with the
# starter, watched and verified. `scripts/production.sh stop` stops it all.
# Called by `make production` / `make production-stop`.
set -euo pipefail
DATA=${DATA:-data/production}
BIN=${BIN:-bin}
N=${N:-2000}

stop() {
  local f=$DATA/production.pid
  if [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill "$(cat "$f")"
    for _ in $(seq 1 60); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 1; done
    echo "stopped the production shape"
  fi
  rm -f "$f"
}

if [[ ${1:-} == stop ]]; then
  stop
  exit 0
fi

# A fresh start: a former run's servers, workers and data go.
stop
rm -rf "$DATA"
mkdir -p "$DATA"
# This deployment's secrets, made afresh and private: the payload key ring
# and the mailbox key secret.
(umask 077
 "$BIN/starter" codec-key new --id prod-1 >"$DATA/codec-keys"
 head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$DATA/key-secret")
"$BIN/starter" estate generate --dir "$DATA/estate" --seed 42 --mailboxes "$N"

"$BIN/localfleet" up --dir "$DATA" --estate "$DATA/estate" --outbox "$DATA/outbox" \
  --codec-key-file "$DATA/codec-keys" --worker "$BIN/worker" >"$DATA/production.log" 2>&1 &
echo $! >"$DATA/production.pid"
echo "starting PostgreSQL, the Temporal server (mTLS), 3 workers and the routing host's worker (log $DATA/production.log)"
for _ in $(seq 1 300); do
  [[ -f $DATA/connect.env ]] && break
  kill -0 "$(cat "$DATA/production.pid")" 2>/dev/null || { tail -20 "$DATA/production.log" >&2; exit 1; }
  sleep 1
done
[[ -f $DATA/connect.env ]] || { echo "the production shape did not come up: see $DATA/production.log" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. "$DATA/connect.env"
set +a
export MAILWAVE_KEY_SECRET_FILE=$DATA/key-secret
unset MAILWAVE_KEY_SECRET MAILWAVE_CODEC_KEYS

"$BIN/starter" demo --data "$DATA" --waves-dir "$MAILWAVE_WAVES_DIR" --mailboxes "$N" --ui "" \
  --concurrency 150 --migrate-in 60s --notice-lead 50s --reminder-lead 20s "$@"
echo
echo "The production shape is still running. For the starter (an operator's token):"
echo "  set -a; . $DATA/connect.env; set +a; export MAILWAVE_KEY_SECRET_FILE=$DATA/key-secret"
echo "The Temporal server enforces roles (docs/access.md). Tokens, the signing key and the revocation list:"
echo "  $DATA/temporal/access  (e.g. bin/starter access token --role viewer --for NAME --key $DATA/temporal/access/signing.key)"
echo "Stop it with: make production-stop"
