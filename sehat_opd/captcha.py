"""A CAPTCHA that needs no outside service: pure functions, no database.

A challenge is a signed token the server hands out with the form. It is
solved in either of two ways:

- proof of work: the page's script finds a counter such that
  SHA-256("<token>:<counter>") starts with `bits` zero bits (a fraction of a
  second for one visitor, costly for a sender of thousands of messages);
- image: without JavaScript, the visitor types the characters of a
  distorted image drawn by the server (Pillow).

The token carries its expiry, the difficulty and a keyed hash of the image
text, all under an HMAC: the server keeps nothing until it is spent, then
remembers its nonce so that it is accepted once.
"""
import base64
import hashlib
import hmac
import io
import math
import secrets
import time

VERSION = 'c1'
# no 0/O, 1/I/L, 5/S, 2/Z, 8/B: letters a person can tell apart distorted
ALPHABET = '34679ACDEFGHJKMNPRTUVWXY'
CODE_LENGTH = 5
TTL = 15 * 60


class CaptchaError(ValueError):
    """The challenge is not solved; `reason` says why, `nonce` is the
    challenge's when it was genuine (so that a wrong try can spend it)."""

    def __init__(self, reason, nonce=None):
        super().__init__(reason)
        self.reason = reason
        self.nonce = nonce


def _mac(secret, text):
    return hmac.new(secret, text.encode('utf-8'), hashlib.sha256).hexdigest()


def normalize_answer(text):
    "What the visitor typed, as compared: upper case, no spaces."
    return ''.join(str(text or '').split()).upper()


def new_challenge(secret, bits, now=None, ttl=TTL, code=None):
    """Return (token, code): the signed challenge and the image text."""
    now = int(time.time() if now is None else now)
    code = code or ''.join(
        secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    nonce = secrets.token_urlsafe(12)
    expires = now + ttl
    answer = _mac(secret, 'answer:%s:%s' % (nonce, normalize_answer(code))
        )[:24]
    body = '%s.%s.%s.%s.%s' % (VERSION, nonce, expires, int(bits), answer)
    return '%s.%s' % (body, _mac(secret, 'token:' + body)[:32]), code


def parse(secret, token, now=None):
    """Check the token's signature and expiry; return (nonce, expires, bits,
    answer hash). Raise CaptchaError('invalid' or 'expired')."""
    if not isinstance(token, str) or len(token) > 200:
        raise CaptchaError('invalid')
    parts = token.split('.')
    if len(parts) != 6 or parts[0] != VERSION:
        raise CaptchaError('invalid')
    body, signature = token.rsplit('.', 1)
    if not hmac.compare_digest(_mac(secret, 'token:' + body)[:32], signature):
        raise CaptchaError('invalid')
    _, nonce, expires, bits, answer = body.split('.')
    try:
        expires, bits = int(expires), int(bits)
    except ValueError:
        raise CaptchaError('invalid')
    now = int(time.time() if now is None else now)
    if now > expires:
        raise CaptchaError('expired')
    return nonce, expires, bits, answer


def leading_zero_bits(digest):
    "Number of zero bits at the start of `digest` (bytes)."
    count = 0
    for byte in digest:
        if byte == 0:
            count += 8
            continue
        return count + 8 - byte.bit_length()
    return count


def pow_ok(token, counter, bits):
    "Whether `counter` solves the proof of work of `token`."
    counter = str(counter or '')
    if not counter.isdigit() or len(counter) > 12:
        return False
    digest = hashlib.sha256(('%s:%s' % (token, counter)).encode()).digest()
    return leading_zero_bits(digest) >= bits


def solve_pow(token, bits, limit=1 << 26):
    "Find a counter for `token` (what the page's script does; for tests)."
    for counter in range(limit):
        if pow_ok(token, counter, bits):
            return str(counter)
    raise RuntimeError('no solution')


def verify(secret, token, answer=None, counter=None, now=None):
    """Check a solved challenge; return its nonce (to be spent once).

    Raise CaptchaError: 'missing' (nothing solved), 'invalid', 'expired' or
    'wrong' (the image text or the work does not match).
    """
    if not token:
        raise CaptchaError('missing')
    nonce, _, bits, answer_hash = parse(secret, token, now=now)
    if counter not in (None, ''):
        if pow_ok(token, counter, bits):
            return nonce
        raise CaptchaError('wrong', nonce)
    if answer in (None, ''):
        raise CaptchaError('missing', nonce)
    expected = _mac(secret, 'answer:%s:%s' % (nonce, normalize_answer(answer))
        )[:24]
    if not hmac.compare_digest(expected, answer_hash):
        raise CaptchaError('wrong', nonce)
    return nonce


def render_png(code, width=200, height=70, rng=None):
    """Draw `code` as a distorted PNG (bytes): each character rotated and
    shifted, over noise lines and dots that do not hide it from a person."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
    rng = rng or secrets.SystemRandom()
    image = Image.new('RGB', (width, height), (246, 244, 238))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        draw.line([(rng.randint(0, width), rng.randint(0, height)),
                (rng.randint(0, width), rng.randint(0, height))],
            fill=(rng.randint(120, 190),) * 3, width=1)
    step = (width - 20) / len(code)
    for index, char in enumerate(code):
        font = ImageFont.load_default(size=rng.randint(34, 42))
        glyph = Image.new('RGBA', (56, 64), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((10, 4), char, font=font,
            fill=(rng.randint(10, 60), rng.randint(30, 70),
                rng.randint(60, 110), 255))
        glyph = glyph.rotate(rng.uniform(-28, 28), resample=Image.BICUBIC,
            expand=False)
        x = int(10 + index * step + rng.uniform(-3, 3))
        y = int((height - 64) / 2 + rng.uniform(-6, 6))
        image.paste(glyph, (x, y), glyph)
    # a wave across the text: lines through it are harder to strip
    amplitude, period = rng.uniform(3, 6), rng.uniform(50, 90)
    phase = rng.uniform(0, math.pi)
    points = [(x, height / 2 + amplitude * math.sin(x / period * 2 * math.pi
                + phase)) for x in range(0, width, 4)]
    draw.line(points, fill=(60, 70, 90), width=2)
    for _ in range(width * height // 60):
        draw.point((rng.randrange(width), rng.randrange(height)),
            fill=(rng.randint(90, 200),) * 3)
    image = image.filter(ImageFilter.SMOOTH)
    data = io.BytesIO()
    image.save(data, 'PNG', optimize=True)
    return data.getvalue()


def data_uri(png):
    return 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')
