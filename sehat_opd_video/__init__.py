"""SeHAT OPD video: consultations in an embedded Jitsi Meet room."""
from trytond.pool import Pool

__all__ = ['register']


def register():
    Pool.register(
        module='sehat_opd_video', type_='model')
