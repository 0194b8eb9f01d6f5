"""The core's notifier and settings, extended with the outbox and gateways."""
from trytond.i18n import gettext
from trytond.model import fields
from trytond.modules.sehat_opd.exceptions import OPDValidationError
from trytond.pool import Pool, PoolMeta

from . import gateway, sending

# (field, minimum, maximum) that staff cannot go past.
BOUNDS = [
    ('sms_max_attempts', 1, 20),
    ('sms_retry_delay', 1, 3600),
    ]


class Notifier(metaclass=PoolMeta):
    __name__ = 'sehat.opd.notifier'

    @classmethod
    def send(cls, event, recipient, values):
        """Queue the SMS (and e-mail) in the outbox instead of the core's
        log line; the `log` provider still writes that line."""
        Message = Pool().get('sehat.sms.message')
        Message.queue(event, recipient, values)


class Configuration(metaclass=PoolMeta):
    __name__ = 'sehat.opd.configuration'

    sms_max_attempts = fields.Integer("Message Attempts", required=True,
        help="Tries of a message before it is marked failed.")
    sms_retry_delay = fields.Integer("First Retry After", required=True,
        help="In seconds; each further retry waits twice as long "
        "(one hour at most).")

    @classmethod
    def default_sms_max_attempts(cls):
        return 6

    @classmethod
    def default_sms_retry_delay(cls):
        return 30

    @classmethod
    def validate_fields(cls, records, field_names):
        super().validate_fields(records, field_names)
        for record in records:
            for name, low, high in BOUNDS:
                value = getattr(record, name)
                if value is None or not (low <= value <= high):
                    raise OPDValidationError(gettext(
                            'sehat_opd.msg_configuration_out_of_bounds',
                            field=cls._fields[name].string,
                            low=low, high=high))

    @classmethod
    def gateway_settings(cls):
        "Add the SMS gateway of [sehat_opd_sms] (secrets flagged)."
        settings = super().gateway_settings()
        try:
            values = sending.settings()
        except gateway.GatewayConfigError:
            values = {}
        for option, default, secret in gateway.OPTIONS:
            value = values.get(option, default)
            if isinstance(value, dict):
                value = ', '.join('%s=%s' % i for i in value.items())
            settings.append(('sehat_opd_sms', option,
                    '' if value is None else str(value), secret))
        return settings
