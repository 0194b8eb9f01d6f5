"""What the benchmarks share: the database they run on and trytond under
gunicorn the way docker/entrypoint.sh serves it.

- `build_database(name)`: the demo database (scripts/setup_db.py), created
  once and upgraded when the modules change;
- `env()`: the server's environment (PostgreSQL on the local socket, a
  secret of this run, SeHAT OPD in production mode); `queue_data.configure`
  takes the same values, so fixtures written from the benchmark process
  share the server's settings;
- `Gunicorn`: trytond.application:app with gthread workers and
  bench/trytond.conf, its workers' memory (`worker_rss`).
"""
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / 'bench'
sys.path.insert(0, str(ROOT / 'tests'))

SECRET = 'bench-secret-' + secrets.token_hex(8)


def env():
    values = dict(os.environ)
    values.update({
            'TRYTOND_DATABASE__URI': 'postgresql://',
            'TRYTOND_DATABASE__PATH': str(ROOT / 'var' / 'bench-files'),
            'TRYTOND_SEHAT_OPD__SECRET': SECRET,
            'TRYTOND_SEHAT_OPD__MODE': 'production',
            })
    return values


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def build_database(name):
    "The demo database, created once and upgraded when the modules change."
    (ROOT / 'var' / 'bench-files').mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / 'scripts' / 'setup_db.py'),
            '-c', str(ROOT / 'trytond.conf'), '-d', name, '--demo'],
        check=True, env=env())


class Gunicorn:
    """trytond under gunicorn, as docker/entrypoint.sh runs it; `extra` are
    more environment values (module settings, [database] maxconn), `log`
    a file its output is added to (else it goes to this process' own)."""

    def __init__(self, database, workers=2, threads=32, extra=None,
            log=None):
        self.port = free_port()
        self.root = 'http://127.0.0.1:%s' % self.port
        self.base = '%s/%s/opd/api/v1' % (self.root, database)
        values = env()
        values.update({
                'TRYTOND_CONFIG': str(BENCH / 'trytond.conf'),
                'TRYTOND_DATABASE_NAMES': database,
                'TRYTOND_LOGGING_LEVEL': '40',
                })
        values.update(extra or {})
        output = open(log, 'ab') if log else None
        try:
            self.process = subprocess.Popen([
                    str(Path(sys.executable).parent / 'gunicorn'),
                    '--bind', '127.0.0.1:%s' % self.port,
                    '--worker-class', 'gthread', '--workers', str(workers),
                    '--threads', str(threads), '--timeout', '120',
                    '--keep-alive', '75', '--log-level', 'warning',
                    'trytond.application:app'], env=values,
                stdout=output, stderr=output)
        finally:
            if output:
                output.close()  # the server has its own copy

    def wait(self):
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(self.base + '/health', timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError('gunicorn did not start')

    def worker_rss(self):
        "{pid: resident bytes} of the gunicorn workers (not the master)."
        import psutil
        rss = {}
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return rss
        for child in children:
            try:
                rss[child.pid] = child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return rss

    def stop(self):
        """Quick shutdown (SIGINT): open long polls are not waited for. The
        workers are gone when it returns, and their connections with them:
        a worker left behind keeps its pool open (with `minconn` = 30, the
        next run's workers could then not connect: "too many clients")."""
        import psutil
        try:
            workers = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            workers = []
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _, alive = psutil.wait_procs(workers, timeout=10)
        for worker in alive:
            worker.kill()
        psutil.wait_procs(alive, timeout=10)
