"""Contact requests sent from the portal's contact form, answered by staff."""
import datetime as dt
import re
import secrets

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Unique, Workflow, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from . import captcha, tools
from .exceptions import InvalidInput, OPDValidationError
from .patient import find_region

STATES = [
    ('new', "New"),
    ('answered', "Answered"),
    ]
NAME_MAX = 60
CITY_MAX = 80
MESSAGE_MIN, MESSAGE_MAX = 10, 2000
_NAME_RE = re.compile(r"^[^\d<>{}\[\]\\/@#$%^*=+|~`_]{1,60}$")
_EMAIL_RE = re.compile(r'^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,}$')
# captcha.CaptchaError reason -> message
CAPTCHA_REASONS = {
    'missing': 'sehat_opd.msg_captcha_missing',
    'invalid': 'sehat_opd.msg_captcha_expired',
    'expired': 'sehat_opd.msg_captcha_expired',
    'wrong': 'sehat_opd.msg_captcha_wrong',
    'used': 'sehat_opd.msg_captcha_expired',
    }
# a secret for the CAPTCHA when the deployment sets none (development): a
# server restart invalidates the forms open at that moment, nothing worse
_PROCESS_SECRET = secrets.token_bytes(32)


def captcha_secret():
    return tools._secret() or _PROCESS_SECRET


class Contact(Workflow, ModelSQL, ModelView):
    """Contact Request

    A message sent through the portal's contact form. Staff read it, deal
    with it (by phone or e-mail) and record their answer, which closes it.
    """
    __name__ = 'sehat.opd.contact'

    reference = fields.Char("Reference", readonly=True)
    first_name = fields.Char("First Name", required=True, readonly=True)
    last_name = fields.Char("Last Name", readonly=True)
    mobile = fields.Char("Mobile", required=True, readonly=True)
    email = fields.Char("E-mail", readonly=True)
    city = fields.Char("Town/City", required=True, readonly=True)
    subdivision = fields.Many2One(
        'country.subdivision', "State", required=True, readonly=True,
        ondelete='RESTRICT')
    message = fields.Text("Message", required=True, readonly=True)
    language = fields.Selection([
            ('en', "English"),
            ('hi', "Hindi"),
            ], "Language", readonly=True)
    address = fields.Char("Client Address", readonly=True)
    state = fields.Selection(STATES, "State", readonly=True, required=True,
        sort=False)
    answer = fields.Text("Answer",
        states={'readonly': Eval('state') == 'answered'},
        help="What was answered to the sender, and how (phone, e-mail).")
    answered_by = fields.Many2One(
        'res.user', "Answered By", readonly=True, ondelete='SET NULL')
    answered_at = fields.DateTime("Answered At", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('reference_uniq', Unique(t, t.reference),
                'sehat_opd.msg_contact_reference_unique'),
            ]
        cls._order = [('create_date', 'DESC'), ('id', 'DESC')]
        cls._transitions |= {
            ('new', 'answered'),
            ('answered', 'new'),
            }
        cls._buttons.update({
                'mark_answered': {
                    'invisible': Eval('state') != 'new',
                    'depends': ['state'],
                    },
                'reopen': {
                    'invisible': Eval('state') != 'answered',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'new'

    @classmethod
    def default_language(cls):
        return 'en'

    def get_rec_name(self, name):
        return '%s %s' % (self.reference, ' '.join(
                n for n in [self.first_name, self.last_name] if n))

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, value = clause
        return ['OR',
            ('reference', operator, value),
            ('first_name', operator, value),
            ('last_name', operator, value),
            ('mobile', operator, value),
            ]

    @classmethod
    @ModelView.button
    @Workflow.transition('answered')
    def mark_answered(cls, contacts):
        "Record that the request was answered (the answer text is required)."
        for contact in contacts:
            if not (contact.answer or '').strip():
                raise OPDValidationError(gettext(
                        'sehat_opd.msg_contact_answer_required',
                        contact=contact.rec_name))
        cls.write(contacts, {
                'answered_by': Transaction().user or None,
                'answered_at': dt.datetime.now(),
                })

    @classmethod
    @ModelView.button
    @Workflow.transition('new')
    def reopen(cls, contacts):
        "Open an answered request again (to complete the answer)."
        cls.write(contacts, {'answered_by': None, 'answered_at': None})

    # Portal --------------------------------------------------------------

    @classmethod
    def challenge(cls):
        """A new CAPTCHA for the form: the signed challenge, its image as a
        data URI, the proof-of-work difficulty and the seconds it lasts."""
        Configuration = Pool().get('sehat.opd.configuration')
        bits = Configuration(1).captcha_bits
        token, code = captcha.new_challenge(captcha_secret(), bits)
        return {
            'captcha': token,
            'image': captcha.data_uri(captcha.render_png(code)),
            'bits': bits,
            'expires_in': captcha.TTL,
            }

    @classmethod
    def submit(cls, data, address, language='en'):
        """Store a contact request sent from the portal; return (contact,
        None) or (None, error).

        Every attempt counts towards the address' hourly limit, and a
        challenge is spent by its first use, right or wrong; so failures are
        returned (to be committed with those counts), not raised. Beyond
        the limit, TooManyRequests is raised.
        """
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        RateEvent = pool.get('sehat.opd.rate_event')
        Notifier = pool.get('sehat.opd.notifier')
        config = Configuration(1)

        RateEvent.check_and_add('contact_address', address,
            config.contact_per_address_hour)
        try:
            nonce = captcha.verify(captcha_secret(),
                data.get('captcha'),
                answer=data.get('captcha_answer'),
                counter=data.get('captcha_nonce'))
            reason = None
        except captcha.CaptchaError as error:
            nonce, reason = error.nonce, error.reason
        if nonce:
            if RateEvent.count('captcha_spent', nonce, captcha.TTL):
                reason = 'used'
            else:
                RateEvent.add('captcha_spent', nonce)
        if reason:
            return None, InvalidInput(
                gettext(CAPTCHA_REASONS[reason]), field='captcha')
        try:
            values = cls.check_form(data)
        except InvalidInput as error:
            return None, error
        RateEvent.check_and_add('contact_mobile', values['mobile'],
            config.contact_per_mobile_hour)
        values.update({
                'reference': cls._new_reference(),
                'language': language if language in {'en', 'hi'} else 'en',
                'address': (address or '')[:64] or None,
                })
        contact, = cls.create([values])
        Notifier.notify('contact_received', mobile=contact.mobile,
            email=contact.email, language=contact.language,
            values={'reference': contact.reference})
        return contact, None

    @classmethod
    def check_form(cls, data):
        """The values of a contact request from the form's fields; raise
        InvalidInput naming the first wrong field."""
        Subdivision = Pool().get('country.subdivision')

        def text(name, required=True, maximum=NAME_MAX, minimum=1):
            value = data.get(name)
            if value is None or value == '':
                if required:
                    raise InvalidInput(gettext(
                            'sehat_opd.msg_contact_required'), field=name)
                return None
            if not isinstance(value, str):
                raise InvalidInput(gettext('sehat_opd.msg_contact_text',
                        maximum=maximum), field=name)
            value = value.strip()
            if required and not value:
                raise InvalidInput(gettext(
                        'sehat_opd.msg_contact_required'), field=name)
            if value and not (minimum <= len(value) <= maximum):
                raise InvalidInput(gettext('sehat_opd.msg_contact_length',
                        minimum=minimum, maximum=maximum), field=name)
            return value or None

        first_name = text('first_name')
        if not _NAME_RE.match(first_name):
            raise InvalidInput(gettext('sehat_opd.msg_contact_name'),
                field='first_name')
        last_name = text('last_name', required=False)
        if last_name and not _NAME_RE.match(last_name):
            raise InvalidInput(gettext('sehat_opd.msg_contact_name'),
                field='last_name')
        mobile = tools.normalize_mobile(data.get('mobile'))
        if not mobile:
            raise InvalidInput(gettext('sehat_opd.msg_mobile_invalid'),
                field='mobile')
        email = text('email', required=False, maximum=254)
        if email and not _EMAIL_RE.match(email):
            raise InvalidInput(gettext('sehat_opd.msg_registration_email'),
                field='email')
        city = text('city', maximum=CITY_MAX)
        state_value = data.get('state')
        state, _ = find_region(Subdivision,
            state_value if isinstance(state_value, str) else None, None)
        if not state:
            raise InvalidInput(gettext('sehat_opd.msg_registration_state'),
                field='state')
        message = text('message', maximum=MESSAGE_MAX, minimum=MESSAGE_MIN)
        return {
            'first_name': first_name,
            'last_name': last_name,
            'mobile': mobile,
            'email': email,
            'city': city,
            'subdivision': state.id,
            'message': message,
            }

    @classmethod
    def _new_reference(cls):
        "A short reference the sender can quote: CR- and 8 characters."
        while True:
            reference = 'CR-' + ''.join(
                secrets.choice(tools.CROCKFORD) for _ in range(8))
            if not cls.search([('reference', '=', reference)], limit=1):
                return reference
