"""Live waiting rooms: bus channels and the per-process queue snapshots.

A queue change publishes on the trytond bus (PostgreSQL NOTIFY, delivered at
commit, so a rolled-back change wakes nobody). The waiting room long-polls a
route that waits on those channels; on SQLite, which has no bus, it polls.

Every waiting room of a queue wakes at each change of the queue: a change
must cost each of them one status read, not one per bus message (see
`Live.wait`), and the queue's snapshot is computed once per change, not
once per woken waiting room (see `Live.snapshot`).
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
# snapshots being computed: key -> Event set when done
_COMPUTING = {}


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
        never served for a queue that has changed since. A change wakes all
        the queue's waiting rooms at once: one of them computes the new
        snapshot while the others wait for it.
        """
        key = (Transaction().database.name, queue_id, version)
        with _SNAPSHOTS_LOCK:
            snapshot = _SNAPSHOTS.get(key)
            if snapshot is not None:
                _SNAPSHOTS.move_to_end(key)
                return snapshot
            computing = _COMPUTING.get(key)
            if computing is None:
                computing = _COMPUTING[key] = threading.Event()
                mine = True
            else:
                mine = False
        Token = Pool().get('sehat.opd.token')
        if not mine:
            computing.wait(30)
            with _SNAPSHOTS_LOCK:
                snapshot = _SNAPSHOTS.get(key)
            # the computing request failed: compute it here
            return snapshot or Token.queue_snapshot(queue_id)
        try:
            snapshot = Token.queue_snapshot(queue_id)
            with _SNAPSHOTS_LOCK:
                _SNAPSHOTS[key] = snapshot
                while len(_SNAPSHOTS) > _SNAPSHOTS_SIZE:
                    _SNAPSHOTS.popitem(last=False)
        finally:
            with _SNAPSHOTS_LOCK:
                del _COMPUTING[key]
            computing.set()
        return snapshot

    @staticmethod
    def has_bus(database_name):
        from trytond import backend
        return backend.Database(database_name).has_channel()

    @staticmethod
    def wait(database_name, channels, cursor, since=None):
        """Block until a message on `channels` arrives after `cursor`, or the
        bus' long-polling timeout passes; call it outside any transaction.

        `since` is a time.time() taken before the caller read what it
        shows: the messages the bus received before it announce changes
        that read has seen, so they do not end the wait. Without it, a page
        polling without a cursor (just opened) is answered at once with the
        oldest message the bus keeps (5 minutes of them), and a page behind
        by several messages is answered once for each.

        Return (cursor for the next wait, whether something arrived).
        When the bus fails, say that something arrived: the caller reads
        the state again, which tells whether the database is back.
        """
        try:
            if since is not None:
                cursor = _last_received(
                    database_name, channels, cursor, since)
            response = _bus().subscribe(database_name, channels, cursor)
        except Exception:
            logger.warning('waiting on the bus failed', exc_info=True)
            time.sleep(1)  # not a busy loop of callers that wait again
            return cursor, True
        message = response.get('message')
        if not message:
            return cursor, False
        return message['message_id'], True


def _last_received(database_name, channels, cursor, before):
    """The id of the last message on `channels` that this process' bus
    received before `before` (time.time()), else `cursor`.

    It reads the message cache of trytond 7.0's LongPollingBus (a list of
    (channel, content, timestamp), in order of arrival); with another bus
    class, or before the bus' listener has started, `cursor` is kept.
    """
    cache = getattr(_bus(), '_messages', {}).get(database_name)
    messages = getattr(cache, '_messages', None)
    if not messages:
        return cursor
    channels = set(channels)
    for message in list(messages):
        if message.timestamp >= before:
            break
        if message.channel in channels:
            cursor = message.content['message_id']
    return cursor
