"""Drawing of the e-prescription PDF (reportlab): pure, content in, bytes out.

The content is the frozen, hashed dictionary of a signed prescription (see
prescription.py, `sehat_content`); nothing here reads the database, so the
same function serves the signing, the benchmark and the tests.

A4, black on white (it is printed on office laser printers and
photocopied): no colour carries meaning, greys are light enough to copy.
Names in Devanagari are drawn with Noto Sans Devanagari (Debian's
fonts-noto-core) and shaped by HarfBuzz (uharfbuzz), so conjuncts and
vowel signs are right; Latin text uses Noto Sans, or reportlab's own Vera
when Noto is not installed.
"""
import datetime as dt
import io
import logging
import os
import re
from xml.sax.saxutils import escape

import segno
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table,
    TableStyle)

logger = logging.getLogger(__name__)

FONT_DIRS = [
    '/usr/share/fonts/truetype/noto',
    '/usr/share/fonts/opentype/noto',
    ]
LATIN, DEVANAGARI = 'SehatSans', 'SehatDeva'
_DEVANAGARI_RE = re.compile(r'[\u0900-\u097F\uA8E0-\uA8FF\u1CD0-\u1CFF]+')
_DEVA = '\u0900-\u097F\uA8E0-\uA8FF\u1CD0-\u1CFF\u200C\u200D'
# Punctuation and digits that Noto Sans Devanagari also draws: glued to a
# Devanagari word, as in "(पति)", they go in the same font, because
# reportlab cannot shape a word drawn in two fonts.
_SHARED = re.escape('!"#%\'()*+,-./0123456789:;<=>?[\\]^_{|}~')
_RUN_RE = re.compile(r'([%s]*[%s]+(?:[%s]*[%s]+)*[%s]*)' % (
        _SHARED, _DEVA, _SHARED, _DEVA, _SHARED))
GREY = colors.Color(0.55, 0.55, 0.55)
LIGHT = colors.Color(0.90, 0.90, 0.90)
MARGIN = 14 * mm
MODES = {'video': "Video", 'audio': "Audio", 'text': "Text (chat)"}
VISITS = {'first': "First consultation", 'follow_up': "Follow-up"}
_fonts = {}


def _find(name):
    for directory in FONT_DIRS:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


def register_fonts():
    """Register the fonts once per process; return whether Devanagari can
    be drawn."""
    if _fonts:
        return _fonts['devanagari']
    from reportlab import rl_config
    import reportlab
    vera = os.path.join(os.path.dirname(reportlab.__file__), 'fonts')
    latin = [_find('NotoSans-Regular.ttf'), _find('NotoSans-Bold.ttf')]
    if not all(latin):
        latin = [os.path.join(vera, 'Vera.ttf'),
            os.path.join(vera, 'VeraBd.ttf')]
    deva = [_find('NotoSansDevanagari-Regular.ttf'),
        _find('NotoSansDevanagari-Bold.ttf')]
    pdfmetrics.registerFont(TTFont(LATIN, latin[0]))
    pdfmetrics.registerFont(TTFont(LATIN + '-Bold', latin[1]))
    pdfmetrics.registerFontFamily(LATIN, normal=LATIN, bold=LATIN + '-Bold',
        italic=LATIN, boldItalic=LATIN + '-Bold')
    _fonts['devanagari'] = all(deva)
    if all(deva):
        pdfmetrics.registerFont(TTFont(DEVANAGARI, deva[0]))
        pdfmetrics.registerFont(TTFont(DEVANAGARI + '-Bold', deva[1]))
        pdfmetrics.registerFontFamily(DEVANAGARI, normal=DEVANAGARI,
            bold=DEVANAGARI + '-Bold', italic=DEVANAGARI,
            boldItalic=DEVANAGARI + '-Bold')
    else:
        logger.warning('Noto Sans Devanagari is not installed '
            '(apt-get install fonts-noto-core): Hindi names will not print')
    # binary streams: smaller files, no ASCII85 encoding at every render
    rl_config.useA85 = 0
    return _fonts['devanagari']


def markup(text):
    """Paragraph markup of plain `text`: escaped, line breaks kept, each
    Devanagari run in the Devanagari font."""
    text = str(text or '').replace('\r\n', '\n')
    if _fonts.get('devanagari'):
        parts = _RUN_RE.split(text)
        # split() with one group: odd items are the Devanagari runs
        text = ''.join(
            '<font name="%s">%s</font>' % (DEVANAGARI, escape(part))
            if index % 2 else escape(part)
            for index, part in enumerate(parts))
    else:
        text = escape(text)
    return text.replace('\n', '<br/>')


def _has_devanagari(text):
    return bool(_DEVANAGARI_RE.search(text or ''))


class Styles:
    "The few paragraph styles of the prescription."

    def __init__(self):
        base = ParagraphStyle('base', fontName=LATIN, fontSize=9.5,
            leading=12.5)
        self.body = base
        self.small = ParagraphStyle('small', base, fontSize=8, leading=10)
        self.label = ParagraphStyle('label', base, fontSize=7.5, leading=9.5,
            textColor=colors.black, fontName=LATIN + '-Bold')
        self.heading = ParagraphStyle('heading', base,
            fontName=LATIN + '-Bold', fontSize=8.5, leading=11,
            spaceBefore=6, spaceAfter=1)
        self.title = ParagraphStyle('title', base, fontName=LATIN + '-Bold',
            fontSize=14, leading=17)
        self.right = ParagraphStyle('right', base, alignment=TA_RIGHT)
        self.rx = ParagraphStyle('rx', base, fontName=LATIN + '-Bold',
            fontSize=18, leading=22)
        self.right_title = ParagraphStyle('right_title', self.title,
            alignment=TA_RIGHT, fontSize=16, leading=19)
        self.cell = ParagraphStyle('cell', base, fontSize=8.8, leading=11)
        self.cell_head = ParagraphStyle('cell_head', self.cell,
            fontName=LATIN + '-Bold', fontSize=8)


def para(text, style, raw=False):
    """A paragraph of `text` (plain unless `raw`); shaped by HarfBuzz only
    when it holds Devanagari, so Latin text stays extractable as is."""
    source = text if raw else markup(text)
    if _has_devanagari(text) and _fonts.get('devanagari'):
        style = ParagraphStyle(style.name + '_shaped', style, shaping=1)
    return Paragraph(source, style)


class QRCode(Flowable):
    "The verification URL as a QR code, drawn as vector squares."

    def __init__(self, data, size):
        super().__init__()
        self.qr = segno.make(data, error='m', micro=False)
        self.size = size
        self.width = self.height = size

    def draw(self):
        matrix = [list(row) for row in self.qr.matrix]
        border = 2
        module = self.size / (len(matrix) + 2 * border)
        canvas = self.canv
        canvas.setFillColor(colors.black)
        path = canvas.beginPath()
        for y, row in enumerate(matrix):
            x = 0
            while x < len(row):
                if not row[x]:
                    x += 1
                    continue
                # one rectangle per run of dark modules: fewer operators
                start = x
                while x < len(row) and row[x]:
                    x += 1
                path.rect((start + border) * module,
                    self.size - (y + border + 1) * module,
                    (x - start) * module, module)
        canvas.drawPath(path, stroke=0, fill=1)


def local_datetime(iso):
    "`2026-11-29T15:45:00+05:30` -> `29 Nov 2026, 15:45 IST`."
    moment = dt.datetime.fromisoformat(iso)
    zone = 'IST' if moment.utcoffset() == dt.timedelta(
        hours=5, minutes=30) else moment.strftime('%z')
    return '%s, %s %s' % (moment.strftime('%d %b %Y'),
        moment.strftime('%H:%M'), zone)


def _numbered_canvas(content):
    "A canvas that prints 'Page n of N' and the footer once all are known."
    class NumberedCanvas(pdfcanvas.Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                _footer(self, content, self._pageNumber, total)
                super().showPage()
            super().save()
    return NumberedCanvas


def _footer(canvas, content, number, total):
    width, _ = A4
    canvas.saveState()
    canvas.setStrokeColor(GREY)
    canvas.setLineWidth(0.5)
    canvas.line(MARGIN, 16 * mm, width - MARGIN, 16 * mm)
    canvas.setFont(LATIN, 7)
    canvas.setFillColor(colors.black)
    canvas.drawString(MARGIN, 12.5 * mm,
        "Issued through a teleconsultation under the Telemedicine Practice "
        "Guidelines, 2020. Verify before dispensing: scan the QR code.")
    canvas.drawString(MARGIN, 9 * mm,
        "e-Prescription %s" % content.get('number', ''))
    canvas.drawRightString(width - MARGIN, 9 * mm,
        "Page %d of %d" % (number, total))
    canvas.restoreState()


def _facts(rows, styles):
    "A block of label / value lines (doctor, patient)."
    data = [[para(label, styles.label), para(value, styles.cell)]
        for label, value in rows if value not in (None, '')]
    table = Table(data, colWidths=[27 * mm, None])
    table.setStyle(TableStyle([
                ('VALIGN', (0, 0), (-1, -1), 'TOP'),
                ('LEFTPADDING', (0, 0), (-1, -1), 0),
                ('RIGHTPADDING', (0, 0), (-1, -1), 3),
                ('TOPPADDING', (0, 0), (-1, -1), 1),
                ('BOTTOMPADDING', (0, 0), (-1, -1), 1),
                ]))
    return table


def _section(title, text, styles):
    if not text:
        return []
    return [para(title.upper(), styles.heading), para(text, styles.body)]


def medicine_rows(medicines, styles):
    "The table rows of the medicines: one per medicine."
    head = ['#', "Medicine", "Dose", "Frequency", "Duration",
        "Instructions"]
    rows = [[para(h, styles.cell_head) for h in head]]
    for number, line in enumerate(medicines, 1):
        name = '<b>%s</b>' % markup((line.get('generic') or '').upper())
        detail = ', '.join(v for v in [line.get('strength'),
                line.get('form'), line.get('route')] if v)
        if detail:
            name += ' %s' % markup(detail)
        if line.get('brand'):
            name += '<br/><font size="7.5">(%s)</font>' % markup(
                line['brand'])
        rows.append([
                para(str(number), styles.cell),
                para(name, styles.cell, raw=True),
                para(line.get('dose'), styles.cell),
                para(line.get('frequency'), styles.cell),
                para(line.get('duration'), styles.cell),
                para(line.get('instructions'), styles.cell),
                ])
    return rows


def render(content, verify_url, digest):
    """The PDF (bytes) of the prescription `content` whose SHA-256 is
    `digest`, with `verify_url` in its QR code, its link and its
    metadata."""
    register_fonts()
    styles = Styles()
    output = io.BytesIO()
    doc = SimpleDocTemplate(output, pagesize=A4,
        leftMargin=MARGIN, rightMargin=MARGIN, topMargin=12 * mm,
        bottomMargin=20 * mm,
        title='e-Prescription %s' % content.get('number', ''),
        author=content.get('doctor', {}).get('name', ''),
        subject='SeHAT OPD e-prescription; verify at %s' % verify_url,
        keywords='sha256:%s %s' % (digest, verify_url),
        creator='SeHAT OPD')
    # the frame keeps 6 pt of padding on each side
    width = A4[0] - 2 * MARGIN - 12
    story = []

    institution = content.get('institution') or {}
    header_left = [para(institution.get('name'), styles.title)]
    if institution.get('address'):
        header_left.append(para(institution['address'], styles.small))
    header_left.append(Spacer(1, 2))
    header_left.append(para('<b>%s</b>' % markup(content.get('opd')),
            styles.body, raw=True))
    header_right = [
        para('e-Prescription', styles.right_title),
        para('No. <b>%s</b>' % markup(content.get('number')), styles.right,
            raw=True),
        para(local_datetime(content['issued_at']), styles.right),
        ]
    header = Table([[header_left, header_right]],
        colWidths=[width * 0.62, width * 0.38])
    header.setStyle(TableStyle([
                ('VALIGN', (0, 0), (-1, -1), 'TOP'),
                ('LEFTPADDING', (0, 0), (-1, -1), 0),
                ('RIGHTPADDING', (0, 0), (-1, -1), 0),
                ('LINEBELOW', (0, 0), (-1, 0), 1.6, colors.black),
                ('BOTTOMPADDING', (0, 0), (-1, 0), 6),
                ]))
    story.append(header)

    mode = MODES.get(content.get('mode'), content.get('mode') or '')
    banner = Table([[para(
                    '<b>TELECONSULTATION</b> &#183; Mode: <b>%s</b> &#183; '
                    '%s' % (escape(mode), escape(VISITS.get(
                                content.get('visit'), ''))),
                    styles.body, raw=True)]], colWidths=[width])
    banner.setStyle(TableStyle([
                ('BACKGROUND', (0, 0), (-1, -1), LIGHT),
                ('BOX', (0, 0), (-1, -1), 0.6, colors.black),
                ('TOPPADDING', (0, 0), (-1, -1), 3),
                ('BOTTOMPADDING', (0, 0), (-1, -1), 4),
                ]))
    story += [Spacer(1, 5), banner, Spacer(1, 5)]

    doctor = content.get('doctor') or {}
    patient = content.get('patient') or {}
    registration = doctor.get('registration') or ''
    if doctor.get('council'):
        registration += ' (%s)' % doctor['council']
    doctor_rows = [
        ("Doctor", doctor.get('name')),
        ("Qualification", doctor.get('qualification')),
        ("Reg. No.", registration),
        ("Specialty", doctor.get('specialty')),
        ]
    age_sex = ' / '.join(str(v) for v in [
            '%s years' % patient['age'] if patient.get('age') is not None
            else None, patient.get('sex')] if v)
    patient_rows = [
        ("Patient", patient.get('name')),
        ("Age / Sex", age_sex),
        ("Patient ID", patient.get('patient_id')),
        ("Service", patient.get('service')),
        ("Accompanied by", patient.get('accompanied_by')),
        ]
    people = Table([[
                [para('PRESCRIBING DOCTOR', styles.heading),
                    _facts(doctor_rows, styles)],
                [para('PATIENT', styles.heading),
                    _facts(patient_rows, styles)],
                ]], colWidths=[width / 2, width / 2])
    people.setStyle(TableStyle([
                ('VALIGN', (0, 0), (-1, -1), 'TOP'),
                ('BOX', (0, 0), (-1, -1), 0.6, colors.black),
                ('LINEBEFORE', (1, 0), (1, 0), 0.6, colors.black),
                ('LEFTPADDING', (0, 0), (-1, -1), 6),
                ('TOPPADDING', (0, 0), (-1, -1), 0),
                ('BOTTOMPADDING', (0, 0), (-1, -1), 5),
                ]))
    story.append(people)

    story += _section("Chief complaint", content.get('complaint'), styles)
    story += _section("History", content.get('history'), styles)
    if content.get('vitals'):
        story += _section("Vitals (reported by the patient)", '; '.join(
                '%s %s' % (k, v) for k, v in content['vitals']), styles)
    story += _section("Provisional diagnosis", content.get('diagnosis'),
        styles)
    story += _section("Investigations advised",
        content.get('investigations'), styles)

    story.append(Spacer(1, 4))
    story.append(para('Rx', styles.rx))
    story.append(Spacer(1, 2))
    medicines = content.get('medicines') or []
    if medicines:
        table = Table(medicine_rows(medicines, styles), repeatRows=1,
            colWidths=[7 * mm, width * 0.36, width * 0.13, width * 0.17,
                width * 0.12, None])
        table.setStyle(TableStyle([
                    ('VALIGN', (0, 0), (-1, -1), 'TOP'),
                    ('BACKGROUND', (0, 0), (-1, 0), LIGHT),
                    ('LINEABOVE', (0, 0), (-1, 0), 0.8, colors.black),
                    ('LINEBELOW', (0, 0), (-1, 0), 0.8, colors.black),
                    ('LINEBELOW', (0, 1), (-1, -1), 0.3, GREY),
                    ('LINEBELOW', (0, -1), (-1, -1), 0.8, colors.black),
                    ('LEFTPADDING', (0, 0), (-1, -1), 3),
                    ('RIGHTPADDING', (0, 0), (-1, -1), 3),
                    ]))
        story.append(table)
    else:
        story.append(para("No medicine prescribed.", styles.body))
    story += _section("Notes", content.get('notes'), styles)
    story += _section("Advice", content.get('advice'), styles)
    story += _section("Follow-up", content.get('follow_up'), styles)
    story += _section("Referral", content.get('referral'), styles)

    signature = [
        para('DIGITAL SIGNATURE', styles.heading),
        para('Digitally signed by <b>%s</b>' % markup(doctor.get('name')),
            styles.body, raw=True),
        para('Reg. No. %s' % registration, styles.body),
        para('Signed at %s' % local_datetime(content['issued_at']),
            styles.body),
        para('SHA-256 of the prescription content:', styles.small),
        para('<font name="Courier" size="7.2">%s<br/>%s</font>' % (
                digest[:32], digest[32:]),
            styles.small, raw=True),
        Spacer(1, 3),
        para('Verify at: <link href="%s">%s</link>' % (
                escape(verify_url), escape(verify_url)), styles.small,
            raw=True),
        ]
    qr_size = 32 * mm
    qr = [QRCode(verify_url, qr_size),
        para('Scan to verify', ParagraphStyle('qr', styles.small,
                alignment=1)),
        para('<font name="Courier" size="6.3">%s</font>' % escape(
                content.get('code') or ''), ParagraphStyle('code',
                styles.small, alignment=1, leading=8), raw=True)]
    block = Table([[signature, qr]], colWidths=[width - qr_size - 10,
            qr_size + 10])
    block.setStyle(TableStyle([
                ('VALIGN', (0, 0), (-1, -1), 'TOP'),
                ('BOX', (0, 0), (-1, -1), 0.8, colors.black),
                ('LEFTPADDING', (0, 0), (-1, -1), 6),
                ('RIGHTPADDING', (0, 0), (-1, -1), 4),
                ('TOPPADDING', (0, 0), (-1, -1), 2),
                ('BOTTOMPADDING', (0, 0), (-1, -1), 5),
                ]))
    story += [Spacer(1, 10), KeepTogether([block])]

    doc.build(story, canvasmaker=_numbered_canvas(content))
    return output.getvalue()
