"""User errors of SeHAT OPD.

Routes turn each class into an HTTP status; the text always comes from
message.xml so that it is translated.
"""
from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError, ValidationError


class PortalError(UserError):
    "Base of the errors a patient can meet; `status` is the HTTP answer."
    status = 400
    error_code = 'bad_request'

    def __init__(self, message, description='', field=None):
        super().__init__(message, description)
        self.field = field


class InvalidInput(PortalError):
    status = 422
    error_code = 'invalid'


class NotFound(PortalError):
    status = 404
    error_code = 'not_found'


class Forbidden(PortalError):
    status = 403
    error_code = 'forbidden'


class Unauthorized(PortalError):
    status = 401
    error_code = 'unauthorized'


class Conflict(PortalError):
    status = 409
    error_code = 'conflict'


class TooManyRequests(PortalError):
    status = 429
    error_code = 'rate_limited'


class OTPError(PortalError):
    status = 400
    error_code = 'otp_invalid'


class OPDClosed(PortalError):
    status = 422
    error_code = 'opd_closed'


class QueueFull(PortalError):
    status = 422
    error_code = 'opd_full'


class UploadError(PortalError):
    status = 422
    error_code = 'file_refused'


class TokenStateError(PortalError):
    status = 409
    error_code = 'token_state'


class OPDValidationError(ValidationError):
    pass


class ConsoleAccessError(AccessError):
    pass


class Gone(PortalError):
    status = 410
    error_code = 'revoked'


class PrescriptionError(UserError):
    "A consultation record or an e-prescription that cannot be signed."
