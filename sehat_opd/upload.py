"""Decide what an uploaded health-record file really is, from its bytes.

Pure functions: the name and the Content-Type a browser sends are never
trusted; only the content decides, and anything that is not a plain document
or picture of an allowed kind is refused.
"""
import io
import re
import zlib

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
# Active content that a PDF viewer would run or open: scripts, forms that
# send data, programs, embedded files, other documents, media. Refused, a
# health record never needs it. What triggers an action (/OpenAction, /AA)
# is not refused by itself: it mostly opens the first page (pdfLaTeX and
# many office suites write one); the actions it could start are.
# Looked for in the PDF's dictionaries: its text outside stream data and the
# contents of its object streams (compressed dictionaries), with names'
# #xx escapes undone (/J#61vaScript).
_PDF_ACTIVE = re.compile(
    rb'/(JavaScript|JS|XFA|SubmitForm|ImportData|Launch|EmbeddedFiles?|EF'
    rb'|GoToE|GoToR|RichMedia\w*|3D|Rendition|Sound|Movie)\b')
_PDF_NAME_ESCAPE = re.compile(rb'#([0-9A-Fa-f]{2})')
# where the lexer of _pdf_parts stops: a literal string, a comment, the
# start of stream data
_PDF_STREAM = re.compile(rb'(?<![A-Za-z0-9#])stream(?:\r\n|\n|\r)')
_PDF_TOKEN = re.compile(rb'[(%]|' + _PDF_STREAM.pattern)
_PDF_STRING = re.compile(rb'[()\\]')
_PDF_EOL = re.compile(rb'[\r\n]')
# what the object streams of one file may inflate to (a zip bomb is not
# read to the end), and how many strings, comments and streams it may have
# (a file of 5 million "(" would take seconds to read)
PDF_INFLATE_LIMIT = 50 * 1024 * 1024
PDF_TOKEN_LIMIT = 200_000
# Markup that makes a picture (or the start of a PDF) a polyglot a browser
# could render as a page. The tag must end like a tag: random bytes (what
# compressed pixels look like) hold "<svg" in any case once in 512 MB,
# followed by a space, "/" or ">" once in 20 GB.
_MARKUP = re.compile(
    rb'<(script|html|body|iframe|svg|img|object|embed|meta|style|link'
    rb'|base|form|math|\?php|!doctype)[\s/>]', re.I)


class UploadRefused(ValueError):
    "The file is refused; `reason` is one of the keys of record.REASONS."

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
    allowed, damaged, carries active content, or is a PDF too convoluted
    to be checked for it.
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
    # a PDF that is also a page: markup where a browser sniffing the file
    # would look (its first kilobyte, stream data apart)
    head = data[:1024]
    first = _PDF_STREAM.search(head)
    if _MARKUP.search(head[:first.start()] if first else head):
        raise UploadRefused('active')
    # what is left to inflate, shared by the object streams
    budget = [PDF_INFLATE_LIMIT]
    for text, dictionary, stream in _pdf_parts(data):
        if _PDF_ACTIVE.search(_pdf_names(text)):
            raise UploadRefused('active')
        if stream is not None and _is_object_stream(dictionary):
            content = _object_stream(dictionary, stream, budget)
            if _PDF_ACTIVE.search(_pdf_names(content)):
                raise UploadRefused('active')


def _pdf_names(text):
    "`text` with the #xx escapes of PDF names undone."
    return _PDF_NAME_ESCAPE.sub(
        lambda m: bytes([int(m.group(1), 16)]), text)


def _pdf_parts(data):
    """Yield (text, dictionary, stream data) for each stream of a PDF, then
    (rest of the text, None, None).

    `text` is what lies between two streams' data (the file's objects,
    strings and comments included); `dictionary` the text of the stream's
    own object. A literal string or a comment is skipped whole when looking
    for the `stream` keyword, so that "(stream" cannot make the scan jump
    over dictionaries.
    """
    start = position = 0
    for _ in range(PDF_TOKEN_LIMIT):
        match = _PDF_TOKEN.search(data, position)
        if match is None:
            break
        token = match.group()
        if token == b'(':
            position = _pdf_string_end(data, match.end())
        elif token == b'%':
            eol = _PDF_EOL.search(data, match.end())
            position = eol.end() if eol else len(data)
        else:
            text = data[start:match.start()]
            end = data.find(b'endstream', match.end())
            if end < 0:
                end = len(data)
            obj = text.rfind(b'obj')
            yield text, text[obj if obj >= 0 else -2048:], data[
                match.end():end]
            start = position = end
    else:
        raise UploadRefused('unchecked')
    yield data[start:], None, None


def _pdf_string_end(data, position):
    "Where the literal string open before `position` ends."
    depth = 1
    for _ in range(PDF_TOKEN_LIMIT):
        if not depth:
            return position
        match = _PDF_STRING.search(data, position)
        if match is None:
            return len(data)
        char = match.group()
        if char == b'\\':
            position = match.end() + 1
            continue
        depth += 1 if char == b'(' else -1
        position = match.end()
    raise UploadRefused('unchecked')


def _is_object_stream(dictionary):
    dictionary = _pdf_names(dictionary)
    # a lax viewer reads any stream with /N and /First as one
    return bool(re.search(rb'/Type\s*/ObjStm\b', dictionary) or (
            re.search(rb'/First\b', dictionary)
            and re.search(rb'/N\b', dictionary)))


def _object_stream(dictionary, stream, budget):
    """The dictionaries an object stream holds; refused ('unchecked') when
    they cannot be read: another compression than Flate, a predictor, a
    damaged or oversized stream."""
    dictionary = _pdf_names(dictionary)
    found = re.search(rb'/Filter\s*(\[[^\]]*\]|/\w+)', dictionary)
    filters = re.findall(rb'/(\w+)', found.group(1)) if found else []
    if not filters:
        return stream
    if filters not in ([b'FlateDecode'], [b'Fl']) or re.search(
            rb'/(DecodeParms|DP)\b', dictionary):
        raise UploadRefused('unchecked')
    try:
        content = zlib.decompressobj().decompress(stream, budget[0] + 1)
    except zlib.error:
        raise UploadRefused('unchecked')
    budget[0] -= len(content)
    if budget[0] < 0:
        raise UploadRefused('unchecked')
    return content


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
