"Operational settings of SeHAT OPD, changed by administrators at run time."
import datetime as dt
from urllib.parse import urlsplit, urlunsplit

from trytond.cache import Cache
from trytond.config import config
from trytond.i18n import gettext
from trytond.model import ModelSingleton, ModelSQL, ModelView, fields

from .exceptions import OPDValidationError
from .tools import get_setting
from .upload import ALLOWED_KINDS

# (field, minimum, maximum): the bounds staff cannot go past, for the safety
# of the service (an OTP valid for hours would be guessable, a 1 second call
# window would requeue everyone).
BOUNDS = [
    ('otp_validity', 1, 15),
    ('otp_max_attempts', 1, 10),
    ('otp_resend_after', 10, 600),
    ('otp_per_mobile_hour', 1, 20),
    ('otp_per_address_hour', 1, 10000),
    ('token_login_max_failures', 1, 20),
    ('session_idle_timeout', 5, 24 * 60),
    ('upload_max_mb', 1, 5),
    ('upload_max_files', 1, 3),
    ('call_window', 30, 600),
    ('turn_near_threshold', 1, 20),
    ('requeue_limit', 1, 10),
    ('presence_timeout', 30, 600),
    ('contact_per_address_hour', 1, 100),
    ('contact_per_mobile_hour', 1, 20),
    # 8 bits: 256 hashes, nothing; 24 bits: ~16 million, a minute on a phone
    ('captcha_bits', 8, 24),
    ]


# named after the module: the test runner may import this file under a
# second name, and Tryton's cache names must be unique
_cached = Cache(__name__ + '.cached', context=False)


class Configuration(ModelSingleton, ModelSQL, ModelView):
    "SeHAT OPD Settings"
    __name__ = 'sehat.opd.configuration'

    otp_validity = fields.Integer(
        "OTP Validity", required=True, help="In minutes (1 to 15).")
    otp_max_attempts = fields.Integer(
        "OTP Attempts", required=True,
        help="Wrong codes allowed before an OTP is dead.")
    otp_resend_after = fields.Integer(
        "OTP Resend After", required=True, help="In seconds.")
    otp_per_mobile_hour = fields.Integer(
        "OTPs per Mobile per Hour", required=True)
    otp_per_address_hour = fields.Integer(
        "OTPs per Address per Hour", required=True,
        help="A Common Service Centre or a unit medical room registers "
        "many patients from one network address.")
    token_login_max_failures = fields.Integer(
        "Token Login Failures per Hour", required=True,
        help="After that many wrong token numbers for one mobile in an "
        "hour, only OTP login works.")
    session_idle_timeout = fields.Integer(
        "Session Idle Timeout", required=True, help="In minutes.")
    upload_max_mb = fields.Integer(
        "Upload Size Limit", required=True,
        help="In megabytes; each file must be smaller.")
    upload_max_files = fields.Integer(
        "Files per Upload", required=True,
        help="Files with a token request, and again in the waiting room.")
    upload_kinds = fields.Char(
        "Allowed File Kinds", required=True,
        help="Comma-separated among: %s." % ', '.join(ALLOWED_KINDS))
    call_window = fields.Integer(
        "Call Now Window", required=True,
        help="Default for new OPDs, in seconds.")
    turn_near_threshold = fields.Integer(
        "Turn Near Threshold", required=True,
        help="Patients are told their turn is near at this position.")
    requeue_limit = fields.Integer(
        "Missed Calls Limit", required=True,
        help="After that many missed calls the token expires.")
    presence_timeout = fields.Integer(
        "Presence Timeout", required=True,
        help="Seconds without heartbeat before a doctor is set offline.")
    default_open_time = fields.Time("Default Opening", required=True)
    default_close_time = fields.Time("Default Closing", required=True)
    contact_per_address_hour = fields.Integer(
        "Contact Messages per Address per Hour", required=True,
        help="Attempts to send the contact form from one network address.")
    contact_per_mobile_hour = fields.Integer(
        "Contact Messages per Mobile per Hour", required=True,
        help="Each message sends an acknowledgment to the mobile given.")
    captcha_bits = fields.Integer(
        "CAPTCHA Difficulty", required=True,
        help="Zero bits the contact form's proof of work must find (8 to "
        "24): each step up doubles the work of the visitor's browser.")
    gateways = fields.Function(fields.Text(
            "Gateway Settings",
            help="From trytond.conf and the environment; change them there. "
            "Secrets are masked."), 'get_gateways')

    @classmethod
    def default_otp_validity(cls):
        return 10

    @classmethod
    def default_otp_max_attempts(cls):
        return 5

    @classmethod
    def default_otp_resend_after(cls):
        return 30

    @classmethod
    def default_otp_per_mobile_hour(cls):
        return 5

    @classmethod
    def default_otp_per_address_hour(cls):
        return 100

    @classmethod
    def default_token_login_max_failures(cls):
        return 5

    @classmethod
    def default_session_idle_timeout(cls):
        return 30

    @classmethod
    def default_upload_max_mb(cls):
        return 5

    @classmethod
    def default_upload_max_files(cls):
        return 3

    @classmethod
    def default_upload_kinds(cls):
        return ','.join(ALLOWED_KINDS)

    @classmethod
    def default_call_window(cls):
        return 120

    @classmethod
    def default_turn_near_threshold(cls):
        return 3

    @classmethod
    def default_requeue_limit(cls):
        return 3

    @classmethod
    def default_presence_timeout(cls):
        return 120

    @classmethod
    def default_default_open_time(cls):
        return dt.time(9, 0)

    @classmethod
    def default_default_close_time(cls):
        return dt.time(17, 0)

    @classmethod
    def default_contact_per_address_hour(cls):
        return 10

    @classmethod
    def default_contact_per_mobile_hour(cls):
        return 3

    @classmethod
    def default_captcha_bits(cls):
        return 16

    @classmethod
    def cached(cls, name):
        """The setting `name`, read through a cache that every change of
        the settings clears (in all processes, as Tryton's caches are).

        For the hot paths (each portal request checks its session): a
        singleton read is two searches and, until the settings are first
        saved, the computation of every default.
        """
        value = _cached.get(name)
        if value is None:
            value = getattr(cls(1), name)
            _cached.set(name, value)
        return value

    @classmethod
    def create(cls, vlist):
        records = super().create(vlist)
        _cached.clear()
        return records

    @classmethod
    def write(cls, *args):
        super().write(*args)
        _cached.clear()

    @classmethod
    def delete(cls, records):
        super().delete(records)
        _cached.clear()

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        for record in records:
            record.check_bounds()
            record.check_upload_kinds()

    def check_bounds(self):
        for name, low, high in BOUNDS:
            value = getattr(self, name)
            if value is None or not (low <= value <= high):
                raise OPDValidationError(gettext(
                        'sehat_opd.msg_configuration_out_of_bounds',
                        field=self.__class__._fields[name].string,
                        low=low, high=high))
        if self.default_open_time >= self.default_close_time:
            raise OPDValidationError(gettext(
                    'sehat_opd.msg_opd_hours_order'))
        # a resend delay past the validity would leave the patient with a
        # dead code and nothing to do but wait
        if self.otp_resend_after >= self.otp_validity * 60:
            raise OPDValidationError(gettext(
                    'sehat_opd.msg_configuration_resend_validity',
                    resend=self.__class__._fields['otp_resend_after'].string,
                    validity=self.__class__._fields['otp_validity'].string))

    def check_upload_kinds(self):
        kinds = self.allowed_kinds
        if not kinds or not kinds <= set(ALLOWED_KINDS):
            raise OPDValidationError(gettext(
                    'sehat_opd.msg_configuration_upload_kinds',
                    kinds=', '.join(ALLOWED_KINDS)))

    @classmethod
    def gateway_settings(cls):
        """Deployment settings shown read-only to administrators.

        A list of (section, option, value, secret) from trytond.conf and the
        environment; `sehat_opd_video` and `sehat_opd_sms` extend it with
        their gateways. Secrets are masked by whoever displays them.
        """
        return [
            ('sehat_opd', 'mode', get_setting('sehat_opd', 'mode',
                    'production'), False),
            ('sehat_opd', 'base_url', get_setting('sehat_opd', 'base_url'),
                False),
            ('sehat_opd', 'secret', get_setting('sehat_opd', 'secret'), True),
            ('email', 'uri', config.get('email', 'uri'), True),
            ('email', 'from', config.get('email', 'from'), False),
            ]

    def get_gateways(self, name):
        "The gateway settings as lines of text, secrets masked."
        not_set = gettext('sehat_opd.msg_configuration_not_set')
        hidden = gettext('sehat_opd.msg_configuration_secret_set')
        lines, section = [], None
        for section_, option, value, secret in self.gateway_settings():
            if section_ != section:
                if lines:
                    lines.append('')
                lines.append('[%s]' % section_)
                section = section_
            lines.append('%s = %s' % (option,
                    mask_setting(value, secret, not_set, hidden)))
        return '\n'.join(lines)

    @property
    def allowed_kinds(self):
        return {k.strip().lower() for k in (self.upload_kinds or '').split(',')
            if k.strip()}

    @property
    def upload_max_bytes(self):
        return self.upload_max_mb * 1024 * 1024


def mask_setting(value, secret, not_set='(not set)', hidden='(set, hidden)'):
    """A setting as an administrator may see it.

    Secrets are hidden; a URI keeps its scheme, host and user (useful to
    check the gateway) but loses its password.
    """
    if value in (None, ''):
        return not_set
    value = str(value)
    if not secret:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return hidden
    if parts.scheme and parts.hostname and '@' in parts.netloc:
        userinfo, host = parts.netloc.rsplit('@', 1)
        user = userinfo.split(':', 1)[0]
        netloc = '%s:%s@%s' % (user, '*' * 8, host) if ':' in userinfo \
            else '%s@%s' % (user, host)
        return urlunsplit((parts.scheme, netloc, parts.path, '', ''))
    if parts.scheme and parts.hostname:
        # no credentials in it: only the query may carry a key
        return urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))
    return hidden
