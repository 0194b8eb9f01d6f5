"""DLT templates and SMS segments: pure functions, values in, values out.

India's TRAI rules (TCCCPR 2018) make every commercial SMS match, word for
word, a template registered on an operator's DLT (distributed ledger)
platform, where each variable part is written ``{#var#}`` and may hold up to
30 characters. The operators' scrubbers drop a message that does not fit its
template, so it is checked here before it leaves.
"""
import re

PLACEHOLDER = '{#var#}'
# What one {#var#} may hold on the operators' scrubbers.
VAR_MAX = 30

# GSM 03.38 default alphabet (the escape character 0x1B excluded) and its
# extension table, whose characters take two septets (escape + character).
GSM_BASIC = set(
    '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?'
    '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà')
GSM_EXTENSION = set('^{}\\[~]|€\f')

# (single message, each part of a concatenated message): a concatenated
# message spends 7 septets (GSM) or 3 UCS-2 units on its header (UDH).
GSM_LIMITS = (160, 153)
UCS2_LIMITS = (70, 67)


class TemplateError(ValueError):
    "A template or a value that cannot make a valid DLT message."


def encoding(text):
    """'gsm7' when every character of `text` is in the GSM 7-bit alphabet,
    else 'ucs2' (Unicode: Hindi, most accented letters, emoji)."""
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        return 'gsm7'
    return 'ucs2'


def _units(text, coding):
    "Size of each character in the coding: septets or UTF-16 code units."
    if coding == 'gsm7':
        return [2 if c in GSM_EXTENSION else 1 for c in text]
    return [len(c.encode('utf-16-le')) // 2 for c in text]


def segments(text):
    """Return (encoding, number of SMS parts, total units) of `text`.

    A character is never split across two parts (an escaped GSM character
    or a UTF-16 surrogate pair stays whole), as the handsets require.
    """
    coding = encoding(text)
    single, part = GSM_LIMITS if coding == 'gsm7' else UCS2_LIMITS
    units = _units(text, coding)
    total = sum(units)
    if total <= single:
        return coding, 1, total
    count, used = 1, 0
    for size in units:
        if used + size > part:
            count += 1
            used = 0
        used += size
    return coding, count, total


def parse_variables(spec):
    "The variable names of a template, in order: 'otp, minutes' -> list."
    return [n.strip() for n in (spec or '').split(',') if n.strip()]


def _runs(text, names):
    """Group the placeholders into runs: adjacent placeholders (nothing
    between them) with the same name share one long value, 30 characters
    each, so a link longer than 30 characters fits {#var#}{#var#}."""
    parts = text.split(PLACEHOLDER)
    runs = []
    for index, name in enumerate(names):
        if runs and runs[-1][0] == name and parts[index] == '':
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return runs


def check_template(text, names, known=None):
    """Raise TemplateError unless `text` and its variable `names` agree.

    `known` is the set of value names the event provides (None: any).
    """
    count = (text or '').count(PLACEHOLDER)
    if count != len(names):
        raise TemplateError(
            'The text has %d {#var#} but %d variables are named.'
            % (count, len(names)))
    if known is not None:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise TemplateError(
                'Unknown variables: %s (the event gives: %s).'
                % (', '.join(unknown), ', '.join(sorted(known))))


def clean_value(value):
    "A value as it may appear in an SMS: text on one line."
    if value is None:
        return ''
    return ' '.join(str(value).split())


def render(text, names, values, truncate=()):
    """Fill the template `text` with `values`.

    Return (message, fills) where `fills` holds the content of each
    {#var#} in order (some gateways, such as MSG91, take them instead of
    the text). A value longer than its placeholders hold is cut when its
    name is in `truncate` (a name, an OPD), otherwise TemplateError is
    raised (a cut link or code would be wrong, better not sent).
    """
    check_template(text, names)
    fills = []
    for name, length in _runs(text, names):
        if name not in values:
            raise TemplateError('No value for %s.' % name)
        value = clean_value(values[name])
        room = length * VAR_MAX
        if len(value) > room:
            if name not in truncate:
                raise TemplateError(
                    'The value of %s has %d characters; the template holds %d.'
                    % (name, len(value), room))
            value = value[:room].rstrip()
        chunks = [value[i:i + VAR_MAX] for i in range(0, len(value), VAR_MAX)]
        chunks += [''] * (length - len(chunks))
        fills.extend(chunks)
    parts = text.split(PLACEHOLDER)
    message = parts[0] + ''.join(
        fill + part for fill, part in zip(fills, parts[1:]))
    return message, fills


def expand(text, names, values):
    """The template with each run of {#var#} replaced by its whole value:
    the same words for channels without DLT limits (e-mail)."""
    check_template(text, names)
    parts = text.split(PLACEHOLDER)
    out, index = [parts[0]], 0
    for name, length in _runs(text, names):
        index += length
        out.append(clean_value(values.get(name)) + parts[index])
    return ''.join(out)


def pattern(text):
    "The regular expression an operator's scrubber applies for `text`."
    parts = [re.escape(p) for p in (text or '').split(PLACEHOLDER)]
    return re.compile(
        ('.{0,%d}' % VAR_MAX).join(parts), re.DOTALL)


def fits(text, message):
    "Whether `message` matches the DLT template `text`."
    return pattern(text).fullmatch(message or '') is not None


def sample(text):
    """The template filled with the longest Latin values it accepts: the
    longest message it can make, unless a value brings Unicode in."""
    parts = text.split(PLACEHOLDER)
    return parts[0] + ''.join('x' * VAR_MAX + p for p in parts[1:])
