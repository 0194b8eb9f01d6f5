"Errors of the video consultation (texts in message.xml)."
from trytond.modules.sehat_opd.exceptions import PortalError


class VideoUnavailable(PortalError):
    "The Jitsi settings are missing or wrong: nobody can join."
    status = 503
    error_code = 'video_unavailable'
