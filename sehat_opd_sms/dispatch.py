"""Sending the outbox's messages once each, whatever the workers do.

Three steps, each safe against a second worker or a crash:

1. claim (a short transaction): lock the due rows with SELECT ... FOR UPDATE
   SKIP LOCKED, mark them "sending" with a lease and a claim key, commit;
2. talk to the gateway with no transaction open (sending.deliver);
3. record (another short transaction): only if the message still carries
   our claim key, mark it sent, reschedule it with exponential backoff, or
   fail it.

A worker that dies between 1 and 3 leaves the message "sending" until its
lease ends; it is then claimed again and re-sent with the same reference,
which gateways that honour an idempotency key (generic provider's
`idempotency_header`) use to drop the duplicate.
"""
import datetime as dt
import json
import time

from sql import For

from trytond import backend
from trytond.i18n import gettext
from trytond.modules.sehat_opd import tools
from trytond.pool import Pool
from trytond.tools import reduce_ids
from trytond.transaction import Transaction

from . import gateway, sending

MAX_DELAY = 3600
BATCH = 20


def _retrying(func, tries=5):
    """Run `func` again when PostgreSQL refuses it for a concurrent update
    (REPEATABLE READ): each try is a new transaction with a new snapshot."""
    for count in range(tries):
        try:
            return func()
        except backend.DatabaseOperationalError:
            if count == tries - 1:
                raise
            time.sleep(0.05 * (count + 1))


def backoff(base, attempts):
    "Seconds before the next try after `attempts` failed ones."
    return min(MAX_DELAY, base * 2 ** max(0, attempts - 1))


class Dispatching:
    "Claiming, sending and recording of sehat.sms.message (a mixin)."
    __slots__ = ()

    @classmethod
    def claim_due(cls, now, ids=None, limit=BATCH, timeout=5):
        """Lock up to `limit` due messages no other worker holds, in the
        current transaction, and mark them sending. Return them."""
        table = cls.__table__()
        transaction = Transaction()
        database = transaction.database
        cursor = transaction.connection.cursor()
        where = (((table.state == 'queued') & (table.next_try <= now))
            | ((table.state == 'sending') & (table.lease_until <= now)))
        if ids is not None:
            if not ids:
                return []
            where &= reduce_ids(table.id, ids)
        query = table.select(table.id, where=where,
            order_by=[table.priority.asc, table.next_try.asc, table.id.asc],
            limit=limit)
        if database.has_select_for():
            SkipLocked = database.get_select_for_skip_locked()
            query.for_ = SkipLocked('UPDATE')
        cursor.execute(*query)
        messages = cls.browse([row[0] for row in cursor])
        expired = [m for m in messages if m.expires and m.expires <= now]
        if expired:
            cls.fail(expired, gettext('sehat_opd_sms.msg_reason_expired'))
        live = [m for m in messages if m not in expired]
        if live:
            # Long enough for the whole batch to time out, then some.
            lease = now + dt.timedelta(seconds=60 + timeout * len(live))
            cls.take(live, now, lease)
        return live

    def payload(self, config, database_name):
        "What sending needs of this message, read inside the claim."
        callback = None
        base = tools.get_setting('sehat_opd', 'base_url', '')
        if base and config['webhook_secret'] and self.channel == 'sms':
            callback = '%s/%s/opd/api/v1/sms/receipt/%s?secret=%s' % (
                base.rstrip('/'), database_name, config['provider'],
                config['webhook_secret'])
        return {
            'id': self.id,
            'claim': self.claim,
            'channel': self.channel,
            'event': self.event,
            'recipient': self.recipient,
            'mobile': self.recipient,
            'text': self.text or '',
            'subject': self.subject or '',
            'language': self.language or 'en',
            'unicode': self.encoding == 'ucs2',
            'category': self.category,
            'priority': self.priority,
            'reference': self.reference,
            'dlt_template_id': self.dlt_template_id,
            'template_id': self.provider_template_id,
            'fills': json.loads(self.fills) if self.fills else [],
            'callback_url': callback,
            }

    @classmethod
    def dispatch(cls, ids=None, now=None, database_name=None):
        """Send the due messages (only `ids` when given), batch by batch,
        each claim and each record in a transaction of its own.

        Called inside a transaction (the cron, tests), each step's
        transaction runs beside it; called outside any (after a commit,
        `database_name` given), each step's transaction is the only one the
        thread holds: a burst of requests sending their texts must not hold
        a connection each while waiting for a second one from the same pool.

        Return the number of messages tried. `now` is fixed for the whole
        run, so a message rescheduled by this run waits for the next one.
        """
        now = now or dt.datetime.now()
        try:
            config = sending.settings()
            gateway.check_settings(config)
        except gateway.GatewayConfigError as exception:
            config, problem = None, str(exception)
        database_name = database_name or Transaction().database.name
        tried = 0
        while True:
            claimed = _retrying(lambda: cls._claim_batch(
                    database_name, now, ids, config))
            if not claimed:
                return tried
            claims, payloads = claimed
            if config:
                outcomes = sending.deliver(payloads, config)
            else:
                # Broken settings: keep everything for when they are fixed.
                outcomes = {i: gateway.Outcome('retry', None, problem)
                    for i in claims}
            _retrying(lambda: cls._record_batch(
                    database_name, outcomes, claims, now))
            tried += len(claims)

    @staticmethod
    def _step(database_name):
        "The transaction of one step: beside the current one, or alone."
        current = Transaction()
        if current.database is not None:
            return current.new_transaction()
        return Transaction(new=True).start(database_name, 0)

    @classmethod
    def _claim_batch(cls, database_name, now, ids, config):
        with cls._step(database_name) as claim_transaction:
            messages = cls.claim_due(now, ids=ids,
                timeout=config['timeout'] if config else 5)
            payloads = [m.payload(config, database_name)
                for m in messages] if config else []
            claims = {m.id: m.claim for m in messages}
            claim_transaction.commit()
        return (claims, payloads) if claims else None

    @classmethod
    def _record_batch(cls, database_name, outcomes, claims, now):
        with cls._step(database_name) as record_transaction:
            cls.record(outcomes, claims, now)
            record_transaction.commit()

    @classmethod
    def record(cls, outcomes, claims, now):
        """Write the outcome of each message we still own."""
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        configuration = Configuration(1)
        table = cls.__table__()
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        ids = list(outcomes)
        if transaction.database.has_select_for():
            cursor.execute(*table.select(table.id,
                    where=reduce_ids(table.id, ids),
                    for_=For('UPDATE')))
        messages = [m for m in cls.browse(ids)
            if m.state == 'sending' and m.claim == claims.get(m.id)]
        sent, retry, fatal, gave_up, expired = [], [], [], [], []
        for message in messages:
            outcome = outcomes[message.id]
            if outcome.status == 'sent':
                sent.append(message)
            elif outcome.status == 'fatal':
                fatal.append(message)
            elif message.expires and message.expires <= now + dt.timedelta(
                    seconds=configuration.sms_retry_delay):
                expired.append(message)
            elif (outcome.status != 'untried' and message.attempts + 1
                    >= configuration.sms_max_attempts):
                gave_up.append(message)
            else:
                retry.append(message)
        if sent:
            cls.mark_sent(sent, outcomes, now)
        if retry:
            cls.reschedule(retry, outcomes, now,
                configuration.sms_retry_delay)
        for message in fatal:
            cls.fail([message], outcomes[message.id].reason, outcomes)
        for message in gave_up:
            cls.fail([message], gettext('sehat_opd_sms.msg_reason_gave_up',
                    attempts=message.attempts + 1,
                    reason=outcomes[message.id].reason), outcomes)
        if expired:
            cls.fail(expired, gettext('sehat_opd_sms.msg_reason_expired'),
                {m.id: outcomes[m.id] for m in expired
                    if outcomes[m.id].status != 'untried'})

    @classmethod
    def cron_send(cls):
        "Send what is due: first tries left by a crash, retries."
        cls.dispatch()

    # Delivery receipts ------------------------------------------------------

    @classmethod
    def apply_receipts(cls, receipts, provider):
        """Update the messages `provider` reports on; return how many."""
        table = cls.__table__()
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        updated = 0
        for receipt in receipts:
            if receipt.state is None:
                continue
            clauses = []
            if receipt.gateway_id:
                clauses.append(('gateway_id', '=', receipt.gateway_id))
            if receipt.reference:
                clauses.append(('reference', '=', receipt.reference))
            if not clauses:
                continue
            messages = cls.search([
                    ('channel', '=', 'sms'),
                    ('provider', '=', provider),
                    ['OR'] + clauses])
            if not messages:
                continue
            if transaction.database.has_select_for():
                cursor.execute(*table.select(table.id,
                        where=reduce_ids(table.id, [m.id for m in messages]),
                        for_=For('UPDATE')))
            messages = cls.browse([m.id for m in messages])
            if receipt.state == 'delivered':
                messages = [m for m in messages
                    if m.state in {'sending', 'sent'}]
                cls.deliver(messages, receipt.reason)
            else:
                messages = [m for m in messages
                    if m.state in {'sending', 'sent'}]
                cls.fail(messages, gettext(
                        'sehat_opd_sms.msg_reason_receipt',
                        reason=receipt.reason or receipt.state))
            updated += len(messages)
        return updated
