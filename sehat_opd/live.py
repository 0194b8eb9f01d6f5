"""Live waiting rooms: bus channels and the per-process queue snapshots.

A queue change publishes on the trytond bus (PostgreSQL NOTIFY, delivered at
commit, so a rolled-back change wakes nobody). The waiting room long-polls a
route that waits on those channels; on SQLite, which has no bus, it polls.
"""
import threading
from collections import OrderedDict

from trytond.model import Model
from trytond.pool import Pool
from trytond.transaction import Transaction

_SNAPSHOTS = OrderedDict()
_SNAPSHOTS_LOCK = threading.Lock()
_SNAPSHOTS_SIZE = 512


def _bus():
    # imported late: trytond.bus imports trytond.wsgi, whose middleware
    # (sehat_opd.wsgi) may be loading this package
    from trytond.bus import Bus
    return Bus


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
        """
        response = _bus().subscribe(database_name, channels, cursor)
        message = response.get('message')
        if not message:
            return cursor, False
        return message['message_id'], True
