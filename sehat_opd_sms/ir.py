"Scheduled job of SeHAT OPD notifications (run by trytond-cron)."
from trytond.pool import PoolMeta


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('sehat.sms.message|cron_send', "Send Queued Notifications"))
