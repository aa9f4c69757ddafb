#!/bin/sh
# One-shot job (service temporal-create-search-attributes): waits for the
# Temporal frontend and its namespace, then creates mailwave's custom search
# attributes. Safe to run again: an attribute that already exists is fine.
# POSIX sh, as the admin-tools image is Alpine.
set -eu

address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
timeout="${WAIT_TIMEOUT_SECONDS:-300}"

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 2s until it succeeds or
# the timeout passes.
wait_for() {
  what="$1"
  shift
  waited=0
  until "$@" >/dev/null 2>&1; do
    if [ "$waited" -ge "$timeout" ]; then
      echo "gave up waiting for $what after ${timeout}s" >&2
      exit 1
    fi
    echo "waiting for $what..."
    sleep 2
    waited=$((waited + 2))
  done
}

server_serving() {
  temporal operator cluster health --address "$address" | grep -q SERVING
}

# auto-setup registers the namespace in the background after the server is
# up; listing its search attributes works once the namespace is in the
# server's cache, which is what creating them needs.
wait_for "Temporal at $address" server_serving
wait_for "namespace $namespace" \
  temporal operator search-attribute list --address "$address" --namespace "$namespace"

create() {
  name="$1"
  type="$2"
  if out=$(temporal operator search-attribute create --address "$address" \
    --namespace "$namespace" --name "$name" --type "$type" 2>&1); then
    echo "created search attribute $name ($type)"
  elif echo "$out" | grep -qi 'already exists'; then
    echo "search attribute $name already exists"
  else
    echo "creating search attribute $name ($type) failed: $out" >&2
    return 1
  fi
}

create MailwaveWave Keyword
create MailwaveStage Keyword
create MailwaveStageSince Datetime
