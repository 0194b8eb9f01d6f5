"""Pure rules of the e-prescription: values in, values out, no pool access.

- which medicine may be prescribed in which teleconsultation (India's
  Telemedicine Practice Guidelines, 2020, section 3.7.4 and Annexure);
- the canonical content of a signed prescription and its SHA-256 hash;
- the unguessable verification code and the signed, expiring SMS link.

The models, the routes, the PDF and the tests all call these.
"""
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets

from . import tools

MODES = [
    ('video', "Video"),
    ('audio', "Audio"),
    ('text', "Text (chat)"),
    ]
# Why a medicine was refused; each has its message msg_rx_rule_<rule>.
RULE_UNLISTED = 'unlisted'
RULE_PROHIBITED = 'prohibited'
RULE_FIRST_AUDIO_TEXT = 'first_audio_text'
RULE_LIST_A = 'list_a'
RULE_LIST_B = 'list_b'
RULES = (RULE_UNLISTED, RULE_PROHIBITED, RULE_FIRST_AUDIO_TEXT,
    RULE_LIST_A, RULE_LIST_B)
CONTENT_VERSION = 1
DOWNLOAD_LINK_DAYS = 7
_CODE_RE = re.compile(r'^[A-Za-z0-9_-]{20,64}$')


def refusal(telemedicine_list, mode, follow_up, treated_in_person=False,
        refill=False):
    """Return why a medicine cannot be prescribed in this consultation, or
    None when it can.

    `telemedicine_list` is the medicine's list (O, A, B, prohibited or
    None), `mode` the consultation mode (video, audio, text), `follow_up`
    whether this is a follow-up for a condition already seen (else a first
    consultation), `treated_in_person` whether that condition was diagnosed
    and treated at an in-person consultation, `refill` whether the medicine
    is re-prescribed as a refill of the patient's current treatment.

    - a medicine without a list cannot be prescribed online;
    - prohibited (Schedule X, NDPS): never;
    - List O: always;
    - first consultation by audio or text: List O only;
    - List A: at a first consultation by video, or as a refill at a
      follow-up;
    - List B: only at a follow-up, as an add-on for a condition already
      treated in person.
    """
    if telemedicine_list in (None, ''):
        return RULE_UNLISTED
    if telemedicine_list == 'prohibited':
        return RULE_PROHIBITED
    if telemedicine_list == 'O':
        return None
    if telemedicine_list not in ('A', 'B'):
        return RULE_UNLISTED
    if not follow_up:
        if mode != 'video':
            return RULE_FIRST_AUDIO_TEXT
        if telemedicine_list == 'A':
            return None
        return RULE_LIST_B
    if telemedicine_list == 'A':
        return None if refill else RULE_LIST_A
    return None if treated_in_person else RULE_LIST_B


# Canonical content and hash ---------------------------------------------

def canonical(content):
    """The bytes that are hashed: the content as JSON with sorted keys, no
    spaces, UTF-8. Any change of any printed value changes them."""
    return json.dumps(content, sort_keys=True, separators=(',', ':'),
        ensure_ascii=False, default=_json_default).encode('utf-8')


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    raise TypeError('%r is not part of a prescription' % type(value))


def content_hash(content):
    "SHA-256 (hex) of the canonical content of a prescription."
    return hashlib.sha256(canonical(content)).hexdigest()


def bytes_hash(data):
    "SHA-256 (hex) of a file, e.g. the PDF issued."
    return hashlib.sha256(data).hexdigest()


def new_verification_code():
    "128 random bits, URL-safe: the code of the verification URL."
    return secrets.token_urlsafe(16)


def is_code(text):
    return isinstance(text, str) and bool(_CODE_RE.match(text))


def verification_url(base_url, database, code):
    "Where a pharmacist checks the prescription (printed as the QR code)."
    return '%s/%s/opd/verify/%s' % ((base_url or '').rstrip('/'), database,
        code)


_URL_CODE_RE = re.compile(rb'/opd/verify/([A-Za-z0-9_-]{20,64})')
_OCTAL_RE = re.compile(rb'\\([0-7]{3})')


def code_in_pdf(data):
    """The verification code a PDF claims to carry (its link or metadata),
    or None. Only a hint: whether the file is genuine is decided by its
    hash."""
    # PDF writers may escape the characters of a string as octal (\057)
    data = _OCTAL_RE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]),
        data or b'')
    match = _URL_CODE_RE.search(data)
    return match.group(1).decode('ascii') if match else None


# Signed download link -------------------------------------------------------

def download_token(order_id, now=None, days=DOWNLOAD_LINK_DAYS):
    "`<id>.<expiry>.<signature>`: the SMS link of a prescription."
    now = now or dt.datetime.utcnow()
    expiry = int((now + dt.timedelta(days=days)).replace(
            tzinfo=dt.timezone.utc).timestamp())
    return '%d.%d.%s' % (order_id, expiry, _link_signature(order_id, expiry))


def check_download_token(token, now=None):
    """Return (order id, expired) for a genuine link, None for a forged or
    malformed one."""
    if not isinstance(token, str) or len(token) > 100:
        return None
    parts = token.split('.')
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    order_id, expiry = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _link_signature(order_id, expiry)):
        return None
    now = now or dt.datetime.utcnow()
    expired = now.replace(tzinfo=dt.timezone.utc).timestamp() > expiry
    return order_id, expired


def _link_signature(order_id, expiry):
    return tools.sign('rx-download:%d:%d' % (order_id, expiry))


# What is shown of a patient ---------------------------------------------

def initials(name):
    "`Ramesh Kumar Yadav` -> `R. K. Y.` (what the pharmacist sees)."
    words = [w for w in re.split(r'[\s.]+', name or '') if w]
    return ' '.join('%s.' % w[0].upper() for w in words)


def format_number(value):
    "`500.0` -> `500`, `2.5` -> `2.5` (strengths and doses as printed)."
    return ('%g' % value) if isinstance(value, float) else str(value)


def is_minor(birth_date, on_date):
    age = tools.age_in_years(birth_date, on_date)
    return age is not None and age < 18
