"The chat of a consultation, kept with the patient's record."
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool

from .exceptions import InvalidInput, TokenStateError

SENDERS = [
    ('patient', "Patient"),
    ('doctor', "Doctor"),
    ]
MAX_TEXT = 2000


class Message(ModelSQL, ModelView):
    "Consultation Message"
    __name__ = 'sehat.opd.message'

    token = fields.Many2One(
        'sehat.opd.token', "Token", required=True, readonly=True,
        ondelete='CASCADE')
    sender = fields.Selection(SENDERS, "Sender", required=True, readonly=True)
    healthprof = fields.Many2One(
        'gnuhealth.healthprofessional', "Doctor", readonly=True,
        ondelete='RESTRICT')
    text = fields.Text("Text", readonly=True)
    attachment = fields.Many2One(
        'ir.attachment', "File", readonly=True, ondelete='SET NULL')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.token, Index.Equality()), (t.id, Index.Range())))
        cls._order = [('id', 'ASC')]

    @classmethod
    def post(cls, token, sender, text=None, file=None, healthprof=None):
        """Add a line to the consultation's chat; `file` is (name, data).

        Only while the patient is called or in consultation (the chat is
        part of the consultation) and never empty.
        """
        pool = Pool()
        Record = pool.get('sehat.opd.record')
        Live = pool.get('sehat.opd.live')
        if token.state not in {'called', 'in_consultation'}:
            raise TokenStateError(gettext('sehat_opd.msg_message_closed'))
        if text is not None and not isinstance(text, str):
            raise InvalidInput(
                gettext('sehat_opd.msg_message_text'), field='text')
        text = (text or '').strip()
        if len(text) > MAX_TEXT:
            raise InvalidInput(gettext('sehat_opd.msg_message_too_long',
                    size=MAX_TEXT), field='text')
        if not text and not file:
            raise InvalidInput(
                gettext('sehat_opd.msg_message_empty'), field='text')
        if file:
            Record.check_files([file], field='file')
        message, = cls.create([{
                    'token': token.id,
                    'sender': sender,
                    'healthprof': healthprof.id if healthprof else None,
                    'text': text or None,
                    }])
        if file:
            attachment, = Record.store(message, [file], origin='chat')
            message.attachment = attachment
            message.save()
        Live.publish_token(token.id, 'message')
        return message

    @classmethod
    def since(cls, token, after=0):
        return cls.search([
                ('token', '=', token.id),
                ('id', '>', after or 0),
                ], order=[('id', 'ASC')], limit=200)

    def describe(self):
        Record = Pool().get('sehat.opd.record')
        return {
            'id': self.id,
            'sender': self.sender,
            'text': self.text,
            'file': Record.describe(self.attachment)
            if self.attachment else None,
            'created': self.create_date.isoformat(),
            }
