"User errors of SeHAT OPD notifications (texts in message.xml)."
from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class TemplateValidationError(ValidationError):
    pass


class OutboxError(UserError):
    pass
