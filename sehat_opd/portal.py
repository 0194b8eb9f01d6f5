"""Server-rendered pages of the patient portal and the doctor console.

Pages are Jinja2 templates (templates/) translated with the gettext
catalogs of locale/portal/<lang>.po; forms work without JavaScript and post
back to the page, which calls the same model methods as the JSON API.
Other modules add their templates, static files and catalogs with
`register_module`.
"""
import mimetypes
import os
import secrets
import threading
import time
from functools import wraps
from pathlib import Path

import polib
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from werkzeug.utils import redirect, safe_join

from trytond.protocols.wrappers import Response, with_transaction
from trytond.transaction import Transaction
from trytond.wsgi import app

from . import tools, web
from .exceptions import PortalError
from .opd import read_committed

HERE = Path(__file__).resolve().parent
FORM_COOKIE = 'sehat_form'
_MODULES = {}
_CATALOGS = {}
_CATALOGS_LOCK = threading.Lock()
_LOADERS = []
ENV = Environment(
    loader=ChoiceLoader(_LOADERS),
    autoescape=select_autoescape(['html', 'xml']),
    trim_blocks=True, lstrip_blocks=True)


def register_module(name, directory):
    "Add a module's templates/, static/ and locale/portal/ to the portal."
    directory = Path(directory)
    _MODULES[name] = directory
    if (directory / 'templates').is_dir():
        _LOADERS.insert(0, FileSystemLoader(str(directory / 'templates')))
    with _CATALOGS_LOCK:
        _CATALOGS.clear()


register_module('sehat_opd', HERE)


def catalog(language):
    "msgid -> msgstr of every module's portal catalog for `language`."
    with _CATALOGS_LOCK:
        if language not in _CATALOGS:
            merged = {}
            for directory in _MODULES.values():
                path = directory / 'locale' / 'portal' / ('%s.po' % language)
                if path.exists():
                    for entry in polib.pofile(str(path)):
                        if entry.msgstr and not entry.obsolete:
                            merged[entry.msgid] = entry.msgstr
            _CATALOGS[language] = merged
        return _CATALOGS[language]


def translator(language):
    "The `_` of the templates: _('Text %(x)s', x=1)."
    messages = catalog(language)

    def _(text, **values):
        text = messages.get(text, text)
        return text % values if values else text
    return _


def render(request, template, status=200, **context):
    "Render a page with the common context (language, CSRF, session)."
    language = web.request_language(request)
    form_token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
    database = request.view_args.get('database_name')
    context.setdefault('patient', None)
    context.update({
            '_': translator(language),
            'lang': language,
            'other_lang': 'hi' if language == 'en' else 'en',
            'form_token': form_token,
            'base': '/%s/opd' % database,
            'api': '/%s/opd/api/v1' % database,
            'static': '/%s/opd/static' % database,
            'path': request.path,
            'development': tools.is_development(),
            })
    body = ENV.get_template(template).render(**context)
    response = Response(body, status=status,
        content_type='text/html; charset=utf-8')
    secure_headers(response, context.get('csp_extra'))
    if request.cookies.get(FORM_COOKIE) != form_token:
        response.set_cookie(FORM_COOKIE, form_token, path='/%s/opd' % database,
            httponly=True, samesite='Lax', secure=request.scheme == 'https')
    if request.args.get('lang') in web.LANGUAGES:
        response.set_cookie(web.LANG_COOKIE, language,
            max_age=365 * 24 * 3600, path='/%s/opd' % database,
            samesite='Lax', secure=request.scheme == 'https')
    return response


def secure_headers(response, csp_extra=None):
    csp = {
        'default-src': "'self'",
        'img-src': "'self' data: blob:",
        'media-src': "'self' blob:",
        'style-src': "'self'",
        'script-src': "'self'",
        'connect-src': "'self'",
        'frame-src': "'none'",
        'frame-ancestors': "'none'",
        'form-action': "'self'",
        'base-uri': "'none'",
        'object-src': "'none'",
        }
    for key, value in (csp_extra or {}).items():
        csp[key] = (csp[key] + ' ' + value) if csp.get(key, "'none'") != (
            "'none'") else value
    response.headers['Content-Security-Policy'] = '; '.join(
        '%s %s' % item for item in csp.items())
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['Referrer-Policy'] = 'same-origin'
    response.headers['X-Frame-Options'] = 'DENY'
    response.headers['Cache-Control'] = 'no-store'
    response.headers['Permissions-Policy'] = (
        'camera=(self), microphone=(self), geolocation=()')


def check_form(request):
    "A form post must echo the form token of its page (double submit)."
    sent = request.form.get('csrf_token')
    if not sent or sent != request.cookies.get(FORM_COOKIE):
        return False
    return True


def page(path, methods=('GET',), patient=False, floor=None, locking=False,
        max_size=None):
    """Register a portal page.

    The function gets (request, pool, session, **url values) inside a
    transaction with the visitor's language; `session` is the patient's
    session or None (with `patient=True` a visitor without one is sent to
    the login page). It returns a Response (render() or redirect()).
    A POST without the form token of the page is answered 400. With
    `floor`, a POST is answered no sooner than that many seconds after it
    came, commit included (web.level_timing). `locking` and `max_size` are
    those of web.api.
    """
    def decorator(func):
        # not read-only even for GET: checking a session may record its
        # activity, and the waiting room settles a passed Call Now
        @with_transaction(readonly=False)
        @wraps(func)
        def inner(request, pool, **kwargs):
            if locking and request.method == 'POST':
                read_committed()
            with Transaction().set_context(
                    language=web.request_language(request)):
                session = current_session(request, pool)
                if patient and session is None:
                    return redirect('%s/login?next=%s' % (
                            _base(request), request.path))
                return func(request, pool, session, **kwargs)

        @wraps(func)
        def endpoint(request, database_name, **kwargs):
            started = time.monotonic()
            if request.method == 'POST' and not check_form(request):
                return render(request, 'error.html', status=400,
                    message_id='form_expired')
            try:
                pool = web.get_pool(database_name)
                if pool is None:
                    return Response('Not Found', status=404)
                response = inner(request, pool, **kwargs)
                if floor and request.method == 'POST':
                    web.level_timing(started, floor)
                return response
            except PortalError as error:
                return render(request, 'error.html', status=error.status,
                    message=error.message)
            except Exception as exception:
                if (web.database_unavailable(exception)
                        or isinstance(exception, web.DatabaseUnavailable)):
                    return unavailable(request)
                web.logger.exception('portal page %s failed', request.path)
                return render(request, 'error.html', status=500,
                    message_id='server_error')
        if max_size:
            endpoint.max_request_size = max_size
        app.route(web.PORTAL + path, methods=list(methods))(endpoint)
        return func
    return decorator


def _base(request):
    return '/%s/opd' % request.view_args.get('database_name')


def unavailable(request):
    """The page of a request the database could not serve (restarting,
    unreachable): 503, and the browser loads the page again by itself
    after Retry-After seconds."""
    web.logger.warning('portal page %s: database unavailable', request.path)
    response = render(request, 'error.html', status=503,
        message_id='unavailable', refresh=web.RETRY_AFTER)
    response.headers['Retry-After'] = str(web.RETRY_AFTER)
    return response


def current_session(request, pool, kind='patient'):
    "The visitor's live session (patient or doctor) or None."
    Session = pool.get('sehat.opd.session')
    cookie = web.PATIENT_COOKIE if kind == 'patient' else web.STAFF_COOKIE
    key = request.cookies.get(cookie)
    return Session.check(key, kind) if key else None


@app.route(web.PORTAL + '/static/<module>/<path:filename>', methods=['GET'])
def static(request, database_name, module, filename):
    "Portal CSS, scripts, sounds and images (cached by the browser)."
    if web.get_pool(database_name) is None:
        return Response('Not Found', status=404)
    directory = _MODULES.get(module)
    path = safe_join(str(directory / 'static'), filename) if directory else None
    if not path or not os.path.isfile(path):
        return Response('Not Found', status=404)
    with open(path, 'rb') as fp:
        data = fp.read()
    mime = mimetypes.guess_type(path)[0] or 'application/octet-stream'
    if mime.startswith('text/') or mime in {
            'application/javascript', 'image/svg+xml'}:
        mime += '; charset=utf-8'
    response = Response(data, content_type=mime)
    response.headers['Cache-Control'] = 'public, max-age=3600'
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.add_etag()
    return response.make_conditional(request)
