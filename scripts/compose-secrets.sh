#!/usr/bin/env bash
# The secrets of docker-compose.yml, made once and owned by the one user
# of the one service that reads each (run as root: `sudo scripts/compose-secrets.sh`).
# A secret already there is kept (delete it to make a new one; see
# docs/fleet.md for changing a database password). Never commit or copy
# deploy/secrets/ or deploy/tls/: .gitignore and .dockerignore name them.
#
# The users are the images' own: mailwave's image runs as 65532 (distroless
# nonroot), Temporal's server and UI as 1000, PostgreSQL as 999, Grafana as
# 472. Each secret is mode 0600 and owned by its reader; Temporal's database
# password is also readable by PostgreSQL's group (0640, group 999), which
# reads it once, to create Temporal's role.
set -euo pipefail
cd "$(dirname "$0")/.."
S=deploy/secrets
T=deploy/tls
[[ $(id -u) == 0 ]] || { echo "run as root (sudo $0): it sets the owners of the secrets" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl missing" >&2; exit 1; }
if [[ ! -f deploy/access/signing.pub ]]; then
  echo "no deploy/access/signing.pub: make the access tokens' signing key where its administrators keep it" >&2
  echo "(go run ./starter access key new --dir ADMIN_DIR) and copy its signing.pub there" >&2
  exit 1
fi
if [[ -e deploy/access/signing.key ]]; then
  echo "deploy/access/signing.key: the signing key must not be beside the services; keep it with the administrators" >&2
  exit 1
fi
if [[ ! -f $T/ca.pem ]]; then
  echo "no TLS material in $T: make it first (go run ./localfleet certs --dir $T, or your CA's)" >&2
  exit 1
fi
mkdir -p "$S"
chmod 755 "$S"
umask 077

# put FILE CONTENT: writes FILE unless it exists.
put() { [[ -s $S/$1 ]] || printf '%s\n' "$2" >"$S/$1"; }

put key-secret "$(openssl rand -hex 32)"
put codec-keys "k1=$(openssl rand -base64 32)"
put grafana-admin-password "$(openssl rand -hex 16)"
put temporal-db-password "$(openssl rand -hex 24)"
# PostgreSQL's administrator: its password, and the same as a URL for
# `starter store setup` (the mailwave-store-setup service).
put postgres-password "$(openssl rand -hex 24)"
put pg-admin-url "postgres://postgres:$(head -1 "$S/postgres-password")@postgresql:5432/postgres?sslmode=verify-full&sslrootcert=/tls/ca.pem"
# mailwave's own role: a pgpass line (host:port:database:user:password).
put mailwave-pgpass "postgresql:5432:mailwave:mailwave:$(openssl rand -hex 24)"

own() { chown "$1" "${@:3}"; chmod "$2" "${@:3}"; }
own 65532:65532 600 $S/key-secret $S/codec-keys $S/mailwave-pgpass $S/pg-admin-url $T/mailwave-key.pem
own 1000:999 640 $S/temporal-db-password
own 1000:1000 600 $T/temporal-key.pem $T/temporal-ui-key.pem
own 999:999 600 $S/postgres-password $T/postgresql-key.pem
own 472:472 600 $S/grafana-admin-password
for f in $T/*.pem; do [[ $f == *-key.pem ]] || chmod 644 "$f"; done
# The public key and the revocation list are public: the codec server reads them.
touch deploy/access/revoked
chmod 755 deploy/access
chmod 644 deploy/access/signing.pub deploy/access/revoked
echo "secrets in $S, owned by their readers; TLS keys in $T likewise"
