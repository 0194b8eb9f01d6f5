"""HTTP API of the video consultation (patient API v1 and doctor console).

- POST /tokens/current/join -> {domain, room, jwt, script, options}
- POST /tokens/current/video {event} -> the consultation's status
- GET  /tokens/current/consultation -> status and new chat lines (long poll)
- the same under /doctor/tokens/<id>/... for the doctor of the token, plus
  POST /doctor/tokens/<id>/start (continue without video).

Routes parse, call one model method and render; ownership is checked on
every token: the patient's own, or a token the doctor was called for.
"""
import time

from trytond.i18n import gettext
from trytond.transaction import Transaction
from trytond.wsgi import app

from trytond.modules.sehat_opd import web
from trytond.modules.sehat_opd.console import doctor_of, token_of
from trytond.modules.sehat_opd.exceptions import InvalidInput, NotFound
from trytond.modules.sehat_opd.live import queue_channel, token_channel
from trytond.modules.sehat_opd.web import api, read_json

from .token import EVENTS, FINISHED_STATES

DOCTOR = '/doctor/tokens/<int:token_id>'
# a long poll goes on waiting after irrelevant wake-ups for this long
WAIT_SECONDS = 20
# what the routes take, for the OpenAPI document
EVENT = {'type': 'object', 'required': ['event'],
    'properties': {'event': {'enum': list(EVENTS)}}}
CONSULTATION = dict(web.LONG_POLL, after=web.AFTER)


def has_video(pool):
    "Whether sehat_opd_video is activated in the pool's database."
    return hasattr(pool.get('sehat.opd.token'), 'video_join')


def require_video(pool):
    if not has_video(pool):
        raise NotFound('Not Found')


def patient_token(pool, session, token_id=None):
    """The patient's token: `token_id` if it is theirs (finished or not),
    else the active one. Another patient's id is 'not found'."""
    Token = pool.get('sehat.opd.token')
    require_video(pool)
    if token_id:
        tokens = Token.search([
                ('id', '=', token_id), ('patient', '=', session.owner)])
    else:
        tokens = Token.search([
                ('patient', '=', session.owner),
                ], order=[('id', 'DESC')], limit=1)
    if not tokens:
        raise NotFound(gettext('sehat_opd.msg_token_none'))
    return tokens[0]


def doctor_token(pool, session, token_id):
    "The doctor and one token of their OPDs (404 for any other)."
    require_video(pool)
    healthprof = doctor_of(pool, session)
    return healthprof, token_of(pool, healthprof, token_id)


def read_event(request):
    event = read_json(request).get('event')
    if not isinstance(event, str):
        raise InvalidInput(gettext('sehat_opd_video.msg_video_event_unknown',
                event='-'), field='event')
    return event


# Patient -----------------------------------------------------------------

@api('/tokens/current/join', methods=['POST'], auth='patient')
def join(request, pool, session):
    """A token for the video room of the patient's current consultation;
    the latest token of the patient decides (a finished one is 409)."""
    token = patient_token(pool, session)
    return token.video_join('patient', language=web.request_language(request))


# the events that start the consultation move the queue: they lock its row
# at READ COMMITTED, as every route that changes the queue does (locking)
@api('/tokens/current/video', methods=['POST'], auth='patient', body=EVENT,
    locking=True)
def patient_event(request, pool, session):
    token = patient_token(pool, session)
    return token.video_event('patient', read_event(request))


@web.documented('/tokens/current/consultation', auth='patient',
    query=dict(CONSULTATION, token=web.AFTER))
@app.route(web.API + '/tokens/current/consultation', methods=['GET'])
def patient_consultation(request, database_name):
    """Long poll of the patient's consultation page: the status and the
    chat lines after `after`; waits on the bus while `version` is what the
    page shows. `token` names the consultation (it stays readable once
    over, so the page learns it is over)."""
    def find(pool, session):
        return patient_token(pool, session, _int_arg(request, 'token'))
    return _long_poll(request, database_name, 'patient', find)


# Doctor ------------------------------------------------------------------

@api(DOCTOR + '/join', methods=['POST'], auth='user')
def doctor_join(request, pool, session, token_id):
    healthprof, token = doctor_token(pool, session, token_id)
    return token.video_join('doctor', healthprof,
        language=web.request_language(request))


@api(DOCTOR + '/video', methods=['POST'], auth='user', body=EVENT,
    locking=True)
def doctor_event(request, pool, session, token_id):
    healthprof, token = doctor_token(pool, session, token_id)
    token.check_video_doctor(healthprof)
    return token.video_event('doctor', read_event(request))


@api(DOCTOR + '/start', methods=['POST'], auth='user', locking=True)
def doctor_start(request, pool, session, token_id):
    "Continue the consultation without video (chat or phone)."
    Token = pool.get('sehat.opd.token')
    healthprof, token = doctor_token(pool, session, token_id)
    token.check_video_doctor(healthprof)
    Token.start_without_video([token])
    return Token(token.id).video_status()


@web.documented(DOCTOR + '/consultation', auth='user', query=CONSULTATION)
@app.route(web.API + DOCTOR + '/consultation', methods=['GET'])
def doctor_consultation(request, database_name, token_id):
    "Long poll of the doctor's consultation page (see the patient's)."
    def find(pool, session):
        return doctor_token(pool, session, token_id)[1]
    return _long_poll(request, database_name, 'user', find)


# Long poll ---------------------------------------------------------------

def _long_poll(request, database_name, kind, find):
    pool = web.get_pool(database_name)
    if pool is None:
        return web.error_response(404, 'not_found', 'Not Found')
    Live = pool.get('sehat.opd.live')

    @web.with_transaction(readonly=False)
    def transaction(request, pool):
        Message = pool.get('sehat.opd.message')
        with Transaction().set_context(
                language=web.request_language(request)):
            session = web.authenticate(request, pool, kind)
            token = find(pool, session)
            status = token.video_status()
            messages = Message.since(token, _int_arg(request, 'after'))
            last = Message.search([('token', '=', token.id)],
                order=[('id', 'DESC')], limit=1)
            return {
                'token': status,
                'queue': token.queue.id,
                'messages': [m.describe() for m in messages],
                'version': '%s:%s:%s:%s' % (status['state'],
                    int(status['patient_in']), int(status['doctor_in']),
                    last[0].id if last else 0),
                'live': web.database_has_bus(database_name),
                }

    def read(request, pool):
        with web.poll_slot():
            return transaction(request, pool)

    since = time.time()
    try:
        state = read(request, pool)
    except Exception as exception:
        return web.render_error(exception, request)
    known = request.args.get('version')
    cursor = request.args.get('cursor') or None
    channels = [token_channel(state['token']['id']),
        queue_channel(state['queue'])]
    started = time.monotonic()
    # Wake-ups that change nothing the page shows (other patients of the
    # queue, messages the bus still caches) do not end the wait.
    while (state['live'] and known == state['version']
            and not state['messages']
            and state['token']['state'] not in FINISHED_STATES
            and time.monotonic() - started < WAIT_SECONDS):
        cursor, changed = Live.wait(database_name, channels, cursor, since)
        if not changed:
            break
        since = time.time()
        try:
            state = read(request, pool)
        except Exception as exception:
            return web.render_error(exception, request)
    del state['queue']
    state['cursor'] = cursor
    return web.json_response(state)


def _int_arg(request, name):
    value = request.args.get(name)
    if value in (None, ''):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        raise InvalidInput(gettext('sehat_opd.msg_request_integer',
                name=name), field=name)
