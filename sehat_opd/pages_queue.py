"""Patient pages of the queue: take a token, then wait in the waiting room.

The forms post back to the pages and work without JavaScript; the waiting
room's script (static/waiting.js) makes it live through the API's long
poll. Each handler calls the same model methods as the JSON API.
"""
import datetime as dt

from werkzeug.utils import redirect

from trytond.i18n import gettext
from trytond.transaction import Transaction

from . import web
from .exceptions import NotFound, PortalError
from .portal import page, render

ERROR_FIELDS = {'opd', 'complaint', 'files'}


def _patient(pool, session):
    return pool.get('gnuhealth.patient')(session.owner)


def _current(pool, session):
    "The patient's active token; 404 without one."
    Token = pool.get('sehat.opd.token')
    token = Token.current(_patient(pool, session))
    if token is None:
        raise NotFound(gettext('sehat_opd.msg_token_none'))
    return token


def _base(request):
    return '/%s/opd' % request.view_args['database_name']


def _field_errors(error):
    "{field: message} of a refused request, for the form to show."
    field = error.field if error.field in ERROR_FIELDS else 'form'
    return {field: error.message}


@page('/token', methods=['GET', 'POST'], patient=True, locking=True,
    max_size=web.UPLOAD_MAX_REQUEST)
def take_token(request, pool, session):
    "Choose an OPD, say what is wrong, attach records: take a token."
    OPD = pool.get('sehat.opd')
    Token = pool.get('sehat.opd.token')
    patient = _patient(pool, session)
    errors = {}
    values = {'opd': request.args.get('opd', ''), 'complaint': ''}
    if request.method == 'POST':
        values = {
            'opd': request.form.get('opd', ''),
            'complaint': request.form.get('complaint', ''),
            }
        try:
            opd = OPD.get_portal(values['opd'] or None)
            Token.issue(patient, opd, values['complaint'],
                web.read_files(request))
        except PortalError as error:
            # nothing of the refused request is kept
            Transaction().rollback()
            errors = _field_errors(error)
        else:
            return redirect(_base(request) + '/waiting', 303)
    Token.expire_stale(patient=patient)
    # open ones first: the others only say when they open
    opds = sorted(OPD.portal_list(), key=lambda o: not o['open_now'])
    for opd in opds:
        # shown in the OPD's own time, as its hours are
        opd['next_opening_local'] = dt.datetime.fromisoformat(
            opd['next_opening']) if opd['next_opening'] else None
    return render(request, 'token.html',
        status=422 if errors else 200,
        opds=opds, current=Token.current(patient),
        errors=errors, values=values, patient=patient,
        csrf_token=session.csrf)


@page('/waiting', patient=True)
def waiting(request, pool, session):
    "The waiting room of the patient's token."
    return _waiting_room(request, pool, session)


def _waiting_room(request, pool, session, error=None, status_code=200):
    Token = pool.get('sehat.opd.token')
    Record = pool.get('sehat.opd.record')
    Configuration = pool.get('sehat.opd.configuration')
    patient = _patient(pool, session)
    status = Token.waiting_status(patient.id)
    files, last = [], None
    if status:
        token = Token(status['token_id'])
        files = [Record.describe(a) for a in Record.list(token)]
        more = Configuration(1).upload_max_files - Record.count(
            token, 'waiting')
    else:
        more = 0
        tokens = Token.search([('patient', '=', patient.id)],
            order=[('id', 'DESC')], limit=1)
        last = tokens[0] if tokens else None
    return render(request, 'waiting.html', status=status_code,
        token=status, files=files, more_files=max(more, 0), last=last,
        error=error, patient=patient, csrf_token=session.csrf)


@page('/waiting/call', methods=['POST'], patient=True, locking=True)
def answer_call(request, pool, session):
    "Call Now, without JavaScript."
    try:
        token = _current(pool, session)
        token.answer()
    except PortalError as error:
        Transaction().rollback()
        return _waiting_room(request, pool, session, error=error.message,
            status_code=error.status)
    return redirect(token.consultation_url()
        or _base(request) + '/waiting', 303)


@page('/waiting/cancel', methods=['POST'], patient=True, locking=True)
def cancel_token(request, pool, session):
    "Give up the token (from the waiting room's confirmation)."
    try:
        _current(pool, session).cancel_by_patient()
    except PortalError as error:
        Transaction().rollback()
        return _waiting_room(request, pool, session, error=error.message,
            status_code=error.status)
    return redirect(_base(request) + '/waiting', 303)


@page('/waiting/files', methods=['POST'], patient=True,
    max_size=web.UPLOAD_MAX_REQUEST)
def add_files(request, pool, session):
    "Add health records to the token while waiting."
    try:
        _current(pool, session).add_records(web.read_files(request))
    except PortalError as error:
        Transaction().rollback()
        return _waiting_room(request, pool, session, error=error.message,
            status_code=error.status)
    return redirect(_base(request) + '/waiting#records', 303)

