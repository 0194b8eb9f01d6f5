#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on the local socket for the tests,
# starting the Debian cluster or installing it (as root) when missing, and
# that the current user may create databases.
set -euo pipefail

ready() { pg_isready -q 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_isready >/dev/null; then
    echo "Installing PostgreSQL from Debian's packages..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! ready; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "Starting PostgreSQL $version..."
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 30); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL is not reachable" >&2; exit 1; }
user=$(id -un)
if ! psql -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
    # no role for this user yet: create it through the postgres superuser
    su postgres -c "createuser --superuser $user" 2>/dev/null || \
        runuser -u postgres -- createuser --superuser "$user"
fi
