"""Live waiting rooms: bus channels and the per-process queue snapshots.

A queue change publishes on the trytond bus (PostgreSQL NOTIFY, delivered at
commit, so a rolled-back change wakes nobody). The waiting room long-polls a
route that waits on those channels; on SQLite, which has no bus, it polls.
"""
import logging
import os
import threading
import time
from collections import OrderedDict

from trytond.model import Model
from trytond.pool import Pool
from trytond.transaction import Transaction

logger = logging.getLogger(__name__)
_SNAPSHOTS = OrderedDict()
_SNAPSHOTS_LOCK = threading.Lock()
_SNAPSHOTS_SIZE = 512
_RECOVERING_BUS = []


def _bus():
    """The bus to publish on and to wait on: trytond's, or when that is
    its LongPollingBus, the same with the recovery of _recovering_bus."""
    # imported late: trytond.bus imports trytond.wsgi, whose middleware
    # (sehat_opd.wsgi) may be loading this package
    from trytond.bus import Bus, LongPollingBus
    if Bus is not LongPollingBus:
        return Bus
    if not _RECOVERING_BUS:
        _RECOVERING_BUS.append(_recovering_bus(LongPollingBus))
    return _RECOVERING_BUS[0]


def _recovering_bus(LongPollingBus):
    """trytond 7.0's long-polling bus, made to survive a lost database
    connection (PostgreSQL restarted, failed over, or the connection cut).

    When the LISTEN connection breaks, trytond's listener thread logs the
    error, drops the process' queue entry and dies. Whoever was waiting
    then sleeps out the whole long poll, and the first of them to finish
    puts an empty entry back (a defaultdict lookup) that has no listener:
    from then on no subscriber starts one, and every waiting room of the
    process only learns of changes at the end of each long poll, for as
    long as the process lives. This subclass wakes the waiters of a dead
    listener (they read the state again) and replaces an entry without a
    live listener, so the next subscriber starts a new one. It shares
    trytond's class attributes: waiters of trytond's own /bus route are
    woken by the listener it starts too.
    """

    class RecoveringBus(LongPollingBus):

        @classmethod
        def subscribe(cls, database, channels, last_message=None):
            pid = os.getpid()
            with cls._queues_lock[pid]:
                entry = cls._queues.get((pid, database))
                listener = entry.get('listener') if entry else None
                if entry is not None and not (
                        listener and listener.is_alive()):
                    del cls._queues[pid, database]
            return super().subscribe(database, channels, last_message)

        @classmethod
        def _listen(cls, database):
            pid = os.getpid()
            with cls._queues_lock[pid]:
                entry = cls._queues.get((pid, database))
            try:
                super()._listen(database)
            except Exception:
                # trytond has logged it; the waiters read the state again
                # (when the database is back) and subscribe anew
                events = []
                if entry is not None:
                    with cls._queues_lock[pid]:
                        events = [event
                            for waiting in entry['events'].values()
                            for event in waiting]
                for event in events:
                    event.set()
                logger.info('bus listener on "%s" stopped, %s waiters woken',
                    database, len(events))
    return RecoveringBus


def queue_channel(queue_id):
    return 'sehat_opd:queue:%s' % queue_id


def token_channel(token_id):
    return 'sehat_opd:token:%s' % token_id


class Live(Model):
    "Live Waiting Room"
    __name__ = 'sehat.opd.live'

    @classmethod
    def publish_queues(cls, queue_ids):
        Bus = _bus()
        for queue_id in queue_ids:
            Bus.publish(queue_channel(queue_id), {'type': 'queue'})

    @classmethod
    def publish_token(cls, token_id, kind):
        "Something happened in one consultation (chat line, video event)."
        _bus().publish(token_channel(token_id), {'type': kind})

    @classmethod
    def snapshot(cls, queue_id, version):
        """The queue's snapshot at `version`, computed once per process.

        The version comes from the same query as the token, so a snapshot is
        never served for a queue that has changed since.
        """
        key = (Transaction().database.name, queue_id, version)
        with _SNAPSHOTS_LOCK:
            snapshot = _SNAPSHOTS.get(key)
            if snapshot is not None:
                _SNAPSHOTS.move_to_end(key)
                return snapshot
        Token = Pool().get('sehat.opd.token')
        snapshot = Token.queue_snapshot(queue_id)
        with _SNAPSHOTS_LOCK:
            _SNAPSHOTS[key] = snapshot
            while len(_SNAPSHOTS) > _SNAPSHOTS_SIZE:
                _SNAPSHOTS.popitem(last=False)
        return snapshot

    @staticmethod
    def has_bus(database_name):
        from trytond import backend
        return backend.Database(database_name).has_channel()

    @staticmethod
    def wait(database_name, channels, cursor):
        """Block until a message on `channels` arrives after `cursor`, or the
        bus' long-polling timeout passes; call it outside any transaction.

        Return (cursor for the next wait, whether something arrived).
        When the bus fails, say that something arrived: the caller reads
        the state again, which tells whether the database is back.
        """
        try:
            response = _bus().subscribe(database_name, channels, cursor)
        except Exception:
            logger.warning('waiting on the bus failed', exc_info=True)
            time.sleep(1)  # not a busy loop of callers that wait again
            return cursor, True
        message = response.get('message')
        if not message:
            return cursor, False
        return message['message_id'], True
