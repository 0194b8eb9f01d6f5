#!/usr/bin/env bash
# SeHAT OPD container entrypoint.
#
#   web           gunicorn (gthread workers) serving trytond.application:app
#   cron          trytond-cron for the database
#   worker        trytond-worker (only if [queue] worker is enabled)
#   init          create / upgrade the database, then load reference data
#   admin ARGS    trytond-admin -d <db> ARGS   (e.g. "admin -p" with -it)
#   load-data [--demo]   python data/load.py -d <db>
#   console       trytond-console -d <db>
#   healthcheck   JSON-RPC probe of the local trytond (used by HEALTHCHECK)
#   anything else is executed as is.
#
# Environment (defaults in brackets):
#   SEHAT_DB_NAME [sehat]           database name
#   TRYTOND_DATABASE__URI           postgresql://user:password@host:port/
#   TRYTON_ADMIN_PASSWORD           "admin" password, used only when the
#                                   database is created (or TRYTONPASSFILE)
#   TRYTON_ADMIN_EMAIL []           "admin" e-mail, set only at creation
#   SEHAT_DB_UPDATE [auto]          auto: run trytond-admin when the image
#                                   changed; always; never
#   SEHAT_LOAD_DATA [auto]          auto: load reference data only when the
#                                   database is created; always; never
#   SEHAT_LOAD_DEMO [0]             1: pass --demo to data/load.py
#   SEHAT_MODULES                   modules to activate
#                                   [sehat_opd sehat_opd_video sehat_opd_sms]
#   GUNICORN_WORKERS [2] GUNICORN_THREADS [32] GUNICORN_TIMEOUT [120]
#   GUNICORN_CMD_ARGS               extra gunicorn options (read by gunicorn)
#   TRYTOND_WORKER_PROCESSES [2]    processes of trytond-worker
set -euo pipefail

export TRYTOND_CONFIG="${TRYTOND_CONFIG:-/etc/trytond/trytond.conf}"
export SEHAT_DB_NAME="${SEHAT_DB_NAME:-sehat}"
# Databases that gunicorn workers load at start-up (also the default -d of
# the trytond-* commands).
export TRYTOND_DATABASE_NAMES="${TRYTOND_DATABASE_NAMES:-$SEHAT_DB_NAME}"

SEHAT_MODULES="${SEHAT_MODULES:-sehat_opd sehat_opd_video sehat_opd_sms}"
DATA_LOADER=/opt/sehat/data/load.py
BUILD_ID_FILE=/opt/venv/sehat-build-id
PORT="${PORT:-8000}"

log() { printf '%s sehat-entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_db_uri() {
    case "${TRYTOND_DATABASE__URI:-}" in
        postgresql://*) ;;
        *) die "TRYTOND_DATABASE__URI must be a postgresql:// URI" ;;
    esac
}

# Small PostgreSQL helper (psycopg2 is installed with trytond).
#   dbtool wait | ensure | state | get-marker | set-marker VALUE
dbtool() {
    python - "$@" <<'PY'
import os
import sys
import time
import urllib.parse

import psycopg2
from psycopg2 import sql

uri = os.environ['TRYTOND_DATABASE__URI']
name = os.environ['SEHAT_DB_NAME']
action = sys.argv[1]


def connect(dbname):
    parts = urllib.parse.urlsplit(uri)
    return psycopg2.connect(
        urllib.parse.urlunsplit(parts._replace(path='/' + dbname)),
        connect_timeout=5)


if action == 'wait':
    deadline = time.monotonic() + int(os.environ.get('SEHAT_DB_WAIT', '120'))
    while True:
        try:
            connect('postgres').close()
            break
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                sys.exit('PostgreSQL not reachable: %s' % exc)
            time.sleep(2)
elif action == 'ensure':
    conn = connect('postgres')
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('SELECT 1 FROM pg_database WHERE datname = %s', (name,))
        if cur.fetchone():
            print('exists')
        else:
            cur.execute(sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'"
                    ).format(sql.Identifier(name)))
            print('created')
    conn.close()
elif action == 'state':
    conn = connect(name)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.ir_module') IS NOT NULL")
        print('initialized' if cur.fetchone()[0] else 'empty')
    conn.close()
elif action == 'get-marker':
    conn = connect('postgres')
    with conn.cursor() as cur:
        cur.execute(
            "SELECT shobj_description(oid, 'pg_database') "
            "FROM pg_database WHERE datname = %s", (name,))
        row = cur.fetchone()
        print((row and row[0]) or '')
    conn.close()
elif action == 'set-marker':
    conn = connect(name)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL('COMMENT ON DATABASE {} IS {}').format(
                sql.Identifier(name), sql.Literal(sys.argv[2])))
    conn.close()
else:
    sys.exit('unknown dbtool action %r' % action)
PY
}

admin() {
    trytond-admin -c "$TRYTOND_CONFIG" -d "$SEHAT_DB_NAME" "$@"
}

load_data() {
    [[ -f $DATA_LOADER ]] || die "$DATA_LOADER not found in the image"
    local args=()
    if [[ ${SEHAT_LOAD_DEMO:-0} == 1 ]]; then
        args+=(--demo)
    fi
    log "loading reference data${args[*]:+ (${args[*]})}"
    python "$DATA_LOADER" -c "$TRYTOND_CONFIG" -d "$SEHAT_DB_NAME" "${args[@]}" "$@"
}

cmd_init() {
    require_db_uri
    log "waiting for PostgreSQL"
    dbtool wait
    if [[ $(dbtool ensure) == created ]]; then
        log "created database $SEHAT_DB_NAME"
    fi

    local state build_id marker fresh=0 update=0
    state=$(dbtool state)
    build_id="sehat-build:$(cat "$BUILD_ID_FILE")"
    marker=$(dbtool get-marker)
    if [[ $state == empty ]]; then
        fresh=1
    fi

    # shellcheck disable=SC2086  # SEHAT_MODULES is a space-separated list
    if (( fresh )); then
        local passfile="${TRYTONPASSFILE:-}" tmp=""
        if [[ -z $passfile ]]; then
            [[ -n ${TRYTON_ADMIN_PASSWORD:-} ]] \
                || die "new database: set TRYTON_ADMIN_PASSWORD (or TRYTONPASSFILE)"
            tmp=$(umask 077 && mktemp)
            # trytond-admin reads exactly one line.
            printf '%s\n' "$TRYTON_ADMIN_PASSWORD" > "$tmp"
            passfile=$tmp
        fi
        log "initialising database $SEHAT_DB_NAME"
        # --email avoids the interactive prompt of a new database.
        local rc=0
        TRYTONPASSFILE=$passfile admin --all \
            --email "${TRYTON_ADMIN_EMAIL:-}" || rc=$?
        if [[ -n $tmp ]]; then
            rm -f "$tmp"
        fi
        (( rc == 0 )) || die "trytond-admin --all failed (exit $rc)"
        log "activating $SEHAT_MODULES"
        admin -u $SEHAT_MODULES --activate-dependencies
        update=1
    else
        case "${SEHAT_DB_UPDATE:-auto}" in
            always) update=1 ;;
            never) update=0 ;;
            auto) if [[ $marker != "$build_id" ]]; then update=1; fi ;;
            *) die "SEHAT_DB_UPDATE must be auto, always or never" ;;
        esac
        if (( update )); then
            log "updating database $SEHAT_DB_NAME (trytond-admin --all)"
            admin --all
            admin -u $SEHAT_MODULES --activate-dependencies
        else
            log "database $SEHAT_DB_NAME is up to date with this image"
        fi
    fi

    if (( update )); then
        dbtool set-marker "$build_id" \
            || log "WARNING: could not record the build id; the next start will update again"
    fi

    case "${SEHAT_LOAD_DATA:-auto}" in
        always) load_data ;;
        auto) if (( fresh )); then load_data; fi ;;
        never) ;;
        *) die "SEHAT_LOAD_DATA must be auto, always or never" ;;
    esac
    log "init done"
}

cmd_web() {
    require_db_uri
    # Threaded workers: each waiting-room long poll holds one thread for up
    # to [bus] long_polling_timeout (50 s) without holding a DB connection.
    exec gunicorn \
        --bind "0.0.0.0:${PORT}" \
        --worker-class gthread \
        --workers "${GUNICORN_WORKERS:-2}" \
        --threads "${GUNICORN_THREADS:-32}" \
        --timeout "${GUNICORN_TIMEOUT:-120}" \
        --graceful-timeout "${GUNICORN_GRACEFUL_TIMEOUT:-30}" \
        --keep-alive "${GUNICORN_KEEPALIVE:-75}" \
        --worker-tmp-dir /dev/shm \
        --access-logfile - \
        --error-logfile - \
        trytond.application:app
}

cmd_healthcheck() {
    python - <<'PY'
import json
import os
import sys
import urllib.request

req = urllib.request.Request(
    'http://127.0.0.1:%s/' % os.environ.get('PORT', '8000'),
    data=json.dumps({
            'id': 0, 'method': 'common.server.version', 'params': [],
            }).encode(),
    headers={'Content-Type': 'application/json'})
try:
    with urllib.request.urlopen(req, timeout=4) as resp:
        result = json.load(resp).get('result')
except Exception as exc:  # noqa: BLE001
    sys.exit('unhealthy: %s' % exc)
if not result:
    sys.exit('unhealthy: no version in answer')
PY
}

# Serving processes learn of each other's cache changes (a doctor added to
# an OPD) at once through PostgreSQL's NOTIFY rather than every 5 minutes;
# set here, not in trytond.conf: trytond-admin cannot create a database
# with it (see cmd_init).
serve_env() {
    export TRYTOND_CACHE__CLEAN_TIMEOUT="${TRYTOND_CACHE__CLEAN_TIMEOUT:-0}"
}

command="${1:-web}"
if [[ $# -gt 0 ]]; then
    shift
fi

case "$command" in
    web) serve_env; cmd_web ;;
    cron)
        require_db_uri
        serve_env
        exec trytond-cron -c "$TRYTOND_CONFIG" -d "$SEHAT_DB_NAME" "$@" ;;
    worker)
        require_db_uri
        serve_env
        exec trytond-worker -c "$TRYTOND_CONFIG" -d "$SEHAT_DB_NAME" \
            -n "${TRYTOND_WORKER_PROCESSES:-2}" "$@" ;;
    init) cmd_init ;;
    admin) require_db_uri; admin "$@" ;;
    load-data) require_db_uri; load_data "$@" ;;
    console)
        require_db_uri
        exec trytond-console -c "$TRYTOND_CONFIG" -d "$SEHAT_DB_NAME" "$@" ;;
    healthcheck) cmd_healthcheck ;;
    *) exec "$command" "$@" ;;
esac
