"Health records a patient sends: checked by content, kept as attachments."
from trytond.i18n import gettext
from trytond.model import Model, fields
from trytond.pool import Pool, PoolMeta

from . import upload
from .exceptions import NotFound, UploadError

ORIGINS = [
    (None, ''),
    ('request', "With the token request"),
    ('waiting', "From the waiting room"),
    ('chat', "In the consultation chat"),
    ]
# refusal reason of upload.check_file -> message
REASONS = {
    'empty': 'sehat_opd.msg_upload_empty',
    'too_big': 'sehat_opd.msg_upload_too_big',
    'type': 'sehat_opd.msg_upload_type',
    'damaged': 'sehat_opd.msg_upload_damaged',
    'active': 'sehat_opd.msg_upload_active',
    'unchecked': 'sehat_opd.msg_upload_unchecked',
    }


class Attachment(metaclass=PoolMeta):
    __name__ = 'ir.attachment'

    sehat_origin = fields.Selection(
        ORIGINS, "SeHAT Origin", readonly=True,
        help="How a patient's file reached the service.")
    sehat_mime = fields.Char("SeHAT Content Type", readonly=True)


class Record(Model):
    """Health Record Upload Service

    The one place where uploaded files are checked and stored, for token
    requests, the waiting room and the chat.
    """
    __name__ = 'sehat.opd.record'

    @classmethod
    def check_files(cls, files, already=0, field='files'):
        """Check (filename, data) pairs; return [(ext, mime, data)].

        `already` counts the files of the same batch sent before (the
        waiting room may add as many as the request carried).
        """
        Configuration = Pool().get('sehat.opd.configuration')
        config = Configuration(1)
        if len(files) + already > config.upload_max_files:
            raise UploadError(gettext('sehat_opd.msg_upload_count',
                    count=config.upload_max_files), field=field)
        checked = []
        for filename, data in files:
            try:
                ext, mime = upload.check_file(
                    data, config.upload_max_bytes, config.allowed_kinds)
            except upload.UploadRefused as refused:
                raise UploadError(gettext(REASONS[refused.reason],
                        name=_display_name(filename),
                        size=config.upload_max_mb), field=field)
            checked.append((ext, mime, data))
        return checked

    @classmethod
    def store(cls, resource, files, origin, field='files'):
        """Check and attach files to `resource`; return the attachments.
        A refusal names `field`, the form field of the files.

        Names are generated: what the patient's computer called the file is
        never reused (it may carry a path, a script or personal data).
        """
        Attachment = Pool().get('ir.attachment')
        checked = cls.check_files(files, already=cls.count(resource, origin),
            field=field)
        existing = cls.count(resource)
        prefix = resource.__name__.split('.')[-1]
        vlist = [{
                'name': '%s-%s-%s.%s' % (prefix, resource.id, existing + i,
                    ext),
                'resource': str(resource),
                'type': 'data',
                'data': data,
                'sehat_origin': origin,
                'sehat_mime': mime,
                } for i, (ext, mime, data) in enumerate(checked, 1)]
        return Attachment.create(vlist) if vlist else []

    @classmethod
    def count(cls, resource, origin=None):
        Attachment = Pool().get('ir.attachment')
        domain = [('resource', '=', str(resource))]
        if origin:
            domain.append(('sehat_origin', '=', origin))
        return Attachment.search_count(domain)

    @classmethod
    def list(cls, resource):
        Attachment = Pool().get('ir.attachment')
        return Attachment.search([
                ('resource', '=', str(resource)),
                ('sehat_origin', '!=', None),
                ], order=[('id', 'ASC')])

    @classmethod
    def for_patient(cls, attachment_id, patient_id):
        """The patient's own file `attachment_id`: one of their tokens' or
        of their consultations' chat. Anything else is 'not found' (not
        'forbidden', which would tell that the id exists)."""
        pool = Pool()
        Attachment = pool.get('ir.attachment')
        attachments = Attachment.search([
                ('id', '=', attachment_id),
                ('sehat_origin', '!=', None),
                ])
        if attachments and cls.owner(attachments[0]) == patient_id:
            return attachments[0]
        raise NotFound(gettext('sehat_opd.msg_file_not_found'))

    @classmethod
    def owner(cls, attachment):
        "The patient id a stored file belongs to."
        resource = attachment.resource
        if resource is None:
            return None
        if resource.__name__ == 'sehat.opd.message':
            resource = resource.token
        if resource.__name__ == 'sehat.opd.token':
            return resource.patient.id
        return None

    @classmethod
    def token_of(cls, attachment):
        resource = attachment.resource
        if resource is not None and resource.__name__ == 'sehat.opd.message':
            return resource.token
        if resource is not None and resource.__name__ == 'sehat.opd.token':
            return resource
        return None

    @staticmethod
    def describe(attachment):
        "What the portal and the console show of a stored file."
        return {
            'id': attachment.id,
            'name': attachment.name,
            'type': attachment.sehat_mime,
            'size': attachment.data_size,
            'origin': attachment.sehat_origin,
            'created': attachment.create_date.isoformat(),
            }


def _display_name(filename):
    "A patient's file name, safe to repeat in a message."
    name = str(filename or '').replace('\\', '/').rsplit('/', 1)[-1]
    return ''.join(c for c in name if c.isprintable())[:80] or '-'
