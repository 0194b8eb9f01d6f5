"""SeHAT OPD: the online out-patient department on GNU Health.

Patients register with an OTP, take a token, wait in a live queue and
consult online; doctors work from the console and the back office.
"""
from trytond.pool import Pool

from . import (
    chat, configuration, ir, live, medicament, notifier, opd, otp, patient,
    presence, record, region, session, token)
from . import console, pages, pages_queue, routes  # noqa: F401 (HTTP)

__all__ = ['register']


def register():
    Pool.register(
        configuration.Configuration,
        opd.OPD,
        opd.OPDHours,
        opd.OPDHoliday,
        opd.OPDDoctor,
        opd.Queue,
        patient.Patient,
        presence.HealthProfessional,
        presence.Presence,
        otp.OTP,
        otp.RateEvent,
        session.Session,
        token.Token,
        chat.Message,
        record.Attachment,
        record.Record,
        region.Subdivision,
        medicament.Medicament,
        notifier.Notifier,
        live.Live,
        ir.Cron,
        module='sehat_opd', type_='model')
    Pool.register(
        token.OpenConsole,
        module='sehat_opd', type_='wizard')
