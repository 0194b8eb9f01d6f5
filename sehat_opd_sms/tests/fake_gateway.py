"""A real SMS gateway and a real SMTP server on 127.0.0.1, for the tests.

`FakeGateway` is an HTTP server that records every request and can be told
to answer 500, refuse with 400, hang, or close the connection without an
answer. Like a careful real gateway it honours an idempotency key: a
request whose key it has already accepted is answered again but not
delivered a second time, so `accepted` lists each message once.

`FakeSMTP` is aiosmtpd's controller with a handler that keeps the messages.

Used by sehat_opd_sms/tests/test_module.py and by the end-to-end fixtures
of tests/conftest.py (the `server` fixture's gateway).
"""
import email
import itertools
import json
import socket
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = {'ok', 'error', 'reject', 'hang', 'close'}


class Received(dict):
    "One request: method, path, query, headers, body, form, json, key."

    @property
    def params(self):
        "The parameters whatever their carrier (JSON, form or query)."
        if isinstance(self.get('json'), dict):
            return self['json']
        if self.get('form'):
            return self['form']
        return self['query']


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.gateway._handle(self)

    do_POST = do_PUT = do_GET


class FakeGateway:
    """An HTTP gateway on 127.0.0.1 (on `port`, else one chosen by the
    system: a test can point a server at a port where the gateway is not up
    yet, and start it there later)."""

    def __init__(self, idempotency_header='Idempotency-Key', hang=3.0,
            port=0):
        self.idempotency_header = idempotency_header
        self.hang_seconds = hang
        self.requests = []
        self.accepted = []
        self.duplicates = []
        self.mode = 'ok'
        self.reply = None
        self.in_flight = 0
        self._next = deque()
        self._keys = {}
        # gateway ids stay unique across clear(), as a real gateway's do
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(('127.0.0.1', port), _Handler)
        self._server.daemon_threads = True
        self._server.gateway = self
        self._thread = None

    # Control ------------------------------------------------------------

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return 'http://127.0.0.1:%s' % self.port

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, name='fake-gateway',
            daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def set_mode(self, mode, first=()):
        """ok, error (500), reject (400), hang, close (no answer); the next
        requests get the modes of `first` before (set at the same moment, so
        no request slips in between)."""
        assert mode in MODES, mode
        assert all(m in MODES for m in first), first
        with self._lock:
            self.mode = mode
            self._next.clear()
            self._next.extend(first)

    def fail_next(self, count, mode='error'):
        "The next `count` requests get `mode`, then the current mode again."
        assert mode in MODES, mode
        with self._lock:
            self._next.extend([mode] * count)

    def clear(self):
        with self._lock:
            self.requests.clear()
            self.accepted.clear()
            self.duplicates.clear()
            self._keys.clear()
            self.mode = 'ok'
            self._next.clear()
            self.reply = None

    def wait_for(self, predicate, timeout=5.0):
        "Wait until predicate(self) is true; return its last value."
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(self)
                left = deadline - time.monotonic()
                if value or left <= 0:
                    return value
                self._lock.wait(min(left, 0.2))

    def sent_to(self, field, value):
        "Accepted requests whose parameter `field` is `value`."
        with self._lock:
            return [r for r in self.accepted if r.params.get(field) == value]

    # Serving ------------------------------------------------------------

    def _read(self, handler):
        length = int(handler.headers.get('Content-Length') or 0)
        body = handler.rfile.read(length) if length else b''
        url = urllib.parse.urlsplit(handler.path)
        received = Received(
            method=handler.command, path=url.path,
            query=dict(urllib.parse.parse_qsl(url.query)),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body, form={}, json=None, time=time.time())
        kind = received['headers'].get('content-type', '')
        if 'x-www-form-urlencoded' in kind:
            received['form'] = dict(urllib.parse.parse_qsl(
                    body.decode('utf-8')))
        elif body:
            try:
                received['json'] = json.loads(body)
            except ValueError:
                pass
        received['key'] = received['headers'].get(
            (self.idempotency_header or '').lower())
        return received

    def _handle(self, handler):
        received = self._read(handler)
        with self._lock:
            mode = self._next.popleft() if self._next else self.mode
            received['mode'] = mode
            self.requests.append(received)
            self._lock.notify_all()
        if mode == 'close':
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if mode == 'error':
            return self._answer(handler, 500, b'{"error": "unavailable"}')
        if mode == 'reject':
            return self._answer(handler, 400, b'{"error": "invalid number"}')
        if mode == 'hang':
            # The gateway takes the message but answers too late: the
            # sender cannot know, retries, and the key saves a duplicate.
            with self._lock:
                self.in_flight += 1
            time.sleep(self.hang_seconds)
        with self._lock:
            if mode == 'hang':
                self.in_flight -= 1
            key = received['key']
            if key and key in self._keys:
                gateway_id = self._keys[key]
                self.duplicates.append(received)
            else:
                gateway_id = 'gw-%d' % next(self._ids)
                if key:
                    self._keys[key] = gateway_id
                received['gateway_id'] = gateway_id
                self.accepted.append(received)
            self._lock.notify_all()
        if self.reply:
            status, body = self.reply(received, gateway_id)
        else:
            status, body = 200, json.dumps(
                {'id': gateway_id, 'status': 'accepted'})
        try:
            self._answer(handler, status, body.encode('utf-8')
                if isinstance(body, str) else body)
        except OSError:
            pass  # the client gave up waiting (hang)

    @staticmethod
    def _answer(handler, status, body):
        handler.send_response(status)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class FakeSMTP:
    "An SMTP server on 127.0.0.1 keeping every message it accepts."

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []
        self._lock = threading.Condition()
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        self.controller = Controller(self, hostname='127.0.0.1', port=port)

    @property
    def uri(self):
        return 'smtp://127.0.0.1:%s' % self.controller.port

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        with self._lock:
            self.messages.append({
                    'from': envelope.mail_from,
                    'to': list(envelope.rcpt_tos),
                    'message': message,
                    })
            self._lock.notify_all()
        return '250 Message accepted for delivery'

    def wait_for(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self.messages)
