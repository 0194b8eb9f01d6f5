"""HTTP plumbing shared by the API and the portal pages.

Routes parse the request, call one model method and render; this module
gives them the pool (404 where the modules are not activated), the
transaction, the patient or doctor session, CSRF checks and the JSON error
shape of the API contract.
"""
import datetime as dt
import json
import logging
import threading
import time
from contextlib import contextmanager
from functools import wraps
from http import HTTPStatus

from werkzeug.exceptions import HTTPException, ServiceUnavailable

from trytond import backend
from trytond.config import config
from trytond.exceptions import UserError, UserWarning
from trytond.i18n import gettext
from trytond.pool import Pool
from trytond.protocols.wrappers import Response, with_transaction
from trytond.transaction import Transaction
from trytond.wsgi import app

from .exceptions import Forbidden, InvalidInput, PortalError, Unauthorized
from .opd import read_committed
from .upload import MIME_TYPES

logger = logging.getLogger(__name__)

API = '/<database_name>/opd/api/v1'
PORTAL = '/<database_name>/opd'
PATIENT_COOKIE = 'sehat_session'
STAFF_COOKIE = 'sehat_staff'
LANG_COOKIE = 'sehat_lang'
LANGUAGES = ('en', 'hi')
UPLOAD_MAX_REQUEST = 20 * 1024 * 1024
_ERROR_CODES = {
    400: 'bad_request', 401: 'unauthorized', 403: 'forbidden',
    404: 'not_found', 405: 'method_not_allowed', 409: 'conflict',
    411: 'length_required', 413: 'too_large', 415: 'unsupported_media',
    422: 'invalid', 429: 'rate_limited', 503: 'unavailable',
    }
MODEL = 'sehat.opd'
# seconds a client waits before trying again when the database is away
RETRY_AFTER = 3
UNAVAILABLE = ('The service is briefly unavailable. '
    'Please try again in a few seconds.')


def database_unavailable(exception):
    """Whether `exception` means the database could not serve the request:
    restarting or unreachable (the connection failed or was cut), out of
    connections, or busy beyond trytond's retries. Such a request may
    succeed when tried again: 503, not 500."""
    errors = [backend.DatabaseOperationalError]
    if backend.name == 'postgresql':
        from psycopg2 import InterfaceError
        from psycopg2.pool import PoolError
        errors += [InterfaceError, PoolError]
    return isinstance(exception, tuple(errors))


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached to load the pool: 503 with
    Retry-After, in the API's JSON shape under the API prefix."""

    def __init__(self):
        super().__init__(retry_after=RETRY_AFTER)

    def get_response(self, environ=None, scope=None):
        if environ and '/opd/api/' in environ.get('PATH_INFO', ''):
            return unavailable_response()
        return super().get_response(environ, scope)


def unavailable_response(request=None):
    "503 with Retry-After: try again in a few seconds (the API's shape)."
    from .portal import translator  # portal imports this module
    language = request_language(request) if request is not None else 'en'
    response = error_response(503, 'unavailable',
        translator(language)(UNAVAILABLE))
    response.headers['Retry-After'] = str(RETRY_AFTER)
    return response


def get_pool(database_name):
    """The pool of `database_name`, or None when it does not exist or does
    not have SeHAT OPD activated (the routes are global to the server)."""
    try:
        database_list = Pool.database_list()
        pool = Pool(database_name)
        if database_name not in database_list:
            with Transaction().start(database_name, 0, readonly=True):
                pool.init()
        pool.get(MODEL)
        _ask_backend_once(database_name)
    except Exception as exception:
        if database_unavailable(exception) and server_down():
            logger.warning('database %r unavailable: %s', database_name,
                exception)
            raise DatabaseUnavailable()
        logger.debug('no SeHAT OPD in %r', database_name, exc_info=True)
        return None
    return pool


_asked = set()

# What trytond's PostgreSQL backend learns on first use with a connection of
# its own, then keeps (server version, search path, functions).
_BACKEND_QUESTIONS = ['current_user', 'search_path', 'has_returning',
    'get_select_for_skip_locked', 'has_unaccent', 'has_unaccent_indexable',
    'has_similarity', 'has_search_full_text']


def _ask_backend_once(database_name):
    """Ask the backend's questions before any transaction of the process: a
    request asking first, from inside its transaction, needs a second
    connection; when a burst of requests holds all of the pool's, it waits
    for it forever (holding the queue's lock: every other one waits too)."""
    if database_name in _asked or backend.name != 'postgresql':
        return
    database = backend.Database(database_name)
    for question in _BACKEND_QUESTIONS:
        answer = getattr(database, question)  # properties ask when read
        if callable(answer):
            answer()
    _asked.add(database_name)


def server_down():
    """Whether the database server refuses connections (down, restarting,
    full), asked when a database's pool cannot be loaded: a server that
    answers has no such database (404), one that does not may have it
    (503). SQLite has no server."""
    if backend.name != 'postgresql':
        return False
    import psycopg2
    from trytond.backend.postgresql.database import _default_name
    params = backend.Database._connection_params(_default_name)
    try:
        psycopg2.connect(connect_timeout=2, **params).close()
    except psycopg2.Error:
        return True
    return False


def json_response(data, status=200, headers=None):
    response = Response(
        json.dumps(data, default=_json_default, ensure_ascii=False),
        status=status, content_type='application/json; charset=utf-8',
        headers=headers)
    response.headers['Cache-Control'] = 'no-store'
    return response


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    raise TypeError(type(value))


def error_response(status, code, message, field=None):
    error = {'code': code, 'message': message}
    if field:
        error['field'] = field
    return json_response({'error': error}, status=status)


def render_error(exception, request=None):
    """The JSON answer of an exception: 4xx for what the client did wrong,
    503 when the database is away (`request` gives the language)."""
    if database_unavailable(exception):
        logger.warning('database unavailable: %s', exception)
        return unavailable_response(request)
    if isinstance(exception, DatabaseUnavailable):
        return unavailable_response(request)
    if isinstance(exception, PortalError):
        return error_response(exception.status, exception.error_code,
            exception.message, exception.field)
    if isinstance(exception, (UserError, UserWarning)):
        return error_response(400, 'rejected', exception.message)
    if isinstance(exception, HTTPException):
        status = exception.code or 400
        return error_response(status, _ERROR_CODES.get(status, 'error'),
            exception.description or HTTPStatus(status).phrase)
    logger.error('unexpected error', exc_info=exception)
    return error_response(
        500, 'server_error', 'The service could not complete the request.')


def request_language(request):
    "The portal language: ?lang=, then the cookie, then the browser."
    lang = request.args.get('lang') or request.cookies.get(LANG_COOKIE)
    if lang in LANGUAGES:
        return lang
    best = request.accept_languages.best_match(LANGUAGES)
    return best or 'en'


# what answers about a mobile take at least (see level_timing)
TIMING_FLOOR = 0.1


def level_timing(started, floor=TIMING_FLOOR):
    """Answer no sooner than `floor` seconds after `started` (a
    time.monotonic() value), so that the time taken does not tell a
    registered mobile from an unknown one."""
    left = floor - (time.monotonic() - started)
    if left > 0:
        time.sleep(left)


def client_address(request):
    return request.remote_addr or 'unknown'


def read_json(request):
    """The JSON object of the request body; 400 when it is not one.

    A multipart form (uploads) is returned as a dict of its fields.
    """
    if request.mimetype == 'multipart/form-data' or (
            request.mimetype == 'application/x-www-form-urlencoded'):
        value = {k: request.form.get(k) for k in request.form.keys()}
    else:
        data = request.get_data(cache=True)
        if not data:
            return {}
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidInput(
                gettext('sehat_opd.msg_request_json'), field=None)
        if not isinstance(value, dict):
            raise InvalidInput(
                gettext('sehat_opd.msg_request_json'), field=None)
    check_text(value)
    return value


def check_text(value, field=None):
    """Refuse NUL characters and lone surrogates anywhere in the input: the
    database cannot store them, and no real text has them."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(key, key)
            check_text(item, key if field is None else field)
    elif isinstance(value, list):
        for item in value:
            check_text(item, field)
    elif isinstance(value, str):
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            bad = True
        else:
            bad = '\x00' in value
        if bad:
            raise InvalidInput(
                gettext('sehat_opd.msg_request_text'), field=field)


def read_files(request, name='files'):
    "Uploaded files as (filename, bytes) pairs."
    files = []
    for storage in request.files.getlist(name):
        data = storage.read()
        if not storage.filename and not data:
            # what a browser sends for a file input left empty
            continue
        files.append((storage.filename, data))
    return files


def session_key(request, cookie):
    "The session key of the request: bearer header first, then cookie."
    header = request.headers.get('Authorization', '')
    if header[:7].lower() == 'bearer ':
        return header[7:].strip(), 'bearer'
    key = request.cookies.get(cookie)
    if key:
        return key, 'cookie'
    return None, None


def check_csrf(request, session, via):
    "Cookie-authenticated writes must echo the session's CSRF token."
    if via != 'cookie' or request.method in {'GET', 'HEAD', 'OPTIONS'}:
        return
    sent = request.headers.get('X-CSRF-Token') or request.form.get(
        'csrf_token')
    if not sent or sent != session.csrf:
        raise Forbidden(gettext('sehat_opd.msg_csrf'))


def authenticate(request, pool, kind):
    """Check the session of the request for `kind` ('patient' or 'user').

    Return the SessionInfo; raise Unauthorized (401) without one.
    """
    Session = pool.get('sehat.opd.session')
    cookie = PATIENT_COOKIE if kind == 'patient' else STAFF_COOKIE
    key, via = session_key(request, cookie)
    session = Session.check(key, kind) if key else None
    if session is None:
        raise Unauthorized(gettext('sehat_opd.msg_session_required'))
    check_csrf(request, session, via)
    return session


def session_cookie(response, request, name, key, max_age=None):
    "Set a session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS."
    database = request.view_args.get('database_name', '')
    response.set_cookie(
        name, key, max_age=max_age, path='/%s/opd' % database,
        httponly=True, samesite='Lax', secure=request.scheme == 'https')


def clear_cookie(response, request, name):
    database = request.view_args.get('database_name', '')
    response.delete_cookie(name, path='/%s/opd' % database,
        httponly=True, samesite='Lax', secure=request.scheme == 'https')


# what the OpenAPI document describes, filled by @api and @documented (see
# openapi.py)
ROUTES = []
JSON = 'application/json'
# what a stored health record is served as (file_response)
FILE_TYPES = sorted(set(MIME_TYPES.values()))
# the query parameters of the long polls (see live.py): any other version
# than the current one answers at once
LONG_POLL = {
    'version': {'type': 'string'},
    'cursor': {'type': 'string'},
    }
# an id to start after; below 0 counts as 0
AFTER = {'type': 'integer'}


def documented(path, methods=('GET',), auth=None, body=None, success=None,
        tag=None, query=None, produces=JSON, security=None, params=None):
    """Describe a route in the OpenAPI document without registering it:
    for routes that need more than @api gives (long polls, which must not
    hold a transaction while they wait). See @api for the arguments."""
    def decorator(func):
        for method in methods:
            ROUTES.append({
                    'path': path, 'method': method.lower(), 'auth': auth,
                    'doc': func.__doc__ or func.__name__, 'body': body,
                    'success': success or 200,
                    'tag': tag or path.strip('/').split('/')[0],
                    'name': func.__name__, 'query': query or {},
                    'params': params or {}, 'produces': produces,
                    'security': security,
                    })
        return func
    return decorator


def api(path, methods=('GET',), auth=None, max_size=None, readonly=False,
        floor=None, locking=False, body=None, success=None, tag=None,
        query=None, produces=JSON, security=None, params=None):
    """Register an API v1 route.

    The function gets (request, pool, session, **url values) inside a
    transaction, with the patient's language, and returns a Response, a
    JSON-able value, or a PortalError *instance*: that error is answered
    after the transaction is committed (for failures that must be counted,
    such as a wrong OTP). With `floor`, no answer leaves sooner than that
    many seconds after the request came, commit and notifications included
    (see level_timing). `locking` routes take row locks on the queue's
    shared rows and run at READ COMMITTED (see opd.read_committed).

    `body` is the JSON schema of the request body (multipart when it has
    binary properties), `success` the success status, `tag` the OpenAPI
    group, `query` the JSON schemas of the query parameters by name,
    `params` those of path parameters that say more than their converter,
    `produces` the content type(s) of the success answer and `security`
    the name of a security scheme other than the sessions' (the SMS
    webhook's secret): they document the route in /openapi.json.
    """
    def decorator(func):
        documented(path, methods, auth=auth, body=body, success=success,
            tag=tag, query=query, produces=produces, security=security,
            params=params)(func)
        inner = with_transaction(readonly=readonly)(
            _with_session(func, auth, locking))

        @wraps(func)
        def endpoint(request, database_name, **kwargs):
            started = time.monotonic()
            try:
                pool = get_pool(database_name)
                if pool is None:
                    return error_response(404, 'not_found', 'Not Found')
                result = inner(request, pool, **kwargs)
            except Exception as exception:
                result = exception
            if floor:
                level_timing(started, floor)
            if isinstance(result, Exception):
                return render_error(result, request)
            if isinstance(result, Response):
                return result
            return json_response(result)
        if max_size:
            endpoint.max_request_size = max_size
        app.route(API + path, methods=list(methods))(endpoint)
        return func
    return decorator


def _with_session(func, auth, locking=False):
    @wraps(func)
    def wrapper(request, pool, **kwargs):
        if locking:
            read_committed()
        transaction = Transaction()
        language = request_language(request)
        with transaction.set_context(language=language):
            session = authenticate(request, pool, auth) if auth else None
            return func(request, pool, session, **kwargs)
    return wrapper


def file_response(attachment):
    """Serve a stored health record: always as a download, with the type
    decided at upload, never sniffed or rendered by the browser."""
    response = Response(attachment.data, status=200,
        content_type=attachment.sehat_mime or 'application/octet-stream')
    response.headers['Content-Disposition'] = (
        'attachment; filename="%s"' % attachment.name)
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['Content-Security-Policy'] = "default-src 'none'; sandbox"
    response.headers['Cache-Control'] = 'private, no-store'
    return response


# Every waiting room of a queue wakes at the same change, and each reads
# its status at once: those reads take turns here, for half of the
# connections of the process, so that the other requests (a doctor calling
# the next patient, a patient taking a token) keep the other half rather
# than waiting behind hundreds of status reads for a connection (see
# connections.py).
_poll_slots = None
_poll_slots_lock = threading.Lock()


@contextmanager
def poll_slot():
    "Hold one of the database slots of the long polls' reads."
    global _poll_slots
    if _poll_slots is None:
        with _poll_slots_lock:
            if _poll_slots is None:
                maxconn = config.getint('database', 'maxconn', default=64)
                _poll_slots = threading.BoundedSemaphore(
                    max(1, maxconn // 2))
    with _poll_slots:
        yield


def database_has_bus(database_name):
    return backend.Database(database_name).has_channel()
