"""SeHAT OPD notifications: SMS (DLT templates) and e-mail, via an outbox."""
from trytond.pool import Pool

__all__ = ['register']


def register():
    Pool.register(
        module='sehat_opd_sms', type_='model')
