"""SeHAT OPD: the online out-patient department on GNU Health.

Patients register with an OTP, take a token, wait in a live queue and
consult online; doctors work from the console and the back office.
"""
from trytond.pool import Pool

from . import (
    access, access_log, chat, configuration, connections, contact,
    evaluation, ir, live,
    medicament, notifier, opd, otp, patient, prescription, prescription_line,
    presence, record, region, report, session, token)
from . import (  # noqa: F401 (HTTP routes)
    console, history, pages, pages_public, pages_queue, routes,
    routes_public)

__all__ = ['register']


def register():
    connections.install()
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
        access.Rule,
        access.OPDDoctor,
        access.OPD,
        access.HealthProfessional,
        access.Party,
        access.User,
        access.Attachment,
        access_log.AccessLog,
        access_log.Token,
        access_log.Patient,
        access_log.Attachment,
        contact.Contact,
        report.ReportContext,
        report.OPDDay,
        report.DoctorDay,
        evaluation.Evaluation,
        evaluation.Token,
        evaluation.Cron,
        prescription.PrescriptionOrder,
        prescription_line.PrescriptionLine,
        prescription.RevokeStart,
        module='sehat_opd', type_='model')
    Pool.register(
        token.OpenConsole,
        prescription.Revoke,
        module='sehat_opd', type_='wizard')
