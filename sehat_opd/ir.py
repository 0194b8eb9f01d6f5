"Scheduled jobs of SeHAT OPD (run by trytond-cron)."
from trytond.model import dualmethod
from trytond.pool import PoolMeta

from .opd import read_committed

# jobs that lock the queues' shared rows while patients and doctors use them
QUEUE_JOBS = (
    'sehat.opd.token|cron_expire',
    'sehat.opd.token|cron_requeue_missed',
    'sehat.opd.presence|cron_drop_stale',
    )


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

    @dualmethod
    def run_once(cls, crons):
        # run_once starts each job's own transaction: the queue jobs wait
        # for the rows the web requests hold instead of failing on them
        if any(c.method in QUEUE_JOBS for c in crons):
            read_committed()
        super().run_once(crons)
