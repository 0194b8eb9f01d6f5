"""SeHAT OPD notifications: SMS (DLT templates) and e-mail, via an outbox."""
from trytond.pool import Pool

from . import ir, notifier, outbox, template
from . import routes  # noqa: F401 (HTTP routes)

__all__ = ['register']


def register():
    Pool.register(
        template.Template,
        outbox.Message,
        notifier.Notifier,
        notifier.Configuration,
        ir.Cron,
        module='sehat_opd_sms', type_='model')
