"""HTTP of consultations and e-prescriptions (the API and the pages).

- API v1: GET /consultations, /consultations/<id>, /prescriptions/<id>.pdf,
  for their owner only (anyone else's id answers 404);
- pages: /history and /history/<id> (Past consultations);
- public: /verify and /verify/<code> (a pharmacist checks a prescription,
  or uploads a PDF to see whether it is the copy issued);
- /rx/<link>: the signed SMS link, which opens the PDF once the patient
  confirms their date of birth or an OTP.

Routes parse, call one model method and render; the rules are on the
models (evaluation.py, prescription.py).
"""
from trytond.i18n import gettext
from trytond.protocols.wrappers import Response

from . import telemedicine, web
from .exceptions import InvalidInput, NotFound
from .portal import page, render
from .web import api

FROZEN = ('issued', 'revoked')


def pdf_response(order, inline=False):
    "The PDF as issued, never cached by shared caches."
    response = Response(order.pdf_for_download(), status=200,
        content_type='application/pdf')
    response.headers['Content-Disposition'] = '%s; filename="%s"' % (
        'inline' if inline else 'attachment', order.sehat_pdf_name)
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['Cache-Control'] = 'private, no-store'
    return response


# API ------------------------------------------------------------------------

@api('/consultations', auth='patient')
def consultations(request, pool, session):
    Token = pool.get('sehat.opd.token')
    return {'consultations': Token.portal_history(session.owner)}


@api('/consultations/<int:token_id>', auth='patient')
def consultation(request, pool, session, token_id):
    Token = pool.get('sehat.opd.token')
    return Token.portal_get(token_id, session.owner).portal_consultation(
        detail=True)


@api('/prescriptions/<int:order_id>.pdf', auth='patient',
    produces='application/pdf', query={'inline': {'enum': ['0', '1']}})
def prescription_pdf(request, pool, session, order_id):
    Order = pool.get('gnuhealth.prescription.order')
    order = Order.for_patient(order_id, session.owner)
    return pdf_response(order, inline=request.args.get('inline') == '1')


# Past consultations -----------------------------------------------------------

def _patient(pool, session):
    return pool.get('gnuhealth.patient')(session.owner)


@page('/history', patient=True)
def history(request, pool, session):
    "Past consultations: date, OPD, doctor, diagnosis, prescription."
    Token = pool.get('sehat.opd.token')
    return render(request, 'history.html',
        consultations=Token.portal_history(session.owner),
        patient=_patient(pool, session), csrf_token=session.csrf)


@page('/history/<int:token_id>', patient=True)
def history_detail(request, pool, session, token_id):
    "One past consultation, printable, with its prescription."
    Token = pool.get('sehat.opd.token')
    item = Token.portal_get(token_id, session.owner).portal_consultation(
        detail=True)
    return render(request, 'history_detail.html', item=item,
        patient=_patient(pool, session), csrf_token=session.csrf)


# Verification -----------------------------------------------------------------

@page('/verify', methods=['GET', 'POST'])
def verify_form(request, pool, session):
    """Type the code printed under the QR code, or upload the PDF."""
    if request.method == 'POST':
        return _check_upload(request, pool, None)
    code = (request.args.get('code') or '').strip()
    if code:
        return _verify(request, pool, code)
    return render(request, 'verify.html', result=None)


@page('/verify/<code>', methods=['GET', 'POST'])
def verify(request, pool, session, code):
    "The QR code's page: genuine, issued or revoked, for a pharmacist."
    if request.method == 'POST':
        return _check_upload(request, pool, code)
    return _verify(request, pool, code)


def _verify(request, pool, code, upload=None):
    Order = pool.get('gnuhealth.prescription.order')
    order = Order.by_code(code)
    if not order:
        return render(request, 'verify.html', status=404,
            result={'status': 'unknown'}, upload=upload)
    result = order.verification()
    return render(request, 'verify.html', result=result, upload=upload,
        code=code)


def _check_upload(request, pool, code):
    Order = pool.get('gnuhealth.prescription.order')
    storage = request.files.get('pdf')
    data = storage.read() if storage else b''
    if not data:
        return render(request, 'verify.html', status=422,
            result=None, code=code, upload_error=True)
    order, claimed = Order.by_pdf(data)
    if order:
        upload = {'match': True}
        if code and code != order.sehat_code:
            # a genuine file, but of another prescription than this page's
            upload = {'match': False, 'other': True}
        return _verify(request, pool, code or order.sehat_code, upload)
    upload = {'match': False}
    claimed = code or claimed
    if claimed:
        return _verify(request, pool, claimed, upload)
    return render(request, 'verify.html', status=200,
        result={'status': 'unknown'}, upload=upload)


# SMS download link --------------------------------------------------------

@page('/rx/<link>', methods=['GET', 'POST'])
def download_link(request, pool, session, link):
    """Open the PDF of an SMS link after the patient confirms their date
    of birth, or an OTP sent to their registered mobile."""
    Order = pool.get('gnuhealth.prescription.order')
    OTP = pool.get('sehat.opd.otp')
    checked = telemedicine.check_download_token(link)
    orders = Order.search([
            ('id', '=', checked[0]),
            ('sehat_state', 'in', list(FROZEN)),
            ], limit=1) if checked else []
    if not orders:
        return render(request, 'rx_link.html', status=404, state='invalid')
    order, = orders
    if checked[1]:
        return render(request, 'rx_link.html', status=410, state='expired')
    if order.sehat_state == 'revoked':
        return render(request, 'rx_link.html', status=410, state='revoked')
    number = order.sehat_data().get('number')
    if request.method == 'GET':
        return render(request, 'rx_link.html', state='ask', number=number)
    action = request.form.get('action')
    mobile = order.patient.portal_mobile
    if action == 'birth_date':
        if order.unlock_by_birth_date(request.form.get('birth_date')):
            return pdf_response(order, inline=True)
        return render(request, 'rx_link.html', status=422, state='ask',
            number=number, error='birth_date')
    if action == 'send_otp' and mobile:
        otp, _, _ = OTP.request(mobile, 'login',
            web.client_address(request))
        return render(request, 'rx_link.html', state='otp', number=number,
            otp_id=otp.id, mobile=_masked(mobile))
    if action == 'otp' and mobile:
        otp_id = _int(request.form.get('otp_id'))
        otp, key, error = OTP.verify(otp_id, request.form.get('code'))
        if error is None and otp.mobile == mobile:
            OTP.consume(key, 'login', mobile=mobile)
            return pdf_response(order, inline=True)
        # a wrong code is counted: answer without raising, so it commits
        return render(request, 'rx_link.html', status=422, state='otp',
            number=number, otp_id=otp_id, mobile=_masked(mobile),
            error='otp')
    raise InvalidInput(gettext('sehat_opd.msg_registration_invalid'))


def _masked(mobile):
    from .tools import mask_mobile
    return mask_mobile(mobile)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound(gettext('sehat_opd.msg_otp_id'))
