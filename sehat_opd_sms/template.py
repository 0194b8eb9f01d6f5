"SMS templates as registered on DLT, one per event and language."
from sql.operators import Equal

from trytond.i18n import gettext
from trytond.model import (
    DeactivableMixin, Exclude, ModelSQL, ModelView, fields)
from trytond.modules.sehat_opd.notifier import EVENTS

from . import dlt
from .exceptions import TemplateValidationError

LANGUAGES = [
    ('en', "English"),
    ('hi', "हिन्दी (Hindi)"),
    ]
# TRAI's categories of commercial communication (TCCCPR 2018). Our
# messages are all about a service the patient asked for: Service Implicit.
# "Transactional" is reserved to banks' OTPs, "Promotional" goes nowhere
# near a DND number.
CATEGORIES = [
    ('service_implicit', "Service Implicit"),
    ('service_explicit', "Service Explicit"),
    ('transactional', "Transactional"),
    ('promotional', "Promotional"),
    ]
OTP_CATEGORIES = {'service_implicit', 'transactional'}

# The values each event gives (the %(...)s of sehat_opd's msg_notify_<event>)
# plus the recipient's name and the portal's address, given to all.
EVENT_VALUES = {
    'otp': {'otp', 'minutes'},
    'registered': {'name', 'patient_id'},
    'recover': {'patient_id', 'token'},
    'token_issued': {'token', 'opd', 'patient_id'},
    'turn_near': {'token', 'opd', 'position'},
    'called': {'doctor', 'token', 'seconds', 'opd'},
    'missed_call': {'token', 'opd'},
    'token_cancelled': {'token', 'opd'},
    'token_expired': {'token', 'opd'},
    'prescription_ready': {'prescription', 'link'},
    'contact_received': {'reference'},
    }
COMMON_VALUES = {'name', 'url'}
# Values that may be shortened to fit their {#var#} (a long name or OPD
# still reads well); any other value too long fails the message.
TRUNCATABLE = {'name', 'opd', 'doctor'}


def known_values(event):
    return EVENT_VALUES.get(event, set()) | COMMON_VALUES


class Template(DeactivableMixin, ModelSQL, ModelView):
    "SMS Template"
    __name__ = 'sehat.sms.template'

    event = fields.Selection(EVENTS, "Event", required=True)
    language = fields.Selection(LANGUAGES, "Language", required=True)
    text = fields.Text("Text", required=True,
        help="Exactly as registered on DLT, with {#var#} for each variable "
        "part (30 characters at most each).")
    variables = fields.Char("Variables",
        help="The value that fills each {#var#}, in order, separated by "
        "commas (e.g. \"otp, minutes\"). A value named on several {#var#} "
        "written side by side may be up to 30 characters per {#var#}.")
    dlt_template_id = fields.Char("DLT Template ID",
        help="The Content Template ID given by the DLT platform.")
    provider_template_id = fields.Char("Gateway Template ID",
        help="The gateway's own id of this template when it has one "
        "(MSG91 flow template id).")
    category = fields.Selection(CATEGORIES, "Category", required=True)
    email_subject = fields.Char("E-mail Subject",
        help="Subject of the e-mail sent with the same text, when the "
        "patient gave an e-mail address.")
    encoding = fields.Function(fields.Selection([
                ('gsm7', "GSM 7-bit"),
                ('ucs2', "Unicode (UCS-2)"),
                ], "Encoding"), 'on_change_with_encoding')
    max_segments = fields.Function(fields.Integer("SMS Parts at Most",
            help="Parts of the longest message this template can make "
            "(each {#var#} full)."), 'on_change_with_max_segments')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('event_language_exclude',
                Exclude(t, (t.event, Equal), (t.language, Equal),
                    where=t.active == True),  # noqa: E712
                'sehat_opd_sms.msg_template_unique'),
            ]
        cls._order.insert(0, ('event', 'ASC'))
        cls._order.insert(1, ('language', 'ASC'))

    @classmethod
    def default_category(cls):
        return 'service_implicit'

    @classmethod
    def default_language(cls):
        return 'en'

    @fields.depends('text')
    def on_change_with_encoding(self, name=None):
        return dlt.encoding(self.text or '')

    @fields.depends('text')
    def on_change_with_max_segments(self, name=None):
        return dlt.segments(dlt.sample(self.text or ''))[1]

    def get_rec_name(self, name):
        events = dict(EVENTS)
        return '%s (%s)' % (events.get(self.event, self.event), self.language)

    @property
    def names(self):
        return dlt.parse_variables(self.variables)

    @classmethod
    def validate_fields(cls, templates, field_names):
        super().validate_fields(templates, field_names)
        for template in templates:
            template.check_text()
            template.check_dlt_id()
            template.check_category()

    def check_text(self):
        try:
            dlt.check_template(self.text, self.names,
                known_values(self.event))
        except dlt.TemplateError as exception:
            raise TemplateValidationError(gettext(
                    'sehat_opd_sms.msg_template_invalid',
                    template=self.rec_name, detail=str(exception)))

    def check_dlt_id(self):
        if self.dlt_template_id and not self.dlt_template_id.isdigit():
            raise TemplateValidationError(gettext(
                    'sehat_opd_sms.msg_template_dlt_id',
                    template=self.rec_name))

    def check_category(self):
        if self.category == 'promotional' or (
                self.event == 'otp' and self.category not in OTP_CATEGORIES):
            raise TemplateValidationError(gettext(
                    'sehat_opd_sms.msg_template_category',
                    template=self.rec_name))

    @classmethod
    def for_event(cls, event, language):
        """The active template of `event` in `language`, else in English,
        else None."""
        for code in [language, 'en']:
            templates = cls.search([
                    ('event', '=', event),
                    ('language', '=', code),
                    ], limit=1)
            if templates:
                return templates[0]
        return None

    def render(self, values):
        """(text, fills) of this template with `values`; raises
        dlt.TemplateError when a value does not fit."""
        return dlt.render(self.text, self.names, values,
            truncate=TRUNCATABLE)

    def render_email(self, values):
        "The same words, values in full: e-mail has no 30-character limit."
        return dlt.expand(self.text, self.names, values)

