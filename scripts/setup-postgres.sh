#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages when absent, starts a cluster with pg_ctlcluster (the
# server runs as the 'postgres' user, never root), creates the test role and database, and prints
# the SQLAlchemy URL the tests read from MODELHOST_TEST_POSTGRES_URL. Idempotent.
set -euo pipefail
log() { echo "setup-postgres: $*" >&2; }
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  log "installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n1)
if [ -z "${version:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  pg_createcluster "$version" main >&2
  read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n1)
fi
if [ "$status" != "online" ]; then
  log "starting cluster $version/$cluster on port $port"
  pg_ctlcluster "$version" "$cluster" start >&2
fi
psql_as_postgres() { (cd / && runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"); }
for _ in $(seq 50); do psql_as_postgres -c 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
if [ "$(psql_as_postgres -c "select 1 from pg_roles where rolname='modelhost'")" != "1" ]; then
  psql_as_postgres -c "create role modelhost login password 'modelhost' createdb" >&2
fi
if [ "$(psql_as_postgres -c "select 1 from pg_database where datname='modelhost_test'")" != "1" ]; then
  psql_as_postgres -c "create database modelhost_test owner modelhost" >&2
fi
echo "postgresql+psycopg://modelhost:modelhost@127.0.0.1:${port}/modelhost_test"
