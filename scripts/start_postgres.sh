#!/usr/bin/env bash
# Start a throwaway PostgreSQL + PostGIS server for the store tests and print its URL.
#
#   bash scripts/start_postgres.sh [DIR]     # DIR: where the cluster lives (default below)
#   bash scripts/start_postgres.sh --stop [DIR]
#
# Installs Debian's `postgresql` and `postgresql-15-postgis-3` when they are missing (apt-get
# update first; needs root), creates a cluster in DIR owned by the `postgres` user (PostgreSQL
# refuses to run as root), starts it on a free port of 127.0.0.1 with trust authentication
# (loopback only, a throwaway cluster), and creates the template database `profiling_template`
# with `CREATE EXTENSION postgis`; tests create their own databases from it. A cluster already
# running in DIR is reused. The URL (postgresql+psycopg://...) is printed on stdout and written
# to DIR/url; everything else goes to stderr.
set -euo pipefail

stop=0
if [ "${1:-}" = "--stop" ]; then stop=1; shift; fi
DIR=${1:-${PROFILING_PG_DIR:-/tmp/profiling-pg}}
DATA=$DIR/data
PG_VERSION=15
log() { echo "start_postgres: $*" >&2; }

bindir() {
  if [ -x /usr/lib/postgresql/$PG_VERSION/bin/pg_ctl ]; then
    echo /usr/lib/postgresql/$PG_VERSION/bin
  else
    dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)"
  fi
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ $stop = 1 ]; then
  if [ -f "$DATA/postmaster.pid" ]; then
    as_postgres "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >&2
  fi
  exit 0
fi

have_postgis() {
  [ -x "$(bindir)/pg_ctl" ] && ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1
}
if ! have_postgis; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL with PostGIS is not installed and this user cannot install it (not root)"
    exit 1
  fi
  log "installing postgresql and postgresql-$PG_VERSION-postgis-3 from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-$PG_VERSION-postgis-3 >&2
fi
BIN=$(bindir)

mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
chmod 700 "$DIR"

running() { as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

if ! running; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "creating a cluster in $DATA"
    as_postgres "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  py=$(command -v python3 || command -v python3.11 || command -v python)
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log "starting PostgreSQL on 127.0.0.1:$port"
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $DIR" \
    start >&2
  echo "$port" > "$DIR/port"
fi
port=$(cat "$DIR/port")
psql_() { as_postgres "$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
if [ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'profiling_template'")" != 1 ]; then
  psql_ -d postgres -c "CREATE DATABASE profiling_template" >&2
  psql_ -d profiling_template -c "CREATE EXTENSION postgis" >&2
fi
url="postgresql+psycopg://postgres@127.0.0.1:$port/profiling_template"
echo "$url" > "$DIR/url"
chmod 644 "$DIR/url"
echo "$url"
