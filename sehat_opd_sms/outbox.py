"""The outbox: every SMS and e-mail the service sends is a record.

A message is created in the transaction of the event that causes it and is
sent only after that transaction commits (sending.DispatchDataManager), so a
rolled-back token never texts anyone. Sending is done in three steps, each
safe against a second worker or a crash:

1. claim (a short transaction): lock the due rows with SELECT ... FOR UPDATE
   SKIP LOCKED, mark them "sending" with a lease and a claim key, commit;
2. talk to the gateway with no transaction open;
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
import re
import time
import uuid

from sql import For, Null

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, Workflow, fields
from trytond.modules.sehat_opd import tools
from trytond.modules.sehat_opd.notifier import EVENTS
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.tools import reduce_ids
from trytond.transaction import Transaction, without_check_access

from . import dlt, gateway, sending
from .exceptions import OutboxError
from .template import CATEGORIES, LANGUAGES

STATES = [
    ('queued', "Queued"),
    ('sending', "Sending"),
    ('sent', "Sent"),
    ('delivered', "Delivered"),
    ('failed', "Failed"),
    ]
CHANNELS = [
    ('sms', "SMS"),
    ('email', "E-mail"),
    ]
# Lower goes first: an OTP is waited for on the screen, a Call Now lasts
# two minutes. Others keep their order (a patient's "token issued" comes
# before the "turn near" of the same moment).
PRIORITY = {'otp': 0, 'called': 1}
DEFAULT_PRIORITY = 5
# Messages worthless after a while: never sent (nor retried) past it.
TURN_NEAR_TTL = dt.timedelta(hours=1)
MAX_DELAY = 3600
BATCH = 20
OTP_DIGITS = re.compile(r'\d{4,}')


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


def expiry(event, values, now):
    "When a message of `event` stops being worth sending (None: never)."
    try:
        if event == 'otp':
            return now + dt.timedelta(minutes=int(values.get('minutes')))
        if event == 'called':
            return now + dt.timedelta(seconds=int(values.get('seconds')))
    except (TypeError, ValueError):
        return now + dt.timedelta(minutes=10)
    if event == 'turn_near':
        return now + TURN_NEAR_TTL
    return None


class Message(Workflow, ModelSQL, ModelView):
    "Notification Message"
    __name__ = 'sehat.sms.message'

    event = fields.Selection(EVENTS, "Event", required=True, readonly=True)
    channel = fields.Selection(CHANNELS, "Channel", required=True,
        readonly=True)
    recipient = fields.Char("Recipient", required=True, readonly=True,
        help="Mobile number (E.164) or e-mail address.")
    patient = fields.Many2One('gnuhealth.patient', "Patient", readonly=True,
        ondelete='SET NULL')
    language = fields.Selection(LANGUAGES, "Language", readonly=True)
    template = fields.Many2One('sehat.sms.template', "Template",
        readonly=True, ondelete='SET NULL')
    dlt_template_id = fields.Char("DLT Template ID", readonly=True)
    provider_template_id = fields.Char("Gateway Template ID", readonly=True)
    category = fields.Selection([(None, '')] + CATEGORIES, "Category",
        readonly=True)
    subject = fields.Char("Subject", readonly=True)
    text = fields.Text("Text", readonly=True,
        help="OTP codes are masked once the message has left.")
    fills = fields.Text("Variable Values", readonly=True,
        help="JSON list of the {#var#} values, for gateways that take them.")
    encoding = fields.Selection([
            (None, ''),
            ('gsm7', "GSM 7-bit"),
            ('ucs2', "Unicode (UCS-2)"),
            ], "Encoding", readonly=True)
    segments = fields.Integer("SMS Parts", readonly=True)
    state = fields.Selection(STATES, "State", required=True, readonly=True,
        sort=False)
    priority = fields.Integer("Priority", required=True, readonly=True)
    attempts = fields.Integer("Attempts", required=True, readonly=True)
    next_try = fields.DateTime("Next Try", readonly=True)
    expires = fields.DateTime("Expires", readonly=True,
        help="Not sent after this time (OTP validity, Call Now window).")
    lease_until = fields.DateTime("Lease Until", readonly=True)
    claim = fields.Char("Claim", readonly=True)
    reference = fields.Char("Reference", required=True, readonly=True,
        help="Our id of the message, sent as idempotency key or custom "
        "reference where the gateway takes one.")
    provider = fields.Char("Provider", readonly=True)
    gateway_id = fields.Char("Gateway ID", readonly=True)
    gateway_answer = fields.Text("Gateway Answer", readonly=True)
    reason = fields.Text("Reason", readonly=True)
    sent_at = fields.DateTime("Sent At", readonly=True)
    delivered_at = fields.DateTime("Delivered At", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('reference_unique', Unique(t, t.reference),
                'sehat_opd_sms.msg_message_reference_unique'),
            ]
        cls._sql_indexes.update({
                Index(t,
                    (t.state, Index.Equality(cardinality='low')),
                    (t.next_try, Index.Range()),
                    where=t.state.in_(['queued', 'sending'])),
                Index(t, (t.gateway_id, Index.Equality()),
                    where=t.gateway_id != Null),
                Index(t, (t.create_date, Index.Range(order='DESC'))),
                })
        cls._order = [('create_date', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('queued', 'sending'),
            ('sending', 'sending'),  # lease expired: claimed again
            ('sending', 'sent'),
            ('sending', 'queued'),
            ('sending', 'delivered'),  # receipt faster than our record
            ('sent', 'delivered'),
            ('queued', 'failed'),
            ('sending', 'failed'),
            ('sent', 'failed'),  # the operator reported a failure
            ('failed', 'queued'),  # resent by staff
            }
        cls._buttons.update({
                'resend': {
                    'invisible': Eval('state') != 'failed',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'queued'

    @classmethod
    def default_attempts(cls):
        return 0

    @classmethod
    def default_priority(cls):
        return DEFAULT_PRIORITY

    def get_rec_name(self, name):
        recipient = (tools.mask_mobile(self.recipient)
            if self.channel == 'sms' else self.recipient)
        return '%s: %s' % (self.event, recipient)

    # Queueing ----------------------------------------------------------------

    @classmethod
    def queue(cls, event, recipient, values):
        """Create the messages of `event` for `recipient` (the dict of
        sehat.opd.notifier.recipient) and have them sent after commit.

        Runs without access checks: whoever causes an event (a doctor
        calling a patient, staff cancelling a token) causes its messages,
        without any right on the outbox.
        """
        pool = Pool()
        Template = pool.get('sehat.sms.template')
        Notifier = pool.get('sehat.opd.notifier')
        config = sending.queue_settings()
        now = dt.datetime.now()
        values = dict(values)
        values.setdefault('name', recipient.get('name') or '')
        values.setdefault('url',
            tools.get_setting('sehat_opd', 'base_url', '') or '')
        language = recipient.get('language') or 'en'
        patient = recipient.get('patient')
        with without_check_access():
            template = Template.for_event(event, language)
            common = {
                'event': event,
                'patient': patient.id if patient else None,
                'language': template.language if template else language,
                'template': template.id if template else None,
                'priority': PRIORITY.get(event, DEFAULT_PRIORITY),
                'expires': expiry(event, values, now),
                'next_try': now,
                }
            to_create, problems = [], []
            if recipient.get('mobile'):
                record, problem = cls._sms_values(
                    template, event, values, language, Notifier)
                record.update(common, channel='sms',
                    recipient=recipient['mobile'],
                    provider=config['provider'])
                to_create.append(record)
                problems.append(problem)
            # OTPs prove the holder of the mobile: never by e-mail.
            if (recipient.get('email') and event != 'otp'
                    and config['email'] != 'off'):
                record, problem = cls._email_values(
                    template, event, values, language, Notifier)
                record.update(common, channel='email',
                    recipient=recipient['email'],
                    provider=config['email'], priority=DEFAULT_PRIORITY)
                to_create.append(record)
                problems.append(problem)
            for record in to_create:
                # not a default: defaults are computed once per create()
                record['reference'] = uuid.uuid4().hex
            messages = cls.create(to_create)
            failed = {}
            for message, problem in zip(messages, problems):
                if problem:
                    failed.setdefault(problem, []).append(message)
            for problem, records in failed.items():
                cls.fail(records, problem)
        queued = [m.id for m in messages if m.state == 'queued']
        if queued:
            transaction = Transaction()
            manager = transaction.join(
                sending.DispatchDataManager(transaction.database.name))
            manager.put(queued)
        return messages

    @classmethod
    def _sms_values(cls, template, event, values, language, Notifier):
        "The values of an SMS record and the reason it cannot go, if any."
        if template is None:
            text = Notifier.render(event, values, language)
            return {'text': text}, gettext(
                'sehat_opd_sms.msg_reason_no_template',
                event=event, language=language)
        record = {
            'dlt_template_id': template.dlt_template_id,
            'provider_template_id': template.provider_template_id,
            'category': template.category,
            }
        try:
            text, fills = template.render(values)
        except dlt.TemplateError as exception:
            record['text'] = Notifier.render(event, values, language)
            return record, gettext('sehat_opd_sms.msg_reason_template',
                template=template.rec_name, detail=str(exception))
        if not dlt.fits(template.text, text):
            record['text'] = text
            return record, gettext('sehat_opd_sms.msg_reason_template',
                template=template.rec_name, detail='no match')
        coding, parts, _ = dlt.segments(text)
        record.update(text=text, fills=json.dumps(fills, ensure_ascii=False),
            encoding=coding, segments=parts)
        return record, None

    @classmethod
    def _email_values(cls, template, event, values, language, Notifier):
        events = dict(EVENTS)
        subject = 'SeHAT OPD: %s' % events.get(event, event)
        if template is None:
            text = Notifier.render(event, values, language)
        else:
            subject = template.email_subject or subject
            try:
                text = template.render_email(values)
            except dlt.TemplateError:
                text = Notifier.render(event, values, language)
        return {'text': text, 'subject': subject}, None

    # Workflow ------------------------------------------------------------------

    @classmethod
    @Workflow.transition('sending')
    def take(cls, messages, now, lease_until):
        "Claimed by a worker: it owns them until `lease_until`."
        for message in messages:
            if message.state == 'sending':
                # The previous worker vanished; its try counts.
                message.attempts += 1
                message.reason = gettext('sehat_opd_sms.msg_reason_lease')
            message.claim = uuid.uuid4().hex
            message.lease_until = lease_until
        cls.save(messages)

    @classmethod
    @Workflow.transition('sent')
    def mark_sent(cls, messages, outcomes, now):
        for message in messages:
            outcome = outcomes[message.id]
            message.attempts += 1
            message.gateway_id = outcome.gateway_id
            message.gateway_answer = outcome.reason
            message.reason = None
            message.sent_at = now
            message.claim = message.lease_until = None
            message.scrub()
        cls.save(messages)

    @classmethod
    @Workflow.transition('queued')
    def reschedule(cls, messages, outcomes, now, base_delay):
        for message in messages:
            outcome = outcomes[message.id]
            if outcome.status != 'untried':
                message.attempts += 1
                message.gateway_answer = outcome.reason
            message.reason = outcome.reason
            message.next_try = now + dt.timedelta(
                seconds=backoff(base_delay, max(1, message.attempts)))
            message.claim = message.lease_until = None
        cls.save(messages)

    @classmethod
    @Workflow.transition('failed')
    def fail(cls, messages, reason, outcomes=None):
        for message in messages:
            outcome = (outcomes or {}).get(message.id)
            if outcome is not None:
                message.attempts += 1
                message.gateway_answer = outcome.reason
            message.reason = reason
            message.claim = message.lease_until = None
            message.scrub()
        cls.save(messages)

    @classmethod
    @Workflow.transition('delivered')
    def deliver(cls, messages, answer=None):
        now = dt.datetime.now()
        for message in messages:
            message.delivered_at = now
            message.sent_at = message.sent_at or now
            if answer:
                message.gateway_answer = answer
            message.scrub()
        cls.save(messages)

    @classmethod
    @ModelView.button
    @Workflow.transition('queued')
    def resend(cls, messages):
        "Try a failed message again now, from its first attempt."
        now = dt.datetime.now()
        for message in messages:
            if message.state != 'failed':
                raise OutboxError(gettext(
                        'sehat_opd_sms.msg_message_resend_state',
                        message=message.rec_name))
            if message.event == 'otp' or (
                    message.expires and message.expires <= now):
                raise OutboxError(gettext(
                        'sehat_opd_sms.msg_message_resend_expired',
                        message=message.rec_name))
            message.attempts = 0
            message.next_try = now
            message.reason = None
        cls.save(messages)
        transaction = Transaction()
        transaction.join(sending.DispatchDataManager(
                transaction.database.name)).put([m.id for m in messages])

    def scrub(self):
        "Mask an OTP code once it has left: staff read the outbox."
        if self.event == 'otp':
            mask = lambda m: '*' * len(m.group(0))  # noqa: E731
            self.text = OTP_DIGITS.sub(mask, self.text or '')
            self.fills = OTP_DIGITS.sub(mask, self.fills or '') or None

    # Sending -------------------------------------------------------------------

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
    def dispatch(cls, ids=None, now=None):
        """Send the due messages (only `ids` when given), batch by batch,
        each claim and each record in a transaction of its own.

        Return the number of messages tried. `now` is fixed for the whole
        run, so a message rescheduled by this run waits for the next one.
        """
        now = now or dt.datetime.now()
        try:
            config = sending.settings()
            gateway.check_settings(config)
        except gateway.GatewayConfigError as exception:
            config, problem = None, str(exception)
        transaction = Transaction()
        database_name = transaction.database.name
        tried = 0
        while True:
            claimed = _retrying(lambda: cls._claim_batch(
                    transaction, now, ids, config, database_name))
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
                    transaction, outcomes, claims, now))
            tried += len(claims)

    @classmethod
    def _claim_batch(cls, transaction, now, ids, config, database_name):
        with transaction.new_transaction() as claim_transaction:
            messages = cls.claim_due(now, ids=ids,
                timeout=config['timeout'] if config else 5)
            payloads = [m.payload(config, database_name)
                for m in messages] if config else []
            claims = {m.id: m.claim for m in messages}
            claim_transaction.commit()
        return (claims, payloads) if claims else None

    @classmethod
    def _record_batch(cls, transaction, outcomes, claims, now):
        with transaction.new_transaction() as record_transaction:
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

    # Delivery receipts ------------------------------------------------------------

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
