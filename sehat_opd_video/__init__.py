"""SeHAT OPD video: consultations in an embedded Jitsi Meet room.

The patient and the doctor meet in one room per token, each with a token
(JWT) minted for that room only; the consultation page puts the video next
to the chat and, for the doctor, the patient's summary.
"""
from pathlib import Path

from trytond.modules.sehat_opd import portal
from trytond.pool import Pool

from . import configuration, token
from . import pages, routes  # noqa: F401 (HTTP routes)

__all__ = ['register']

portal.register_module('sehat_opd_video', Path(__file__).resolve().parent)


def register():
    Pool.register(
        configuration.Configuration,
        token.Token,
        module='sehat_opd_video', type_='model')
