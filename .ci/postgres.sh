# Sourced by .ci/run with $venv set: start a throwaway PostgreSQL for the state-store tests.
#
# When it works: PostgreSQL (Debian's package, installed with apt-get if missing and we are root)
# runs a private cluster on a free loopback port, psycopg[binary] is in the venv, and
# WCSYNC_TEST_PG_URL points at an empty database, so the PostgreSQL lock and store tests run.
# When any step fails it says why and leaves WCSYNC_TEST_PG_URL unset: those tests are skipped and
# CI goes on. It never fails the caller. ``pg_teardown`` stops the cluster and removes its files.

pg_reason=""
pg_bin=""
pg_home=""

_pg_as_owner() {
  # initdb refuses to run as root: as root, run the server's commands as the postgres user.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_pg_setup() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      pg_reason="PostgreSQL is not installed, and installing it needs apt-get as root"
      return 1
    fi
    echo "ci: installing PostgreSQL with apt-get for the state-store tests"
    if ! { timeout 300 apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends postgresql
         } >/tmp/wcsync-ci-apt.log 2>&1; then
      pg_reason="apt-get install postgresql failed (last lines: $(tail -n 3 /tmp/wcsync-ci-apt.log | tr '\n' ' '))"
      return 1
    fi
  fi
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  if ! "$venv/bin/python" -m pip install --quiet 'psycopg[binary]>=3.1,<4' >/tmp/wcsync-ci-pip.log 2>&1; then
    pg_reason="pip could not install psycopg[binary] ($(tail -n 1 /tmp/wcsync-ci-pip.log))"
    return 1
  fi
  pg_home="$(mktemp -d /tmp/wcsync-pg.XXXXXX)"
  chmod 0755 "$pg_home"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pg_home"; fi
  local port
  port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if ! _pg_as_owner "$pg_bin/initdb" -D "$pg_home/data" -U postgres --auth=trust -E UTF8 \
         >"$pg_home/initdb.log" 2>&1; then
    pg_reason="initdb failed ($(tail -n 1 "$pg_home/initdb.log"))"
    return 1
  fi
  if ! _pg_as_owner "$pg_bin/pg_ctl" -D "$pg_home/data" -l "$pg_home/server.log" -w -t 60 \
         -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_home -c fsync=off" start >/dev/null 2>&1; then
    pg_reason="the server did not start ($(tail -n 1 "$pg_home/server.log" 2>/dev/null))"
    return 1
  fi
  if ! _pg_as_owner "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres wcsync_test >/dev/null 2>&1; then
    pg_reason="createdb failed"
    return 1
  fi
  export WCSYNC_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/wcsync_test"
  echo "ci: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port for the state-store tests"
}

pg_teardown() {
  if [ -n "$pg_home" ] && [ -d "$pg_home/data" ]; then
    _pg_as_owner "$pg_bin/pg_ctl" -D "$pg_home/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$pg_home" ]; then rm -rf "$pg_home"; fi
}

if ! _pg_setup; then
  echo "ci: no PostgreSQL: $pg_reason; the PostgreSQL lock and store tests will be skipped"
  pg_teardown
  pg_home=""
fi
