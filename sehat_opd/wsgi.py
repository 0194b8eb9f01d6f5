"""WSGI middleware: clean refusals and bounded request bodies.

Enabled by `[wsgi middleware]` in trytond.conf, it does three things
trytond does not:

- refusals raised before a route runs (a foreign Origin) and the answers
  trytond's dispatcher makes itself (unknown URL, wrong method, body too
  large or without a length) become clean 4xx: JSON under the API prefix,
  as every other API error, instead of a 500 or an HTML page;
- the request body is read before the application runs, within
  `[sehat_opd] body_timeout` seconds in all: a client that sends the
  headers and then trickles or stalls the body gets 408 and holds its
  worker thread no longer than that; nothing has been written then;
- what was read is handed to the application from memory (or a temporary
  file beyond 1 MB), so a route never blocks on the network.
"""
import heapq
import itertools
import json
import logging
import socket
import tempfile
import threading
import time
from http import HTTPStatus

from werkzeug.exceptions import HTTPException, RequestTimeout
from werkzeug.wrappers import Response

from trytond.config import config

from .tools import get_setting

logger = logging.getLogger(__name__)

API_MARK = '/opd/api/'
PORTAL_MARK = '/opd/'
BODY_TIMEOUT = 30
# what the pre-read keeps in memory before it spills to a temporary file
SPOOL_MEMORY = 1024 * 1024
_CODES = {
    400: 'bad_request', 403: 'forbidden', 404: 'not_found',
    405: 'method_not_allowed', 408: 'timeout', 411: 'length_required',
    413: 'too_large', 415: 'unsupported_media', 429: 'rate_limited',
    }
_MESSAGES = {
    403: 'The request was refused (its origin is not allowed).',
    404: 'There is no such address in the API.',
    405: 'This method is not allowed for this address.',
    408: 'The request body did not arrive in time.',
    411: 'The request must give the length of its body (Content-Length).',
    413: 'The request body is larger than this address accepts.',
    }


def body_timeout():
    "Seconds a client has to send its whole request body."
    try:
        value = float(get_setting('sehat_opd', 'body_timeout', BODY_TIMEOUT))
    except (TypeError, ValueError):
        value = BODY_TIMEOUT
    return value if value > 0 else BODY_TIMEOUT


def error_body(status, message=None):
    "The API's error JSON for `status`."
    if status >= 500:
        code, message = 'server_error', (
            'The service could not complete the request.')
    else:
        code = _CODES.get(status, 'bad_request')
        message = message or _MESSAGES.get(status) or HTTPStatus(
            status).phrase
    return json.dumps({'error': {'code': code, 'message': message}})


def json_error(status, message=None):
    response = Response(error_body(status, message), status=status,
        content_type='application/json')
    response.headers['Cache-Control'] = 'no-store'
    return response


class HTTPErrors:
    "Answer HTTP exceptions that escape trytond's dispatcher; bound bodies."

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        api = API_MARK in path
        if not read_body(environ, body_limit(environ, path)):
            # The rest of the body may still come, so the connection cannot
            # carry another request: werkzeug's server closes every
            # connection, gunicorn those whose body failed to read (a WSGI
            # application may not send Connection: close itself).
            response = json_error(408) if api else (
                RequestTimeout().get_response(environ))
            return response(environ, start_response)
        if not api:
            try:
                return self.app(environ, start_response)
            except HTTPException as exception:
                return exception.get_response(environ)(
                    environ, start_response)
        return self._api(environ, start_response)

    def _api(self, environ, start_response):
        """Run the application; an error answer of its own that is not JSON
        (werkzeug's HTML pages) is replaced by the API's error JSON."""
        replaced = []

        def capture(status, headers, exc_info=None):
            code = int(status.split(None, 1)[0])
            named = {k.lower(): v for k, v in headers}
            if code >= 400 and not named.get(
                    'content-type', '').startswith('application/json'):
                replaced.append(refusal(code, named.get('allow', '')))
                return lambda data: None
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, capture)
        except HTTPException as exception:
            allow = ', '.join(getattr(exception, 'valid_methods', None) or [])
            return refusal(exception.code or 400, allow)(
                environ, start_response)
        if not replaced:
            return result
        # werkzeug's page of the error: read and dropped
        try:
            for _ in result:
                pass
        finally:
            if hasattr(result, 'close'):
                result.close()
        return replaced[0](environ, start_response)


def refusal(status, allow=''):
    """The API's error JSON of a refusal by trytond or werkzeug; `allow`
    the methods of a 405."""
    allow = {m.strip() for m in allow.split(',') if m.strip()}
    if status == 405 and allow <= {'OPTIONS'}:
        # trytond answers the CORS preflight on every path: a path that
        # only allows OPTIONS is no address at all
        status = 404
    response = json_error(status)
    if status == 405:
        response.headers['Allow'] = ', '.join(sorted(allow))
    return response


def body_limit(environ, path):
    """The largest body worth reading ahead for this request; a longer one
    is refused by trytond (413) without being read."""
    from trytond.wsgi import app
    try:
        endpoint = app.url_map.bind_to_environ(environ).match()[0]
    except Exception:
        # unknown address or method: answered without the body
        return 0
    size = getattr(endpoint, 'max_request_size', None)
    if size:
        return size
    if PORTAL_MARK in path:
        return config.getint('request', 'max_size')
    return max(config.getint('request', 'max_size'),
        config.getint('request', 'max_size_authenticated'))


def read_body(environ, limit):
    """Read the request body ahead, within body_timeout() seconds in all.

    Return False when it did not arrive in time (or the client went away
    before sending it all). Bodies without a length, longer than `limit`, or
    on servers that do not give their socket are left to the application.
    """
    try:
        length = int(environ.get('CONTENT_LENGTH') or 0)
    except ValueError:
        return True
    sock = environ.get('werkzeug.socket') or environ.get('gunicorn.socket')
    if length <= 0 or length > limit or sock is None:
        return True
    stream = environ['wsgi.input']
    # one receive per call where the stream allows it (werkzeug's server)
    read = getattr(stream, 'read1', None) or stream.read
    timeout = body_timeout()
    deadline = time.monotonic() + timeout
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    left = length
    previous = sock.gettimeout()
    # gunicorn's input reads until it has what it was asked for, one
    # receive after another, each with the whole socket timeout: a client
    # sending a byte now and then would never time out. At the deadline the
    # watchdog ends the reading side of the socket, which ends any read.
    watch = WATCHDOG.watch(deadline, sock)
    try:
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            chunk = read(min(left, 65536))
            if not chunk:
                break
            body.write(chunk)
            left -= len(chunk)
    except (socket.timeout, OSError):
        pass
    finally:
        WATCHDOG.cancel(watch)
        try:
            sock.settimeout(previous)
        except OSError:
            pass
    if left > 0:
        body.close()
        logger.info('request body of %s not received in %ss (%s of %s bytes '
            'missing)', environ.get('PATH_INFO'), timeout, left, length)
        return False
    body.seek(0)
    environ['wsgi.input'] = body
    return True


class Watchdog:
    """One thread that shuts the reading side of sockets whose deadline is
    over (a blocked receive then returns at once)."""

    def __init__(self):
        self._lock = threading.Condition()
        self._queue = []
        self._count = itertools.count()
        self._thread = None

    def watch(self, deadline, sock):
        "Watch `sock` until `deadline`; return what cancel() takes."
        entry = [deadline, next(self._count), sock]
        with self._lock:
            heapq.heappush(self._queue, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name='sehat-body-watchdog',
                    daemon=True)
                self._thread.start()
            self._lock.notify()
        return entry

    def cancel(self, entry):
        "The body was read (or given up): leave the socket alone."
        with self._lock:
            entry[2] = None

    def _run(self):
        while True:
            with self._lock:
                while not self._queue:
                    self._lock.wait()
                deadline, _, sock = self._queue[0]
                wait = deadline - time.monotonic()
                if sock is not None and wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._queue)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RD)
                    except OSError:
                        pass


WATCHDOG = Watchdog()
