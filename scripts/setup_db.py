#!/usr/bin/env python3
"""Create or upgrade a SeHAT OPD database, then load data/.

Usage: setup_db.py -c trytond.conf -d NAME [--demo] [--admin-password PW]

- A missing database is created (SQLite: the file; PostgreSQL: CREATE
  DATABASE), initialised and given the three modules with Hindi.
- An existing one is upgraded only when the modules' files changed since
  the last run (a hash kept next to the database), so a second `make run`
  starts in seconds.
- Reference data (and demo data with --demo) is loaded idempotently.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ['sehat_opd', 'sehat_opd_video', 'sehat_opd_sms']


def modules_hash():
    digest = hashlib.sha256()
    for folder in MODULES + ['data']:
        for path in sorted((ROOT / folder).rglob('*')):
            if path.is_file() and '__pycache__' not in path.parts and (
                    path.suffix in {'.py', '.xml', '.cfg', '.po', '.csv'}):
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def database_state(name):
    "'missing', 'empty' (created, not initialised) or 'ready'."
    from trytond.config import config
    from trytond import backend
    if backend.name == 'sqlite':
        path = Path(config.get('database', 'path')) / (name + '.sqlite')
        if not path.exists():
            return 'missing'
    else:
        from trytond.transaction import Transaction
        with Transaction().start(None, 0, close=True, autocommit=True) as t:
            if name not in t.database.list():
                return 'missing'
    database = backend.Database(name).connect()
    try:
        return 'ready' if database.test() else 'empty'
    finally:
        database.close()


def create_database(name):
    from trytond.config import config
    from trytond import backend
    if backend.name == 'sqlite':
        import sqlite3
        path = Path(config.get('database', 'path'))
        path.mkdir(parents=True, exist_ok=True)
        # WAL: the server's readers do not block the cron worker's writes
        connection = sqlite3.connect(str(path / (name + '.sqlite')))
        connection.execute('PRAGMA journal_mode=WAL')
        connection.close()
        return
    from trytond.transaction import Transaction
    with Transaction().start(None, 0, close=True, autocommit=True) as t:
        t.database.create(t.connection, name)


def admin(conf, name, *args, password=None):
    env = dict(os.environ)
    with tempfile.NamedTemporaryFile('w', delete=False) as passfile:
        passfile.write(password or 'admin')
    env['TRYTONPASSFILE'] = passfile.name
    try:
        subprocess.run(
            [str(Path(sys.executable).parent / 'trytond-admin'), '-c', conf,
                '-d', name, *args], check=True, env=env)
    finally:
        os.unlink(passfile.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('-c', '--config', required=True)
    parser.add_argument('-d', '--database', required=True)
    parser.add_argument('--demo', action='store_true')
    parser.add_argument('--admin-password', default='admin')
    parser.add_argument('--admin-email', default='admin@sehat.example')
    options = parser.parse_args()
    os.environ['TRYTOND_CONFIG'] = options.config
    name = options.database
    stamp_dir = ROOT / 'var'
    stamp_dir.mkdir(exist_ok=True)
    uri = os.environ.get('TRYTOND_DATABASE__URI', 'sqlite://')
    stamp = stamp_dir / ('.%s-%s.modules' % (
            name, hashlib.sha1(uri.encode()).hexdigest()[:8]))
    current = modules_hash()

    state = database_state(name)
    if state != 'ready':
        print('Creating database %r (about a minute)...' % name, flush=True)
        if state == 'missing':
            create_database(name)
        admin(options.config, name, '--all', '--email', options.admin_email,
            password=options.admin_password)
        admin(options.config, name, '-u', *MODULES,
            '--activate-dependencies', '-l', 'hi')
    elif stamp.exists() and stamp.read_text() == current:
        print('Database %r is up to date.' % name, flush=True)
        return
    else:
        print('Upgrading the modules of %r...' % name, flush=True)
        admin(options.config, name, '-u', *MODULES,
            '--activate-dependencies', '-l', 'hi')
    load = [sys.executable, str(ROOT / 'data' / 'load.py'),
        '-c', options.config, '-d', name]
    if options.demo:
        load.append('--demo')
    subprocess.run(load, check=True)
    stamp.write_text(current)

if __name__ == '__main__':
    main()
