"""What happens to OPD tokens without anyone pressing a button: the
tokens of ended days expire, missed calls go back to the line (both run
by the cron), and the first patients in line are told their turn is near
(after every change of the line).

A mixin of `sehat.opd.token` (token.py holds the model and its workflow).
"""
import datetime as dt

from trytond.pool import Pool
from trytond.transaction import Transaction

from .waiting import ACTIVE_STATES


class TokenUpkeepMixin:
    "Expiry, requeue of missed calls and turn-near notices of tokens."
    __slots__ = ()

    @classmethod
    def cron_expire(cls):
        cls.expire_stale()

    @classmethod
    def cron_requeue_missed(cls):
        cls.requeue_missed()

    @classmethod
    def requeue_missed(cls, opd=None, token_ids=None):
        """Send back to the queue the called tokens whose window has passed
        (of `opd` or among `token_ids` when given)."""
        domain = [
            ('state', '=', 'called'),
            ('call_deadline', '<', dt.datetime.now()),
            ('answered_at', '=', None),
            ]
        if opd:
            domain.append(('opd', '=', opd.id))
        if token_ids is not None:
            domain.append(('id', 'in', list(token_ids)))
        tokens = cls.search(domain)
        if tokens:
            cls.miss(tokens)
        return tokens

    @classmethod
    def expire_stale(cls, patient=None):
        "Expire the active tokens of days that have ended, OPD by OPD."
        OPD = Pool().get('sehat.opd')
        stale = []
        if patient:
            tokens = cls.search([
                    ('patient', '=', patient.id),
                    ('state', 'in', ACTIVE_STATES),
                    ])
            stale = [t for t in tokens if t.date < t.opd.today()]
        else:
            for opd in OPD.search([('active', 'in', [True, False])]):
                stale.extend(cls.search([
                            ('opd', '=', opd.id),
                            ('state', 'in', ACTIVE_STATES),
                            ('date', '<', opd.today()),
                            ]))
        if stale:
            cls.expire(stale)
        return stale

    @classmethod
    def notify_turn_near(cls, opd):
        "Tell the first waiting patients that their turn is near, once."
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        Notifier = pool.get('sehat.opd.notifier')
        threshold = Configuration(1).turn_near_threshold
        tokens = cls.search([
                ('opd', '=', opd.id),
                ('date', '=', opd.today()),
                ('state', '=', 'waiting'),
                ], order=[('seq', 'ASC'), ('id', 'ASC')], limit=threshold)
        to_notify = cls._lock_skipping(
            [t for t in tokens if not t.turn_near_notified])
        for position, token in enumerate(tokens, 1):
            if token in to_notify:
                Notifier.notify('turn_near', patient=token.patient, values={
                        'token': token.number, 'position': position,
                        'opd': opd.rec_name})
        if to_notify:
            cls.write(to_notify, {'turn_near_notified': True})

    @classmethod
    def _lock_skipping(cls, tokens):
        """The `tokens` this transaction could lock without waiting.

        One that another transaction is changing (its patient cancelling, a
        doctor calling it) is left out rather than waited for: that
        transaction may itself be waiting for the queue this one holds, a
        deadlock PostgreSQL breaks only after a second. Still waiting, it
        is told at the next change of the queue.
        """
        database = Transaction().database
        if not tokens or not database.has_select_for():
            return tokens
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        For = database.get_select_for_skip_locked()
        cursor.execute(*table.select(table.id,
                where=table.id.in_([t.id for t in tokens]),
                for_=For('UPDATE')))
        locked = {id_ for id_, in cursor}
        return [t for t in tokens if t.id in locked]
