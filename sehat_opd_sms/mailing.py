"""E-mail of a notification: text and HTML parts, built as a pure function.

Sending is trytond.sendmail's business (SMTP from `[email] uri`).
"""
import html
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

URL = re.compile(r'https?://[^\s<>"]+')

HTML = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{subject}</title></head>
<body style="font-family: sans-serif; color: #1b2a3a; line-height: 1.5">
<div style="max-width: 560px; margin: 0 auto; padding: 16px">
<p style="font-weight: bold; color: #0b4f6c">SeHAT OPD</p>
<p>{body}</p>
<p style="font-size: 12px; color: #5a6b7b">{footer}</p>
</div></body></html>
"""
FOOTERS = {
    'en': 'This message was sent automatically; please do not reply.',
    'hi': 'यह संदेश स्वचालित रूप से भेजा गया है; कृपया उत्तर न दें।',
    }


def to_html(text):
    "The text escaped, its links clickable and its line breaks kept."
    parts, last = [], 0
    for match in URL.finditer(text):
        parts.append(html.escape(text[last:match.start()]))
        url = html.escape(match.group(0))
        parts.append('<a href="%s">%s</a>' % (url, url))
        last = match.end()
    parts.append(html.escape(text[last:]))
    return ''.join(parts).replace('\n', '<br>')


def build_email(sender, recipient, subject, text, language='en',
        reference=None):
    """An EmailMessage with a text part and an HTML alternative.

    The Message-ID carries our reference so that a receiving server can
    recognise a message re-sent after a lost answer.
    """
    message = EmailMessage()
    message['From'] = sender
    message['To'] = recipient
    message['Subject'] = subject
    message['Date'] = formatdate(localtime=True)
    domain = sender.rsplit('@', 1)[-1].strip('> ') if '@' in (
        sender or '') else None
    message['Message-ID'] = make_msgid(idstring=reference, domain=domain)
    footer = FOOTERS.get(language, FOOTERS['en'])
    message.set_content('%s\n\n-- \n%s\n' % (text, footer))
    message.add_alternative(HTML.format(
            lang=html.escape(language or 'en'),
            subject=html.escape(subject),
            body=to_html(text),
            footer=html.escape(footer)), subtype='html')
    return message
