"""Waiting for a database connection in turn, without sleeping.

When every connection of a process' pool is in use, trytond 7.0's
PostgreSQL backend sleeps one second and tries again, up to `[database]
retry` (at least `maxconn`) times. Under a burst that is the latency of the
service: a waiting room woken by a queue change, or a doctor pressing
"Call next", waits whole seconds while connections come back every few
milliseconds, and a request arriving later may take the connection before
one that has slept. bench/load_day.py measured it: with 2 x 128 threads and
30 connections per worker, GET /opds took 5 s at the median of the
morning's rush.

`install()` puts a semaphore of `maxconn` permits in front of each
database's pool: a connection is taken with a permit and gives it back when
it is returned, so a request that finds the pool in use waits on the
semaphore, woken as soon as a connection is given back, in order of
arrival. The pool itself is never asked for more than it has. After
`retry` seconds without a permit the request asks trytond's way (which
sleeps, then fails as before), so nothing waits longer than it did.
"""
import os
import threading

from trytond.config import config

_LOCK = threading.Lock()
_GATES = {}  # (pid, database name) -> semaphore
_PERMITTED = set()  # id() of the connections taken with a permit
_INSTALLED = []


def install():
    "Wrap the PostgreSQL backend's get/put_connection (once per process)."
    from trytond import backend
    if backend.name != 'postgresql':
        return
    from trytond.backend.postgresql import database as postgresql
    with _LOCK:
        if _INSTALLED:
            return
        _INSTALLED.append(True)
    Database = postgresql.Database
    get_connection, put_connection = (
        Database.get_connection, Database.put_connection)
    wait = max(config.getint('database', 'retry'), postgresql._maxconn)

    def gate(database):
        key = (os.getpid(), database.name)
        with _LOCK:
            semaphore = _GATES.get(key)
            if semaphore is None:
                semaphore = _GATES[key] = threading.BoundedSemaphore(
                    postgresql._maxconn)
            return semaphore

    def get_in_turn(self, *args, **kwargs):
        semaphore = gate(self)
        if not semaphore.acquire(timeout=wait):
            return get_connection(self, *args, **kwargs)
        try:
            connection = get_connection(self, *args, **kwargs)
        except BaseException:
            semaphore.release()
            raise
        with _LOCK:
            _PERMITTED.add(id(connection))
        return connection

    def put_in_turn(self, connection, close=False):
        try:
            put_connection(self, connection, close=close)
        finally:
            with _LOCK:
                permitted = id(connection) in _PERMITTED
                _PERMITTED.discard(id(connection))
            if permitted:
                gate(self).release()

    Database.get_connection = get_in_turn
    Database.put_connection = put_in_turn

