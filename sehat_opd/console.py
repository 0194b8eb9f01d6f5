"""Doctor console HTTP API (the console page's JSON calls).

Doctors log in with their back-office (Tryton) credentials; the session
rules are the portal's. Every token id is checked against the OPDs the
doctor serves.
"""
import time

from trytond.exceptions import RateLimitException
from trytond.i18n import gettext
from werkzeug.utils import redirect

from trytond.protocols.wrappers import Response
from trytond.transaction import Transaction
from trytond.wsgi import app

from . import web
from .exceptions import (
    Forbidden, InvalidInput, NotFound, PortalError, TooManyRequests,
    Unauthorized)
from .live import queue_channel, token_channel
from .portal import current_session, page, render
from .web import api, json_response, read_files, read_json

DOCTOR = '/doctor'
# how often the open console tells that the doctor is still there; the
# presence timeout (settings, 2 minutes by default) allows several misses
HEARTBEAT_SECONDS = 20
# a long poll goes on waiting after wake-ups that change nothing for this
# long (each wait on the bus lasts up to [bus] long_polling_timeout)
WAIT_SECONDS = 20


def doctor_of(pool, session):
    """The health professional of the session's user; 403 for users who are
    not (or no longer) active SeHAT doctors."""
    HealthProfessional = pool.get('gnuhealth.healthprofessional')
    if not is_console_user(pool, session.owner):
        raise Forbidden(gettext('sehat_opd.msg_console_not_doctor'))
    healthprof = HealthProfessional.of_user(session.owner)
    if not healthprof:
        raise Forbidden(gettext('sehat_opd.msg_console_not_doctor'))
    return healthprof


def is_console_user(pool, user_id):
    """Whether the user is active and in the SeHAT Doctor group: a session
    opened before the user was deactivated or removed from the group stops
    working at once."""
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')
    users = User.search([('id', '=', user_id)])
    if not users:
        return False
    with Transaction().set_user(user_id):
        groups = User.get_groups()
    return ModelData.get_id('sehat_opd', 'group_sehat_doctor') in groups


def log_opened(pool, session, what, model_name, ids, request=None):
    "Add to the access log what the console showed the doctor."
    AccessLog = pool.get('sehat.opd.access_log')
    AccessLog.opened(what, model_name, ids, user_id=session.owner,
        address=web.client_address(request) if request else None)


def token_of(pool, healthprof, token_id):
    "A token of one of the doctor's OPDs; 404 for any other id."
    Token = pool.get('sehat.opd.token')
    tokens = Token.search([
            ('id', '=', token_id),
            ('opd', 'in', [o.id for o in healthprof.sehat_opds]),
            ])
    if not tokens:
        raise NotFound(gettext('sehat_opd.msg_console_token_unknown'))
    return tokens[0]


def start_session(request, pool, login_, password):
    """Check a doctor's Tryton credentials and open a console session.

    Return (session, key, health professional), or a PortalError
    *instance* to answer after commit: a failed attempt must count towards
    Tryton's login limit.
    """
    User = pool.get('res.user')
    Session = pool.get('sehat.opd.session')
    HealthProfessional = pool.get('gnuhealth.healthprofessional')
    if not isinstance(login_, str) or not isinstance(password, str) or (
            not login_ or not password):
        raise InvalidInput(gettext('sehat_opd.msg_console_login_fields'),
            field='login')
    try:
        user_id = User.get_login(login_, {'password': password})
    except RateLimitException:
        raise TooManyRequests(gettext('sehat_opd.msg_rate_limited'))
    if not user_id:
        return Unauthorized(gettext('sehat_opd.msg_console_login_failed'))
    healthprof = HealthProfessional.of_user(user_id)
    if not healthprof or not is_console_user(pool, user_id):
        return Forbidden(gettext('sehat_opd.msg_console_not_doctor'))
    new, key = Session.start(
        user=User(user_id), address=web.client_address(request))
    return new, key, healthprof


@api(DOCTOR + '/session', methods=['POST'])
def login(request, pool, session):
    data = read_json(request)
    result = start_session(
        request, pool, data.get('login'), data.get('password'))
    if isinstance(result, PortalError):
        return result
    new, key, healthprof = result
    response = json_response({
            'session': key,
            'csrf_token': new.csrf,
            'doctor': healthprof.portal_profile(),
            })
    web.session_cookie(response, request, web.STAFF_COOKIE, key)
    return response


@api(DOCTOR + '/session', methods=['DELETE'], auth='user')
def logout(request, pool, session):
    Session = pool.get('sehat.opd.session')
    Session.end(session.id)
    response = Response(status=204)
    web.clear_cookie(response, request, web.STAFF_COOKIE)
    return response


@api(DOCTOR + '/state', auth='user')
def state(request, pool, session):
    return console_state(pool, doctor_of(pool, session), session)


def console_state(pool, healthprof, session=None):
    "Everything the console shows, in one answer."
    Presence = pool.get('sehat.opd.presence')
    Token = pool.get('sehat.opd.token')
    Queue = pool.get('sehat.opd.queue')
    presence = Presence.of(healthprof, lock=False)
    opds = []
    for opd in healthprof.sehat_opds:
        if not opd.active:
            continue
        queues = Queue.search([
                ('opd', '=', opd.id), ('date', '=', opd.today())])
        opds.append({
                'id': opd.id, 'name': opd.rec_name, 'open_now': opd.is_open(),
                'waiting': Token.waiting_count(queues[0]) if queues else 0,
                'version': queues[0].version if queues else 0,
                'queue': queues[0].id if queues else None,
                })
    queue = Token.console_queue(presence.opd) if presence.opd else []
    current = presence.current_token
    if current and session:
        log_opened(pool, session, 'console', 'sehat.opd.token', [current.id])
    return {
        'doctor': healthprof.portal_profile(),
        'csrf_token': session.csrf if session else None,
        'online': bool(presence.online),
        'busy': bool(current),
        'opd': presence.opd.id if presence.opd else None,
        'heartbeat_seconds': HEARTBEAT_SECONDS,
        'opds': opds,
        'queue': queue,
        'current': current.console_detail() if current else None,
        'live': web.database_has_bus(Transaction().database.name),
        }


@api(DOCTOR + '/online', methods=['POST'], auth='user',
    locking=True)
def go_online(request, pool, session):
    OPD = pool.get('sehat.opd')
    Presence = pool.get('sehat.opd.presence')
    healthprof = doctor_of(pool, session)
    opd = OPD.get_portal(read_json(request).get('opd'))
    Presence.of(healthprof).go_online(opd)
    return console_state(pool, healthprof, session)


@api(DOCTOR + '/offline', methods=['POST'], auth='user',
    locking=True)
def go_offline(request, pool, session):
    Presence = pool.get('sehat.opd.presence')
    healthprof = doctor_of(pool, session)
    Presence.of(healthprof).go_offline()
    return console_state(pool, healthprof, session)


@api(DOCTOR + '/heartbeat', methods=['POST'], auth='user',
    locking=True)
def heartbeat(request, pool, session):
    Presence = pool.get('sehat.opd.presence')
    healthprof = doctor_of(pool, session)
    presence = Presence.of(healthprof)
    if presence.online:
        presence.heartbeat()
    return console_state(pool, healthprof, session)


@api(DOCTOR + '/call-next', methods=['POST'], auth='user',
    locking=True)
def call_next(request, pool, session):
    Presence = pool.get('sehat.opd.presence')
    healthprof = doctor_of(pool, session)
    token = Presence.of(healthprof).call_next()
    return {'token': token.console_summary()}


@api(DOCTOR + '/tokens/<int:token_id>', auth='user')
def token_detail(request, pool, session, token_id):
    healthprof = doctor_of(pool, session)
    token = token_of(pool, healthprof, token_id)
    log_opened(pool, session, 'console', 'sehat.opd.token', [token.id],
        request)
    return token.console_detail()


@api(DOCTOR + '/tokens/<int:token_id>/complete', methods=['POST'],
    auth='user', locking=True)
def complete(request, pool, session, token_id):
    Token = pool.get('sehat.opd.token')
    healthprof = doctor_of(pool, session)
    token = token_of(pool, healthprof, token_id)
    if token.state != 'in_consultation' or token.healthprof != healthprof:
        raise Forbidden(gettext('sehat_opd.msg_console_not_yours'))
    Token.complete([token])
    return {'state': 'completed'}


@api(DOCTOR + '/tokens/<int:token_id>/messages', auth='user',
    query={'after': web.AFTER})
def list_messages(request, pool, session, token_id):
    Message = pool.get('sehat.opd.message')
    token = token_of(pool, doctor_of(pool, session), token_id)
    try:
        after = int(request.args.get('after') or 0)
    except ValueError:
        raise InvalidInput(gettext('sehat_opd.msg_request_integer',
                name='after'), field='after')
    return {'messages': [m.describe() for m in Message.since(token, after)]}


@api(DOCTOR + '/tokens/<int:token_id>/messages', methods=['POST'],
    auth='user', max_size=web.UPLOAD_MAX_REQUEST)
def post_message(request, pool, session, token_id):
    Message = pool.get('sehat.opd.message')
    healthprof = doctor_of(pool, session)
    token = token_of(pool, healthprof, token_id)
    if token.healthprof != healthprof:
        raise Forbidden(gettext('sehat_opd.msg_console_not_yours'))
    data = read_json(request)
    files = read_files(request, 'file')
    if len(files) > 1:
        raise InvalidInput(gettext('sehat_opd.msg_message_one_file'),
            field='file')
    message = Message.post(token, 'doctor', data.get('text'),
        files[0] if files else None, healthprof=healthprof)
    return json_response(message.describe(), status=201)


@api(DOCTOR + '/files/<int:file_id>', auth='user',
    produces=web.FILE_TYPES)
def download_file(request, pool, session, file_id):
    Attachment = pool.get('ir.attachment')
    Record = pool.get('sehat.opd.record')
    healthprof = doctor_of(pool, session)
    attachments = Attachment.search([
            ('id', '=', file_id), ('sehat_origin', '!=', None)])
    token = Record.token_of(attachments[0]) if attachments else None
    if not token or token.opd not in healthprof.sehat_opds:
        raise NotFound(gettext('sehat_opd.msg_file_not_found'))
    log_opened(pool, session, 'file', 'ir.attachment', [file_id], request)
    return web.file_response(attachments[0])


@web.documented(DOCTOR + '/wait', auth='user', query=web.LONG_POLL)
@app.route(web.API + DOCTOR + '/wait', methods=['GET'])
def wait(request, database_name):
    """Long-poll for the console: the OPD's queue and the current
    consultation. Answers at once when `version` differs."""
    pool = web.get_pool(database_name)
    if pool is None:
        return web.error_response(404, 'not_found', 'Not Found')
    Live = pool.get('sehat.opd.live')

    @web.with_transaction(readonly=False)
    def transaction(request, pool):
        with Transaction().set_context(
                language=web.request_language(request)):
            session = web.authenticate(request, pool, 'user')
            return console_state(pool, doctor_of(pool, session), session)

    def read(request, pool):
        with web.poll_slot():
            return transaction(request, pool)

    since = time.time()
    try:
        current = read(request, pool)
    except Exception as exception:
        return web.render_error(exception, request)
    known = request.args.get('version')
    cursor = request.args.get('cursor') or None
    version = console_version(current)
    started = time.monotonic()
    # as the waiting room's (routes.wait_token): wake-ups about changes
    # already read do not end the wait
    while (current['live'] and known == version
            and time.monotonic() - started < WAIT_SECONDS):
        channels = [queue_channel(o['queue']) for o in current['opds']
            if o['queue']]
        if current['current']:
            channels.append(token_channel(current['current']['id']))
        cursor, changed = Live.wait(database_name, channels, cursor, since)
        if not changed:
            break
        since = time.time()
        try:
            current = read(request, pool)
        except Exception as exception:
            return web.render_error(exception, request)
        version = console_version(current)
    current['version'] = version
    current['cursor'] = cursor
    return json_response(current)


def console_version(state):
    "What changes when the console must redraw."
    current = state['current']
    return '%s:%s:%s:%s' % (
        state['online'], state['opd'],
        ','.join('%s' % o['version'] for o in state['opds']),
        '%s/%s/%s' % (current['id'], current['state'],
            current.get('messages', 0)) if current else '-')


# The console page ------------------------------------------------------

@page('/doctor/', methods=['GET', 'POST'])
def console_page(request, pool, patient_session):
    """The doctor console: log in with the back-office credentials, then
    the OPD's queue, presence and current patient (static/console.js
    drives it through the API above). `?token=<id>` focuses a patient."""
    HealthProfessional = pool.get('gnuhealth.healthprofessional')
    focus = request.values.get('token', '')
    focus = focus if focus.isdigit() else ''
    if request.method == 'POST':
        result = start_session(request, pool, request.form.get('login'),
            request.form.get('password'))
        if isinstance(result, PortalError):
            return render(request, 'console_login.html', status=result.status,
                error=result.message, login=request.form.get('login', ''),
                focus=focus)
        _, key, _ = result
        response = redirect('%s/doctor/%s' % (
                _portal(request), '?token=%s' % focus if focus else ''), 303)
        web.session_cookie(response, request, web.STAFF_COOKIE, key)
        return response
    session = current_session(request, pool, 'user')
    healthprof = session and HealthProfessional.of_user(session.owner)
    if not healthprof:
        return render(request, 'console_login.html', focus=focus)
    return render(request, 'console.html', csrf_token=session.csrf,
        state=console_state(pool, healthprof, session), focus=focus)


@page('/doctor/logout', methods=['POST'])
def console_logout(request, pool, patient_session):
    Session = pool.get('sehat.opd.session')
    session = current_session(request, pool, 'user')
    if session:
        Session.end(session.id)
    response = redirect(_portal(request) + '/doctor/', 303)
    web.clear_cookie(response, request, web.STAFF_COOKIE)
    return response


def _portal(request):
    return '/%s/opd' % request.view_args['database_name']
