"""Decide what an uploaded health-record file really is, from its bytes.

Pure functions: the name and the Content-Type a browser sends are never
trusted; only the content decides, and anything that is not a plain document
or picture of an allowed kind is refused.
"""
import io
import re

from PIL import Image

# extension -> MIME type for what we store and serve back
MIME_TYPES = {
    'pdf': 'application/pdf',
    'jpg': 'image/jpeg',
    'png': 'image/png',
    'gif': 'image/gif',
    'bmp': 'image/bmp',
    }
# what patients may name in the settings / see on the forms
ALLOWED_KINDS = ('pdf', 'jpg', 'jpeg', 'jfif', 'gif', 'bmp', 'png')
_PIL_FORMATS = {'JPEG': 'jpg', 'PNG': 'png', 'GIF': 'gif', 'BMP': 'bmp'}
# Active content that a PDF viewer would run: refused, a health record
# never needs it.
_PDF_ACTIVE = re.compile(
    rb'/(JavaScript|JS|Launch|EmbeddedFile|RichMedia|XFA|OpenAction|AA)\b')
# Markup that makes a picture a polyglot an old browser could render as a
# page; a real photograph or scan never contains it.
_MARKUP = re.compile(rb'<\s*(script|html|body|iframe|svg|\?php)', re.I)


class UploadRefused(ValueError):
    "The file is refused; `reason` is one of the keys of REASONS."

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def sniff(data):
    """Return the extension of an allowed kind for `data`, or None.

    Only the magic bytes are looked at, as a first filter.
    """
    if data.startswith(b'%PDF-'):
        return 'pdf'
    if data.startswith(b'\x89PNG\r\n\x1a\n'):
        return 'png'
    if data.startswith(b'\xff\xd8\xff'):
        return 'jpg'
    if data[:6] in (b'GIF87a', b'GIF89a'):
        return 'gif'
    if data[:2] == b'BM' and len(data) > 26:
        return 'bmp'
    return None


def check_file(data, max_size, allowed=ALLOWED_KINDS):
    """Check one uploaded file and return (extension, MIME type).

    Raise UploadRefused when it is empty, too big, of a kind that is not
    allowed, damaged, or carries active content.
    """
    if not data:
        raise UploadRefused('empty')
    if len(data) >= max_size:
        raise UploadRefused('too_big')
    kind = sniff(data)
    allowed = {('jpg' if k in ('jpeg', 'jfif') else k) for k in allowed}
    if kind is None or kind not in allowed:
        raise UploadRefused('type')
    if kind == 'pdf':
        _check_pdf(data)
    else:
        _check_image(data, kind)
    return kind, MIME_TYPES[kind]


def _check_pdf(data):
    if b'%%EOF' not in data[-2048:]:
        raise UploadRefused('damaged')
    if _PDF_ACTIVE.search(data):
        raise UploadRefused('active')


def _check_image(data, kind):
    if _MARKUP.search(data):
        raise UploadRefused('active')
    try:
        with Image.open(io.BytesIO(data)) as image:
            if _PIL_FORMATS.get(image.format) != kind:
                raise UploadRefused('type')
            image.verify()
        # verify() does not decode the pixels: load them to catch a
        # truncated file, on a fresh handle as verify() spends it.
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > 50_000_000:
                raise UploadRefused('too_big')
            image.load()
    except UploadRefused:
        raise
    except Exception:
        raise UploadRefused('damaged')
