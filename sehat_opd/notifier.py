"""The one door through which the service tells a patient something.

The core writes each message on one line of the server log, after the
transaction commits; `sehat_opd_sms` extends `send` to queue SMS and e-mail.
"""
import logging

from trytond.i18n import gettext
from trytond.model import Model
from trytond.transaction import Transaction

from . import tools

logger = logging.getLogger(__name__)

EVENTS = [
    ('otp', "OTP"),
    ('registered', "Registration"),
    ('recover', "Patient ID Recovery"),
    ('token_issued', "Token Issued"),
    ('turn_near', "Turn Near"),
    ('called', "Call Now"),
    ('missed_call', "Missed Call"),
    ('token_cancelled', "Token Cancelled"),
    ('token_expired', "Token Expired"),
    ('prescription_ready', "Prescription Ready"),
    ('contact_received', "Contact Request Received"),
    ]


class LogDataManager:
    "Write the messages of a transaction to the log once it has committed."

    def __init__(self):
        self.queue = []

    def __eq__(self, other):
        return isinstance(other, LogDataManager)

    def put(self, event, mobile, text):
        self.queue.append((event, mobile, text))

    def abort(self, trans):
        self.queue = []

    def tpc_begin(self, trans):
        pass

    def commit(self, trans):
        pass

    def tpc_vote(self, trans):
        pass

    def tpc_finish(self, trans):
        development = tools.is_development()
        for event, mobile, text in self.queue:
            if development:
                # The demo reads OTPs here; one line per message.
                logger.warning('SMS to %s [%s]: %s', mobile, event,
                    ' '.join(text.split()))
            else:
                logger.info('SMS to %s [%s]', tools.mask_mobile(mobile), event)
        self.queue = []

    def tpc_abort(self, trans):
        self.queue = []


class Notifier(Model):
    "Patient Notifier"
    __name__ = 'sehat.opd.notifier'

    @classmethod
    def notify(cls, event, patient=None, mobile=None, email=None,
            values=None, language=None):
        """Tell the patient (or the holder of `mobile`) about `event`.

        `values` fill the message (see message.xml, msg_notify_<event>).
        Nothing leaves before the transaction commits.
        """
        recipient = cls.recipient(patient, mobile, email, language)
        if not recipient['mobile'] and not recipient['email']:
            return
        cls.send(event, recipient, dict(values or {}))

    @classmethod
    def recipient(cls, patient=None, mobile=None, email=None, language=None):
        if patient:
            mobile = mobile or patient.portal_mobile
            email = email or next((c.value
                    for c in patient.party.contact_mechanisms
                    if c.type == 'email'), None)
            language = language or patient.portal_language
        return {
            'patient': patient,
            'mobile': mobile,
            'email': email,
            'language': language or 'en',
            'name': patient.party.name if patient else None,
            }

    @classmethod
    def render(cls, event, values, language='en'):
        "The plain text of `event` in `language` (msg_notify_<event>)."
        values = dict(values)
        values.setdefault('url', tools.get_setting(
                'sehat_opd', 'base_url', '') or '')
        with Transaction().set_context(language=language):
            return gettext('sehat_opd.msg_notify_%s' % event, **values)

    @classmethod
    def send(cls, event, recipient, values):
        "Core delivery: one log line per message, after commit."
        if not recipient['mobile']:
            return
        text = cls.render(event, values, recipient['language'])
        manager = Transaction().join(LogDataManager())
        manager.put(event, recipient['mobile'], text)


def event_names():
    return [e for e, _ in EVENTS]


