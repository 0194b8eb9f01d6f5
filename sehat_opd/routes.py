"""Patient HTTP API v1 (see doc/design.rst and /opd/api/v1/openapi.json).

Each route parses the request, calls one model method and renders JSON.
Every id a route receives is checked against the session's patient.
"""
import time

from trytond.i18n import gettext
from trytond.protocols.wrappers import Response
from trytond.transaction import Transaction
from trytond.wsgi import app

from . import web
from .exceptions import InvalidInput, NotFound
from .live import queue_channel, token_channel
from .web import api, json_response, read_files, read_json

# a long poll goes on waiting after wake-ups that change nothing for this
# long (each wait on the bus lasts up to [bus] long_polling_timeout)
WAIT_SECONDS = 20
# while a call waits for its answer, the waiting room's status is read again
# this often (a missed window is settled by the read that finds it passed)
CALL_SECONDS = 2


def _patient(pool, session):
    return pool.get('gnuhealth.patient')(session.owner)


def _current_token(pool, patient):
    Token = pool.get('sehat.opd.token')
    Token.expire_stale(patient=patient)
    token = Token.current(patient)
    if not token:
        raise NotFound(gettext('sehat_opd.msg_token_none'))
    return token


@api('/health')
def health(request, pool, session):
    "Liveness with one database read (also the benchmarks' floor route)."
    Configuration = pool.get('sehat.opd.configuration')
    return {'status': 'ok', 'call_window': Configuration(1).call_window}


@web.documented('/openapi.json')
@app.route(web.API + '/openapi.json', methods=['GET'])
def openapi_document(request, database_name):
    "The OpenAPI 3.1 document of this API."
    from .openapi import document
    if web.get_pool(database_name) is None:
        return web.error_response(404, 'not_found', 'Not Found')
    return json_response(document(web.ROUTES, '%s%s/opd/api/v1' % (
                request.host_url.rstrip('/'), '/' + database_name)))


# Identity --------------------------------------------------------------

@api('/otp', methods=['POST'], floor=web.TIMING_FLOOR)
def request_otp(request, pool, session):
    OTP = pool.get('sehat.opd.otp')
    data = read_json(request)
    otp, resend_after, expires_in = OTP.request(
        data.get('mobile'), data.get('purpose', 'register'),
        web.client_address(request))
    return json_response({
            'otp_id': otp.id,
            'expires_in': expires_in,
            'resend_after': resend_after,
            }, status=202)


@api('/otp/verify', methods=['POST'])
def verify_otp(request, pool, session):
    OTP = pool.get('sehat.opd.otp')
    Patient = pool.get('gnuhealth.patient')
    data = read_json(request)
    otp, key, error = OTP.verify(data.get('otp_id'), data.get('code'))
    if error:
        return error
    answer = {'verification': key, 'purpose': otp.purpose}
    if otp.purpose == 'register':
        # told only to whoever proved they hold the mobile, so that the
        # app can point to login before the form is filled in
        answer['registered'] = bool(Patient.by_mobile(otp.mobile))
    return answer


@api('/regions', query={'state': {'type': 'string', 'maxLength': 10}})
def regions(request, pool, session):
    """States with their districts and towns; `?state=<code>` answers only
    that state (what a form needs when the state is chosen)."""
    Subdivision = pool.get('country.subdivision')
    states = Subdivision.portal_regions(web.request_language(request))
    code = request.args.get('state')
    if code:
        states = [s for s in states if s['code'] == code.upper()]
        if not states:
            raise InvalidInput(gettext('sehat_opd.msg_registration_state'),
                field='state')
    return json_response({'states': states})


@api('/patients', methods=['POST'])
def register(request, pool, session):
    Patient = pool.get('gnuhealth.patient')
    patient = Patient.portal_register(
        read_json(request), web.request_language(request))
    return json_response({'patient_id': patient.patient_code}, status=201)


@api('/session', methods=['POST'])
def login(request, pool, session):
    Session = pool.get('sehat.opd.session')
    data = read_json(request)
    if data.get('verification'):
        patient = Session.login_verified(data['verification'])
    elif data.get('mobile') is not None or data.get('token_number'):
        patient, error = Session.login_with_token(
            data.get('mobile'), data.get('token_number'),
            web.client_address(request))
        if error:
            return error
    else:
        raise InvalidInput(
            gettext('sehat_opd.msg_login_fields'), field='mobile')
    # the session this browser had before is over: a login never reuses
    # or keeps a key that existed before it
    Session.end_key(request.cookies.get(web.PATIENT_COOKIE))
    new, key = Session.start(
        patient=patient, address=web.client_address(request))
    response = json_response({
            'session': key,
            'csrf_token': new.csrf,
            'patient_id': patient.patient_code,
            })
    web.session_cookie(response, request, web.PATIENT_COOKIE, key)
    return response


@api('/session', methods=['DELETE'], auth='patient')
def logout(request, pool, session):
    Session = pool.get('sehat.opd.session')
    Session.end(session.id)
    response = Response(status=204)
    web.clear_cookie(response, request, web.PATIENT_COOKIE)
    return response


@api('/me', auth='patient')
def me(request, pool, session):
    profile = _patient(pool, session).portal_profile()
    profile['csrf_token'] = session.csrf
    return profile


@api('/recover', methods=['POST'], floor=web.TIMING_FLOOR)
def recover(request, pool, session):
    Patient = pool.get('gnuhealth.patient')
    data = read_json(request)
    Patient.send_recovery(data.get('mobile'), web.client_address(request))
    return json_response({'status': 'accepted'}, status=202)


# OPDs and tokens -----------------------------------------------------

@api('/opds')
def opds(request, pool, session):
    OPD = pool.get('sehat.opd')
    return {'opds': OPD.portal_list()}


@api('/tokens', methods=['POST'], auth='patient',
    max_size=web.UPLOAD_MAX_REQUEST, locking=True)
def take_token(request, pool, session):
    OPD = pool.get('sehat.opd')
    Token = pool.get('sehat.opd.token')
    data = read_json(request)
    opd = OPD.get_portal(data.get('opd'))
    token = Token.issue(_patient(pool, session), opd, data.get('complaint'),
        read_files(request))
    return json_response({
            'token_number': token.number,
            'opd': {'id': opd.id, 'name': opd.rec_name},
            'date': token.date.isoformat(),
            'state': token.state,
            }, status=201)


@api('/tokens/current', auth='patient')
def current_token(request, pool, session):
    return _status(pool, session)


def _status(pool, session):
    "The patient's waiting-room status; 404 without an active token."
    Token = pool.get('sehat.opd.token')
    status = Token.waiting_status(session.owner)
    if status is None:
        raise NotFound(gettext('sehat_opd.msg_token_none'))
    return status


@web.documented('/tokens/current/wait', auth='patient',
    query=web.LONG_POLL)
@app.route(web.API + '/tokens/current/wait', methods=['GET'])
def wait_token(request, database_name):
    """Long-poll: answer when the waiting room changes, or after the bus'
    timeout. `version` is what the client shows; `cursor` the last bus
    message it saw. No transaction is held while waiting."""
    pool = web.get_pool(database_name)
    if pool is None:
        return web.error_response(404, 'not_found', 'Not Found')
    Live = pool.get('sehat.opd.live')
    since = time.time()
    try:
        status = _status_once(request, pool)
    except Exception as exception:
        return web.render_error(exception, request)
    live = status['live']
    known = request.args.get('version')
    cursor = request.args.get('cursor') or None
    if live and known == str(status['version']):
        channels = [queue_channel(status['queue_id']),
            token_channel(status['token_id'])]
        shown = _shown(status)
        started = time.monotonic()
        # a wake-up that changes nothing the page shows (a message about
        # a change the status read had already seen) does not end the wait
        while time.monotonic() - started < WAIT_SECONDS:
            left = status['call_seconds_left']
            if left is not None:
                # an unanswered call: when its window ends nothing may be
                # published for a while (the console settles it at its
                # next heartbeat), so look again, at the latest then
                time.sleep(min(CALL_SECONDS, left + 0.5))
            else:
                cursor, changed = Live.wait(database_name, channels,
                    cursor, since)
                if not changed:
                    break
            since = time.time()
            try:
                status = _status_once(request, pool)
            except Exception as exception:
                return web.render_error(exception, request)
            if _shown(status) != shown:
                break
    status['cursor'] = cursor
    return json_response(status)


def _shown(status):
    "What the waiting room shows of a status, but its running countdown."
    return {k: v for k, v in status.items() if k != 'call_seconds_left'}


def _status_once(request, pool):
    @web.with_transaction(readonly=False)
    def read(request, pool):
        with Transaction().set_context(
                language=web.request_language(request)):
            session = web.authenticate(request, pool, 'patient')
            return _status(pool, session)
    with web.poll_slot():
        return read(request, pool)


@api('/tokens/current/cancel', methods=['POST'], auth='patient',
    locking=True)
def cancel_token(request, pool, session):
    token = _current_token(pool, _patient(pool, session))
    token.cancel_by_patient()
    return {'token_number': token.number, 'state': 'cancelled'}


@api('/tokens/current/call', methods=['POST'], auth='patient',
    locking=True)
def answer_call(request, pool, session):
    """The patient answers Call Now. `next_url` is where to go next (the
    consultation page of the video module), null in the core."""
    token = _current_token(pool, _patient(pool, session))
    token.answer()
    return {
        'token_number': token.number,
        'state': token.state,
        'next_url': token.consultation_url(),
        }


@api('/tokens/current/files', methods=['POST'], auth='patient',
    max_size=web.UPLOAD_MAX_REQUEST)
def add_files(request, pool, session):
    Record = pool.get('sehat.opd.record')
    token = _current_token(pool, _patient(pool, session))
    stored = token.add_records(
        read_files(request, 'files') + read_files(request, 'file'))
    return json_response(
        {'files': [Record.describe(a) for a in stored]}, status=201)


@api('/tokens/current/files', auth='patient')
def list_files(request, pool, session):
    Record = pool.get('sehat.opd.record')
    token = _current_token(pool, _patient(pool, session))
    return {'files': [Record.describe(a) for a in Record.list(token)]}


@api('/tokens/current/messages', auth='patient',
    query={'after': web.AFTER})
def list_messages(request, pool, session):
    Message = pool.get('sehat.opd.message')
    token = _current_token(pool, _patient(pool, session))
    after = _int_arg(request, 'after')
    return {'messages': [m.describe() for m in Message.since(token, after)]}


@api('/tokens/current/messages', methods=['POST'], auth='patient',
    max_size=web.UPLOAD_MAX_REQUEST)
def post_message(request, pool, session):
    Message = pool.get('sehat.opd.message')
    token = _current_token(pool, _patient(pool, session))
    data = read_json(request)
    files = read_files(request, 'file')
    if len(files) > 1:
        raise InvalidInput(gettext('sehat_opd.msg_message_one_file'),
            field='file')
    message = Message.post(token, 'patient', data.get('text'),
        files[0] if files else None)
    return json_response(message.describe(), status=201)


@api('/files/<int:file_id>', auth='patient', produces=web.FILE_TYPES)
def download_file(request, pool, session, file_id):
    Record = pool.get('sehat.opd.record')
    attachment = Record.for_patient(file_id, session.owner)
    return web.file_response(attachment)


def _int_arg(request, name):
    value = request.args.get(name)
    if value in (None, ''):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        raise InvalidInput(gettext('sehat_opd.msg_request_integer',
                name=name), field=name)

