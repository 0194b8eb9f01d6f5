"""The outbox: every SMS and e-mail the service sends is a record.

A message is created in the transaction of the event that causes it and is
sent only after that transaction commits (sending.DispatchDataManager), so a
rolled-back token never texts anyone. How it is then sent, once, is in
dispatch.py; the states it goes through are here.
"""
import datetime as dt
import json
import re
import uuid

from sql import Null

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, Workflow, fields
from trytond.modules.sehat_opd import tools
from trytond.modules.sehat_opd.notifier import EVENTS
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction, without_check_access

from . import dlt, sending
from .dispatch import Dispatching, backoff
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
OTP_DIGITS = re.compile(r'\d{4,}')


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


class Message(Dispatching, Workflow, ModelSQL, ModelView):
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

    # Queueing ---------------------------------------------------------------

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

    @staticmethod
    def _core_text(Notifier, event, values, language):
        "The core's wording, shown to staff when no template could serve."
        try:
            return Notifier.render(event, values, language)
        except (KeyError, TypeError, ValueError):
            return ' '.join('%s=%s' % i for i in sorted(values.items()))

    @classmethod
    def _sms_values(cls, template, event, values, language, Notifier):
        "The values of an SMS record and the reason it cannot go, if any."
        if template is None:
            text = cls._core_text(Notifier, event, values, language)
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
            record['text'] = cls._core_text(Notifier, event, values, language)
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
            text = cls._core_text(Notifier, event, values, language)
        else:
            subject = template.email_subject or subject
            try:
                text = template.render_email(values)
            except dlt.TemplateError:
                text = cls._core_text(Notifier, event, values, language)
        return {'text': text, 'subject': subject}, None

    # Workflow ---------------------------------------------------------------

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
