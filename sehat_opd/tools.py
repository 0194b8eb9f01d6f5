"""Pure helpers of SeHAT OPD: values in, values out, no pool access.

They are shared by the models, the routes and the tests, which exercise them
without a database.
"""
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from zoneinfo import ZoneInfo

import phonenumbers

from trytond.config import config

# Crockford's base 32: no I, L, O, U, so a Patient ID read over the phone or
# typed from an SMS survives the usual confusions (O/0, I/1/L).
CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
_CROCKFORD_DECODE = str.maketrans({'O': '0', 'I': '1', 'L': '1'})
PATIENT_ID_PREFIX = 'SH'
PATIENT_ID_LENGTH = 8


def get_setting(section, option, default=None):
    """Return a deployment setting; the environment wins over trytond.conf.

    trytond reads its configuration file after the environment, so a value in
    the file would silently hide `TRYTOND_<SECTION>__<OPTION>`; deployment
    secrets must come from the environment, so it is looked up first.
    """
    env = 'TRYTOND_%s__%s' % (section.upper(), option.upper())
    if env in os.environ:
        return os.environ[env]
    return config.get(section, option, default=default)


def is_development():
    "Development mode prints OTPs and messages in the server log."
    return get_setting('sehat_opd', 'mode', 'production') == 'development'


# Patient ID ---------------------------------------------------------------

def after_commit(transaction, func, *args):
    """Call func(*args) from a data manager's tpc_finish: at once, or in a
    web request once `transaction` has given its connection back.

    `func` takes a connection of its own; a request still holding one while
    waiting for a second would, in a burst of requests as large as the pool,
    wait forever (each holding one, all waiting).
    """
    if transaction.context.get('_request'):
        transaction.atexit(func, *args)
    else:
        func(*args)


def _luhn_mod_n(chars):
    "Luhn mod N check character over the Crockford alphabet (N = 32)."
    n = len(CROCKFORD)
    factor, total = 2, 0
    for char in reversed(chars):
        addend = factor * CROCKFORD.index(char)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return CROCKFORD[(n - total % n) % n]


def new_patient_id(randbits=secrets.randbits):
    """Return a new Patient ID such as ``SH-7K3M-Q9XD-R``.

    40 random bits in 8 Crockford characters plus one Luhn mod 32 check
    character that catches every single-character typo and every swap of two
    neighbours.
    """
    value = randbits(5 * PATIENT_ID_LENGTH)
    body = ''.join(
        CROCKFORD[(value >> (5 * i)) & 31] for i in range(PATIENT_ID_LENGTH))
    return format_patient_id(body + _luhn_mod_n(body))


def format_patient_id(compact):
    return '%s-%s-%s-%s' % (
        PATIENT_ID_PREFIX, compact[:4], compact[4:8], compact[8:])


def normalize_patient_id(text):
    """Return the canonical Patient ID typed as `text`, or None if invalid.

    Case, spaces, dashes and the look-alike letters O, I and L are forgiven;
    a wrong check character is not.
    """
    if not text:
        return None
    compact = re.sub(r'[\s\-]', '', str(text).upper())
    if compact.startswith(PATIENT_ID_PREFIX):
        compact = compact[len(PATIENT_ID_PREFIX):]
    compact = compact.translate(_CROCKFORD_DECODE)
    if (len(compact) != PATIENT_ID_LENGTH + 1
            or any(c not in CROCKFORD for c in compact)):
        return None
    if _luhn_mod_n(compact[:-1]) != compact[-1]:
        return None
    return format_patient_id(compact)


# Mobile numbers -------------------------------------------------------------

def normalize_mobile(text):
    """Return an Indian mobile number in E.164 (``+919876543210``) or None.

    Accepts the usual ways of writing it (10 digits, 0 or +91 or 91 prefix,
    spaces, dashes); refuses landlines and foreign numbers.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or len(text) > 20:
        return None
    try:
        number = phonenumbers.parse(text, 'IN')
    except phonenumbers.NumberParseException:
        return None
    if number.country_code != 91:
        return None
    national = str(number.national_number)
    if not re.fullmatch(r'[6-9]\d{9}', national):
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in {
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}:
        return None
    return phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.E164)


def mask_mobile(mobile):
    "Show only the last 4 digits of a mobile, for logs and screens."
    if not mobile:
        return ''
    return '*' * max(len(mobile) - 4, 0) + mobile[-4:]


# Secrets --------------------------------------------------------------------

def new_otp_code():
    "A 6-digit one-time password from the system's secure generator."
    return '%06d' % secrets.randbelow(10 ** 6)


def new_key(nbytes=32):
    "A random URL-safe key of `nbytes` bytes of entropy (>= 128 bits)."
    return secrets.token_urlsafe(nbytes)


def _secret():
    return (get_setting('sehat_opd', 'secret') or '').encode('utf-8')


def hash_secret(value, salt=''):
    """Keyed SHA-256 of a secret (OTP, session key) for storage.

    The key comes from `[sehat_opd] secret`, so a copy of the database alone
    is not enough to brute-force the 10^6 OTP codes.
    """
    return hmac.new(
        _secret(), (salt + ':' + value).encode('utf-8'),
        hashlib.sha256).hexdigest()


def check_secret(value, salt, digest):
    if not isinstance(value, str) or not digest:
        return False
    return hmac.compare_digest(hash_secret(value, salt), digest)


def lock_key(*parts):
    "A signed 64-bit number naming `parts`, for PostgreSQL advisory locks."
    digest = hashlib.sha256(
        '\x1f'.join(str(p) for p in parts).encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big', signed=True)


def sign(value):
    "HMAC signature of `value` (for links that must not be forged)."
    return hmac.new(
        _secret() or b'sehat-opd', value.encode('utf-8'),
        hashlib.sha256).hexdigest()[:32]


def check_signature(value, signature):
    "Whether `signature` is sign(value)."
    return isinstance(signature, str) and hmac.compare_digest(
        sign(value), signature)


# Opening hours ----------------------------------------------------------------

def local_now(timezone, now=None):
    "Return the naive local time in `timezone` for the UTC datetime `now`."
    now = now or dt.datetime.utcnow()
    return now.replace(tzinfo=dt.timezone.utc).astimezone(
        ZoneInfo(timezone)).replace(tzinfo=None)


def to_utc(local, timezone):
    "Convert a naive local datetime in `timezone` to naive UTC."
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(
        dt.timezone.utc).replace(tzinfo=None)


def is_open(hours, holidays, local, round_the_clock=False):
    """Tell whether an OPD is open at the naive local datetime `local`.

    `hours` is a list of (weekday, open_time, close_time) with Monday = 0;
    `holidays` a set of dates on which it is closed all day.
    """
    if local.date() in holidays:
        return False
    if round_the_clock:
        return True
    moment = local.time()
    return any(
        weekday == local.weekday() and start <= moment < end
        for weekday, start, end in hours)


def next_opening(hours, holidays, local, round_the_clock=False, days=60):
    "Return the next local datetime (after `local`) when the OPD opens."
    for offset in range(days + 1):
        day = local.date() + dt.timedelta(days=offset)
        if day in holidays:
            continue
        if round_the_clock:
            return dt.datetime.combine(day, dt.time(0, 0))
        starts = sorted(
            start for weekday, start, end in hours
            if weekday == day.weekday())
        for start in starts:
            candidate = dt.datetime.combine(day, start)
            if candidate > local:
                return candidate
    return None


def closing_time(hours, local, round_the_clock=False):
    "Return the local datetime when the current opening period ends."
    if round_the_clock:
        return dt.datetime.combine(
            local.date() + dt.timedelta(days=1), dt.time(0, 0))
    moment = local.time()
    for weekday, start, end in hours:
        if weekday == local.weekday() and start <= moment < end:
            return dt.datetime.combine(local.date(), end)
    return None


def age_in_years(birth_date, today):
    "Completed years between `birth_date` and `today`."
    if not birth_date:
        return None
    years = today.year - birth_date.year
    if (today.month, today.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def eta_seconds(position, doctors_online, average_seconds):
    """Estimate the wait of the patient at `position` (1 = next).

    Patients ahead are shared among the online doctors; with nobody online
    there is no estimate.
    """
    if not position or doctors_online <= 0:
        return None
    rounds = -(-position // doctors_online)
    return int(rounds * average_seconds)
