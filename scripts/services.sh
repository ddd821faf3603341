#!/usr/bin/env bash
# services.sh — make sure a PostgreSQL and a Redis are reachable for dev/test.
#
# Usage:
#   eval "$(scripts/services.sh up [dbname])"   # dbname defaults to "tollgate"
#   scripts/services.sh status
#   scripts/services.sh down
#
# `up` prints ONLY `export DATABASE_URL='...'` and `export REDIS_URL='...'` on
# stdout; all progress and errors go to stderr. It picks, in order:
#   Postgres: $DATABASE_URL if reachable (used unchanged)
#             -> 127.0.0.1:5432 as user postgres (trust auth), database <dbname>
#             -> a private cluster in $ROOT/.tollgate/pg on 127.0.0.1:55432
#   Redis:    $REDIS_URL if reachable (used unchanged)
#             -> 127.0.0.1:6379
#             -> a private redis-server on 127.0.0.1:56379 ($ROOT/.tollgate/redis)
# Missing binaries are installed from Debian's packages with apt-get (CI may
# start on a clean machine). Running `up` again reuses whatever is running.
#
# `down` stops only the private servers this script started (ports 55432 and
# 56379); the machine's own services on 5432/6379 are never touched.
#
# Environment knobs:
#   TOLLGATE_PRIVATE_SERVICES=1   ignore $DATABASE_URL/$REDIS_URL and the
#                                 default ports; always use the private servers
#                                 (isolated state, and how the private path is
#                                 tested on a machine that has 5432/6379).
#   TOLLGATE_SERVICES_TIMEOUT=N   seconds to wait for a server to come up (30).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.tollgate"
TIMEOUT="${TOLLGATE_SERVICES_TIMEOUT:-30}"
PRIVATE="${TOLLGATE_PRIVATE_SERVICES:-0}"

PG_PORT=55432
REDIS_PORT=56379
REDIS_DIR="$STATE/redis"

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# Single-quote a value for a shell `export` line the caller will eval.
shquote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------- helpers ---

# Run a command with root privileges (apt-get, chown); sudo only if not root.
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"
  fi
}

# Install Debian packages non-interactively. `apt-get update` is slow, so only
# do it when the first attempt fails (e.g. a fresh machine with empty lists).
apt_install() {
  log "installing Debian package(s): $* (apt-get)"
  # 9>&-: package scripts may start daemons; they must not inherit our lock.
  local env=(env DEBIAN_FRONTEND=noninteractive)
  if ! as_root "${env[@]}" apt-get install -y -q --no-install-recommends "$@" >&2 9>&-; then
    as_root "${env[@]}" apt-get update -q >&2 9>&-
    as_root "${env[@]}" apt-get install -y -q --no-install-recommends "$@" >&2 9>&-
  fi
}

# Newest /usr/lib/postgresql/<ver>/bin that has $1, else $1 from PATH.
pg_tool() {
  local d
  while read -r d; do
    [[ -x "$d/$1" ]] && { printf '%s\n' "$d/$1"; return 0; }
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  command -v "$1" 2>/dev/null
}

ensure_psql() {
  PSQL="$(pg_tool psql || true)"
  if [[ -z "$PSQL" ]]; then
    apt_install postgresql-client
    PSQL="$(pg_tool psql)" || die "psql still missing after installing postgresql-client"
  fi
}

ensure_redis_cli() {
  if ! command -v redis-cli >/dev/null; then
    apt_install redis-tools
  fi
}

# True when the URL accepts a connection and answers `select 1`. -w: never
# prompt for a password (a password-protected server just counts as "no").
pg_ok() {
  [[ "$(PGCONNECT_TIMEOUT=3 "$PSQL" "$1" -wXtAqc 'select 1' 2>/dev/null)" == 1 ]]
}

# True when the URL answers PING with PONG (timeout: a dead remote host hangs).
redis_ok() {
  [[ "$(timeout 5 redis-cli -u "$1" ping 2>/dev/null)" == PONG ]]
}

# ------------------------------------------------------ private Postgres ---

# Where the private cluster lives. As root the server runs as `postgres`, which
# must be able to reach the directory; a repo under e.g. /root (mode 0700) is
# not reachable, so fall back to a per-repo directory under /tmp.
pg_base() {
  if [[ $EUID -eq 0 ]] && id postgres >/dev/null 2>&1 \
     && ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
    printf '/tmp/tollgate-pg-%s\n' "$(printf %s "$ROOT" | cksum | cut -d' ' -f1)"
  else
    printf '%s\n' "$STATE/pg"
  fi
}

# initdb/pg_ctl refuse to run as root: run them as the postgres OS user then.
# cd / so the server does not warn about an unreadable working directory.
as_pg() {
  if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@")
  else "$@"
  fi
}

ensure_postgres_user() {
  [[ $EUID -eq 0 ]] || return 0
  id postgres >/dev/null 2>&1 && return 0
  log "creating OS user postgres"
  useradd --system --user-group --no-create-home \
    --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

start_private_pg() {
  local url="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
  if pg_ok "$url"; then
    log "private postgres already running on 127.0.0.1:$PG_PORT"
    return 0
  fi

  local initdb
  initdb="$(pg_tool initdb || true)"
  if [[ -z "$initdb" ]]; then
    apt_install postgresql
    initdb="$(pg_tool initdb)" || die "initdb still missing after installing postgresql"
  fi
  local bin; bin="$(dirname "$(readlink -f "$initdb")")"
  ensure_postgres_user

  mkdir -p "$STATE"
  chmod 755 "$STATE"  # the postgres user must be able to traverse it
  local base data sock logf
  base="$(pg_base)"; data="$base/data"; sock="$base/run"; logf="$base/postgres.log"
  mkdir -p "$base" "$sock"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$base" "$sock"; fi

  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initdb private cluster in $data"
    # Throwaway test data: trust auth, C locale, no fsync at init.
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust \
      -E UTF8 --no-locale --no-sync >"$base/initdb.log" 2>&1 \
      || { tail -n 30 "$base/initdb.log" >&2; die "initdb failed (log: $base/initdb.log)"; }
    printf "include_if_exists = 'tollgate.conf'\n" >>"$data/postgresql.conf"
  fi

  # Regenerated on every start so a moved checkout still gets the right socket
  # dir. Unix socket paths are limited to ~107 bytes; too long -> TCP only.
  local sockdirs="$sock"
  (( ${#sock} + 16 > 100 )) && sockdirs=""
  cat >"$data/tollgate.conf" <<EOF
# Written by scripts/services.sh on each start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdirs'
# Dev/test only: durability is not needed and costs time.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  if [[ $EUID -eq 0 ]]; then chown postgres: "$data/tollgate.conf"; fi

  log "starting private postgres on 127.0.0.1:$PG_PORT (log: $logf)"
  # 9>&-: the server must not inherit (and so hold forever) the `up` lock.
  if ! as_pg "$bin/pg_ctl" -D "$data" -l "$logf" -w -t "$TIMEOUT" start >&2 9>&-; then
    tail -n 30 "$logf" >&2 || true
    die "private postgres did not start (log: $logf)"
  fi
  local i
  for ((i = 0; i < TIMEOUT * 5; i++)); do
    pg_ok "$url" && return 0
    sleep 0.2
  done
  tail -n 30 "$logf" >&2 || true
  die "private postgres not answering on 127.0.0.1:$PG_PORT after ${TIMEOUT}s (log: $logf)"
}

stop_private_pg() {
  local data pg_ctl
  data="$(pg_base)/data"
  [[ -f "$data/postmaster.pid" ]] || { log "private postgres not running"; return 0; }
  pg_ctl="$(pg_tool pg_ctl || true)"
  [[ -n "$pg_ctl" ]] || die "pg_ctl not found; cannot stop $data"
  log "stopping private postgres ($data)"
  as_pg "$pg_ctl" -D "$data" -m fast -w stop >&2 || true
}

# Create database $2 through admin URL $1 unless it exists. A concurrent `up`
# may win the race, so re-check before calling a failed CREATE an error.
ensure_database() {
  local admin="$1" db="$2" q
  q="select 1 from pg_database where datname='$db'"
  [[ "$("$PSQL" "$admin" -wXtAqc "$q")" == 1 ]] && return 0
  log "creating database $db"
  "$PSQL" "$admin" -wXqc "CREATE DATABASE \"$db\"" >&2 \
    || [[ "$("$PSQL" "$admin" -wXtAqc "$q")" == 1 ]] \
    || die "could not create database $db"
}

# Print the DATABASE_URL to use on stdout.
resolve_postgres() {
  local db="$1" url
  ensure_psql
  if [[ "$PRIVATE" != 1 ]]; then
    if [[ -n "${DATABASE_URL:-}" ]]; then
      if pg_ok "$DATABASE_URL"; then
        log "postgres: using \$DATABASE_URL as given"
        printf '%s\n' "$DATABASE_URL"; return 0
      fi
      log "postgres: \$DATABASE_URL is set but not reachable; looking elsewhere"
    fi
    url="postgres://postgres@127.0.0.1:5432"
    if pg_ok "$url/postgres?sslmode=disable"; then
      log "postgres: using the machine's server on 127.0.0.1:5432"
      ensure_database "$url/postgres?sslmode=disable" "$db"
      printf '%s\n' "$url/$db?sslmode=disable"; return 0
    fi
  fi
  start_private_pg
  url="postgres://postgres@127.0.0.1:$PG_PORT"
  log "postgres: using private server on 127.0.0.1:$PG_PORT"
  ensure_database "$url/postgres?sslmode=disable" "$db"
  printf '%s\n' "$url/$db?sslmode=disable"
}

# --------------------------------------------------------- private Redis ---

start_private_redis() {
  local url="redis://127.0.0.1:$REDIS_PORT/0"
  if redis_ok "$url"; then
    log "private redis already running on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$REDIS_DIR"
  log "starting private redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_DIR/redis.log)"
  # No persistence: test data is disposable.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save '' --appendonly no --dir "$REDIS_DIR" \
    --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid" >&2 9>&-
  local i
  for ((i = 0; i < TIMEOUT * 5; i++)); do
    redis_ok "$url" && return 0
    sleep 0.2
  done
  tail -n 30 "$REDIS_DIR/redis.log" >&2 || true
  die "private redis not answering on 127.0.0.1:$REDIS_PORT after ${TIMEOUT}s"
}

stop_private_redis() {
  if [[ -f "$REDIS_DIR/redis.pid" ]] && command -v redis-cli >/dev/null \
     && redis_ok "redis://127.0.0.1:$REDIS_PORT/0"; then
    log "stopping private redis (127.0.0.1:$REDIS_PORT)"
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$REDIS_DIR/redis.pid"
  else
    log "private redis not running"
  fi
}

# Print the REDIS_URL to use on stdout.
resolve_redis() {
  ensure_redis_cli
  if [[ "$PRIVATE" != 1 ]]; then
    if [[ -n "${REDIS_URL:-}" ]]; then
      if redis_ok "$REDIS_URL"; then
        log "redis: using \$REDIS_URL as given"
        printf '%s\n' "$REDIS_URL"; return 0
      fi
      log "redis: \$REDIS_URL is set but not reachable; looking elsewhere"
    fi
    if redis_ok "redis://127.0.0.1:6379/0"; then
      log "redis: using the machine's server on 127.0.0.1:6379"
      printf '%s\n' "redis://127.0.0.1:6379/0"; return 0
    fi
  fi
  start_private_redis
  log "redis: using private server on 127.0.0.1:$REDIS_PORT"
  printf '%s\n' "redis://127.0.0.1:$REDIS_PORT/0"
}

# ------------------------------------------------------------- commands ---

init_state() {
  mkdir -p "$STATE"
  # Keep runtime state out of git without needing a .gitignore entry.
  [[ -f "$STATE/.gitignore" ]] || printf '*\n' >"$STATE/.gitignore"
  # Serialize concurrent `up`/`down` runs (e.g. parallel make jobs).
  exec 9>"$STATE/.lock"
  flock -w $((TIMEOUT * 4)) 9 || die "timed out waiting for $STATE/.lock"
}

cmd_up() {
  local db="${1:-tollgate}" pg_url redis_url out
  [[ "$db" =~ ^[A-Za-z_][A-Za-z0-9_-]*$ ]] || die "bad database name: $db"
  init_state
  pg_url="$(resolve_postgres "$db")"
  redis_url="$(resolve_redis)"
  out="export DATABASE_URL=$(shquote "$pg_url")
export REDIS_URL=$(shquote "$redis_url")"
  # Remember the choice for `status`.
  printf '%s\n' "$out" >"$STATE/env"
  printf '%s\n' "$out"
}

cmd_down() {
  init_state
  stop_private_pg
  stop_private_redis
  rm -f "$STATE/env"
}

cmd_status() {
  if [[ -f "$STATE/env" ]]; then
    echo "last 'up' chose:"; sed 's/^/  /' "$STATE/env"
  else
    echo "no 'up' recorded in $STATE/env"
  fi
  local p r
  p="$(pg_tool psql || true)"
  if [[ -n "$p" ]]; then
    PSQL="$p"
    pg_ok "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" && p=up || p=down
    echo "postgres 127.0.0.1:5432 (machine):  $p"
    pg_ok "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" && p=up || p=down
    echo "postgres 127.0.0.1:$PG_PORT (private): $p  data: $(pg_base)/data"
  else
    echo "postgres: psql not installed"
  fi
  if command -v redis-cli >/dev/null; then
    redis_ok "redis://127.0.0.1:6379/0" && r=up || r=down
    echo "redis    127.0.0.1:6379 (machine):  $r"
    redis_ok "redis://127.0.0.1:$REDIS_PORT/0" && r=up || r=down
    echo "redis    127.0.0.1:$REDIS_PORT (private): $r  dir: $REDIS_DIR"
  else
    echo "redis: redis-cli not installed"
  fi
}

case "${1:-}" in
  up)     shift; cmd_up "$@" ;;
  down)   cmd_down ;;
  status) cmd_status ;;
  *)      sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
