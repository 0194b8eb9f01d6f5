"Scheduled jobs of SeHAT OPD (run by trytond-cron)."
from trytond.pool import PoolMeta


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('sehat.opd.token|cron_expire', "Expire Ended Days' Tokens"),
                ('sehat.opd.token|cron_requeue_missed',
                    "Requeue Missed Calls"),
                ('sehat.opd.presence|cron_drop_stale',
                    "Set Absent Doctors Offline"),
                ('sehat.opd.otp|cron_purge', "Purge Old OTPs and Sessions"),
                ])


