"""Fixtures of the cross-module tests: a real database, a real server, a
real browser.

- `database`: a PostgreSQL database with the three modules, Hindi and the
  demo data of data/, built once per run by scripts/setup_db.py and then
  copied from a template (CREATE DATABASE ... TEMPLATE) for each session.
- `server`: trytond serving that database on a free port of 127.0.0.1, its
  log captured, its SMS going to `gateway`, a real HTTP gateway on 127.0.0.1
  (sehat_opd_sms's generic provider), where tests read the OTPs and texts.
- `browser` / `page`: Debian's Chromium driven by Playwright (never a
  downloaded browser); `shot(page, name)` saves tests/screenshots/<name>.png.
"""
import hashlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / 'tests' / 'screenshots'
VAR = ROOT / 'var'
BIN = Path(sys.executable).parent
CONF = ROOT / 'trytond.conf'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
    ]
DESKTOP = {'width': 1280, 'height': 900}
PHONE = {'width': 360, 'height': 740}

sys.path.insert(0, str(ROOT / 'scripts'))


def _fake_gateway():
    """The fake SMS gateway of sehat_opd_sms's tests, loaded from its file
    (importing the package would import the Tryton modules here)."""
    spec = importlib.util.spec_from_file_location('sehat_fake_gateway',
        ROOT / 'sehat_opd_sms' / 'tests' / 'fake_gateway.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FakeGateway = _fake_gateway().FakeGateway


def _env(**extra):
    env = dict(os.environ)
    env.update({
            'TRYTOND_DATABASE__URI': os.environ.get(
                'TRYTOND_DATABASE__URI', 'postgresql://'),
            'TRYTOND_DATABASE__PATH': str(VAR / 'test-files'),
            'TRYTOND_SEHAT_OPD__MODE': 'development',
            'TRYTOND_SEHAT_OPD__SECRET': 'test-secret',
            })
    env.update(extra)
    return env


def _psql(sql, database='postgres'):
    return subprocess.run(
        ['psql', '-X', '-q', '-t', '-A', '-d', database, '-c', sql],
        check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope='session')
def database():
    """Name of a fresh database with the modules and the demo data."""
    from setup_db import modules_hash
    # one template per checkout (its path) and per state of the modules
    prefix = 'sehat_tpl_%s_' % hashlib.sha1(
        str(ROOT).encode()).hexdigest()[:6]
    template = prefix + hashlib.sha1(modules_hash().encode()).hexdigest()[:10]
    exists = _psql(
        "SELECT 1 FROM pg_database WHERE datname = '%s'" % template)
    if not exists:
        older = [r for r in _psql(
                "SELECT datname FROM pg_database WHERE datname LIKE '%s%%' "
                "ORDER BY oid DESC" % prefix).splitlines() if r]
        if older:
            # upgrading the last template is much faster than a new build
            _psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (template, older[0]))
        subprocess.run(
            [sys.executable, str(ROOT / 'scripts' / 'setup_db.py'),
                '-c', str(CONF), '-d', template, '--demo'],
            check=True, env=_env())
        for name in older:
            _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    name = 'sehat_e2e_%s' % os.getpid()
    _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    _psql('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template))
    yield name
    _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Server:
    "A trytond server process, what it wrote to its log, what it texted."

    def __init__(self, database, port, log_path, env, gateway=None,
            verbose=1):
        self.database = database
        self.verbose = verbose  # 1: warnings, 2: also info (trytond -v)
        self.port = port
        self.log_path = log_path
        self.env = env
        self.gateway = gateway
        self.process = None
        self.base = 'http://127.0.0.1:%s' % port
        self.portal = '%s/%s/opd' % (self.base, database)
        self.api = self.portal + '/api/v1'

    def start(self):
        # the process keeps its own handle; a restart opens another.
        # Served as `make run` does (SERVE_ENV in the Makefile): a change
        # made by another process (a test's ORM write) is seen at once.
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                [str(BIN / 'trytond'), '-c', str(CONF), '-d', self.database,
                    '-' + 'v' * self.verbose], stdout=log, stderr=subprocess.STDOUT,
                env=dict(self.env, TRYTOND_CACHE__CLEAN_TIMEOUT='0'))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(self.api + '/health', timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                raise RuntimeError('server died:\n' + self.log())
            time.sleep(0.3)
        raise RuntimeError('server did not start:\n' + self.log())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self):
        "Kill -9, as a crash would."
        self.process.kill()
        self.process.wait()

    def log(self):
        return self.log_path.read_text(errors='replace')

    def messages(self, mobile, event=None):
        """SMS texts sent to `mobile` (E.164 or 10 digits), oldest first:
        what the gateway accepted (once per message), else the log lines
        of sehat_opd_sms's `log` provider."""
        if not mobile.startswith('+'):
            mobile = '+91' + mobile[-10:]
        if self.gateway is not None:
            return [r.params.get('text') for r in self.gateway.sent_to(
                    'to', mobile)
                if event is None or r.params.get('event') == event]
        pattern = re.compile(r'SMS to %s \[(\w+)\]: (.*)$' % re.escape(mobile))
        found = []
        for line in self.log().splitlines():
            match = pattern.search(line)
            if match and (event is None or match.group(1) == event):
                found.append(match.group(2))
        return found

    def otp(self, mobile, timeout=5):
        "The last OTP sent to `mobile`, waiting for it to be logged."
        deadline = time.time() + timeout
        while time.time() < deadline:
            texts = self.messages(mobile, 'otp')
            if texts:
                return re.search(r'\b(\d{6})\b', texts[-1]).group(1)
            time.sleep(0.1)
        raise AssertionError('no OTP sent to %s' % mobile)


@pytest.fixture(scope='session')
def gateway():
    """The SMS gateway of the `server`: a real HTTP server on 127.0.0.1
    recording each request (see sehat_opd_sms/tests/fake_gateway.py)."""
    gateway = FakeGateway(hang=2.0).start()
    yield gateway
    gateway.stop()


# The server's SMS settings: sehat_opd_sms's generic provider, posting JSON.
# Sent inline at commit (production sends from a thread): by the time the
# API answers, the gateway has the message, as tests expect.
SMS_WEBHOOK_SECRET = 'test-webhook-secret'


def sms_env(gateway):
    return {
        'TRYTOND_SEHAT_OPD_SMS__PROVIDER': 'generic',
        'TRYTOND_SEHAT_OPD_SMS__URL': gateway.url + '/sms',
        'TRYTOND_SEHAT_OPD_SMS__BODY': 'json',
        'TRYTOND_SEHAT_OPD_SMS__PARAMS': json.dumps({
                'to': '{mobile}', 'text': '{text}', 'event': '{event}',
                'dlt_template_id': '{dlt_template_id}',
                'reference': '{reference}'}),
        'TRYTOND_SEHAT_OPD_SMS__RESPONSE_ID': 'id',
        'TRYTOND_SEHAT_OPD_SMS__IDEMPOTENCY_HEADER': 'Idempotency-Key',
        'TRYTOND_SEHAT_OPD_SMS__TIMEOUT': '1',
        'TRYTOND_SEHAT_OPD_SMS__WEBHOOK_SECRET': SMS_WEBHOOK_SECRET,
        'TRYTOND_SEHAT_OPD_SMS__DISPATCH': 'inline',
        }


@pytest.fixture(scope='session')
def server(database, gateway, tmp_path_factory, fake_jitsi):
    log = tmp_path_factory.mktemp('server') / 'trytond.log'
    port = free_port()
    server = Server(database, port, log, _env(
            TRYTOND_WEB__LISTEN='127.0.0.1:%s' % port,
            TRYTOND_WEB__ROOT=str(VAR / 'sao'),
            TRYTOND_SEHAT_OPD__BASE_URL='http://127.0.0.1:%s' % port,
            **fake_jitsi.settings(), **sms_env(gateway)), gateway=gateway)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope='session')
def small_pool_server(server, tmp_path_factory):
    """A second server on the same database with a pool of 4 connections
    per process and the production dispatch of texts (a thread after
    commit): what a burst does to a pool smaller than the burst."""
    port = free_port()
    # a request waits up to 60 s for a connection (not the pool's size in
    # seconds): a loaded machine may keep it waiting longer than 4 s, while
    # a request holding one and waiting for another would wait them out
    env = dict(server.env, TRYTOND_WEB__LISTEN='127.0.0.1:%s' % port,
        TRYTOND_DATABASE__MAXCONN='4', TRYTOND_DATABASE__RETRY='60',
        TRYTOND_SEHAT_OPD_SMS__DISPATCH='thread')
    # at the info level: the log tells when a request waits for the pool
    small = Server(server.database, port,
        tmp_path_factory.mktemp('small_pool') / 'trytond.log', env,
        gateway=server.gateway, verbose=2)
    small.start()
    yield small
    small.stop()


# Video (sehat_opd_video) --------------------------------------------------

JITSI_APP_ID = 'sehat_test'
JITSI_SECRET = 'test-jitsi-secret-of-at-least-32-bytes'


class FakeJitsi:
    """A Jitsi domain served by the tests on 127.0.0.1: a static
    external_api.js that records the options the page gives it (see
    tests/fake_jitsi/) and a room page that opens the fake camera."""

    def __init__(self):
        import http.server
        import threading
        directory = ROOT / 'tests' / 'fake_jitsi'
        requests_seen = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests_seen.append(self.path)
                path = self.path.split('#')[0].split('?')[0]
                if path.endswith('/external_api.js'):
                    body = (directory / 'external_api.js').read_bytes()
                    kind = 'application/javascript'
                else:
                    body = (directory / 'room.html').read_bytes()
                    kind = 'text/html; charset=utf-8'
                self.send_response(200)
                self.send_header('Content-Type', kind)
                self.send_header('Content-Length', str(len(body)))
                self.send_header('Cache-Control', 'no-store')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), Handler)
        self.port = self.httpd.server_address[1]
        self.domain = '127.0.0.1:%s' % self.port
        self.origin = 'http://' + self.domain
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def settings(self, **extra):
        "The server's [sehat_opd_video] environment for this domain."
        values = {
            'TRYTOND_SEHAT_OPD_VIDEO__MODE': 'jwt',
            'TRYTOND_SEHAT_OPD_VIDEO__DOMAIN': self.domain,
            'TRYTOND_SEHAT_OPD_VIDEO__SCHEME': 'http',
            'TRYTOND_SEHAT_OPD_VIDEO__APP_ID': JITSI_APP_ID,
            'TRYTOND_SEHAT_OPD_VIDEO__APP_SECRET': JITSI_SECRET,
            'TRYTOND_SEHAT_OPD_VIDEO__AUDIENCE': 'jitsi',
            'TRYTOND_SEHAT_OPD_VIDEO__SUBJECT': 'meet.jitsi',
            'TRYTOND_SEHAT_OPD_VIDEO__TOKEN_LIFETIME': '3600',
            }
        values.update(extra)
        return values

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope='session')
def fake_jitsi():
    jitsi = FakeJitsi()
    yield jitsi
    jitsi.stop()


_mobiles = iter(range(100_000))


def fresh_mobile():
    """A 10-digit Indian mobile unique in the session, valid for any process
    id (9 then 4 digits of it then a counter; some 8... series are not
    mobile numbers)."""
    return '9%04d%05d' % (os.getpid() % 10000, next(_mobiles))


@pytest.fixture
def new_mobile():
    "fresh_mobile, as a fixture."
    return fresh_mobile


class Api:
    "A patient's HTTP client of the JSON API."

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()
        self.csrf = None
        self.bearer = None

    def url(self, path):
        return self.server.api + path

    def request(self, method, path, **kwargs):
        headers = kwargs.pop('headers', {})
        if self.bearer:
            headers.setdefault('Authorization', 'Bearer ' + self.bearer)
        elif self.csrf and method not in ('GET', 'HEAD'):
            headers.setdefault('X-CSRF-Token', self.csrf)
        return self.http.request(
            method, self.url(path), headers=headers, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request('GET', path, **kwargs)

    def post(self, path, **kwargs):
        return self.request('POST', path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request('DELETE', path, **kwargs)

    def verify(self, mobile, purpose):
        "Request an OTP, read it from the log, verify it."
        r = self.post('/otp', json={'mobile': mobile, 'purpose': purpose})
        assert r.status_code == 202, r.text
        code = self.server.otp(mobile)
        r = self.post('/otp/verify', json={
                'otp_id': r.json()['otp_id'], 'code': code})
        assert r.status_code == 200, r.text
        return r.json()['verification']

    def register(self, mobile, **fields):
        "Register a patient with valid data; return the Patient ID."
        values = registration(mobile, **fields)
        values['verification'] = self.verify(mobile, 'register')
        r = self.post('/patients', json=values)
        assert r.status_code == 201, r.text
        return r.json()['patient_id']

    def login(self, mobile, bearer=False):
        verification = self.verify(mobile, 'login')
        r = self.post('/session', json={'verification': verification})
        assert r.status_code == 200, r.text
        if bearer:
            self.bearer = r.json()['session']
        else:
            self.csrf = r.json()['csrf_token']
        return r.json()

    def take_token(self, opd_code='DEMO24', complaint='Fever', files=None):
        opd = self.opd_id(opd_code)
        if files:
            r = self.post('/tokens', data={'opd': opd, 'complaint': complaint},
                files=[('files', f) for f in files])
        else:
            r = self.post('/tokens', json={'opd': opd, 'complaint': complaint})
        return r

    def opd_id(self, code):
        for opd in self.get('/opds').json()['opds']:
            if opd['code'] == code:
                return opd['id']
        raise KeyError(code)


def registration(mobile, **fields):
    values = {
        'name': 'Test Patient', 'gender': 'f', 'birth_date': '1985-04-12',
        'email': '', 'mobile': mobile, 'address': '12 Cantonment Road',
        'pincode': '411001', 'state': 'IN-MH', 'district': 'IN-MH-PUN',
        'city': 'Pune', 'beneficiary_category': 'serving', 'service': 'army',
        'service_number': 'IC-45678', 'rank': 'Major',
        }
    values.update(fields)
    return values


@pytest.fixture
def api(server):
    return Api(server)


@pytest.fixture
def patient(api, new_mobile):
    "A registered and logged-in patient's API client (cookie session)."
    mobile = new_mobile()
    api.patient_id = api.register(mobile)
    api.mobile = mobile
    api.login(mobile)
    return api


class Doctor:
    "A doctor of the demo data, through the doctor console's API."

    def __init__(self, server, login, password='sehat-demo'):
        self.server = server
        self.http = requests.Session()
        self.base = server.api + '/doctor'
        r = self.http.post(self.base + '/session', json={
                'login': login, 'password': password}, timeout=30)
        assert r.status_code == 200, r.text
        self.csrf = r.json()['csrf_token']

    def post(self, path, **kwargs):
        return self.http.post(self.base + path, timeout=30,
            headers={'X-CSRF-Token': self.csrf}, **kwargs)

    def get(self, path, **kwargs):
        return self.http.get(self.base + path, timeout=30, **kwargs)

    def current(self):
        return self.get('/state').json()['current']

    def finish(self, token_id):
        """Consult `token_id` without video and complete it; if its patient
        never answered the call, let the answer window pass instead."""
        state = self.get('/tokens/%s' % token_id).json()['state']
        if state == 'called':
            r = self.post('/tokens/%s/start' % token_id)
            if r.status_code == 409:
                _psql("UPDATE sehat_opd_token SET call_deadline = "
                    "call_deadline - interval '1 day' WHERE id = %s"
                    % int(token_id), self.server.database)
                # the heartbeat of an online doctor requeues the missed call
                opd = self.get('/tokens/%s' % token_id).json()['opd']['id']
                r = self.post('/online', json={'opd': opd})
                assert r.status_code == 200, r.text
                r = self.post('/heartbeat')
                assert r.status_code == 200, r.text
                return
            assert r.status_code == 200, r.text
        r = self.post('/tokens/%s/complete' % token_id)
        assert r.status_code == 200, r.text

    def serve(self, opd_id, token_id, limit=50):
        """Go online in `opd_id` and see the patients called before
        `token_id` (left waiting by other tests of the session's server)
        until `token_id` is this doctor's current patient."""
        for _ in range(limit):
            current = self.current()
            if current and current['id'] == token_id:
                return current
            if current:
                self.finish(current['id'])
                continue
            r = self.post('/online', json={'opd': opd_id})
            assert r.status_code == 200, r.text
            if self.current() is None:
                r = self.post('/call-next')
                assert r.status_code == 200, r.text
        raise AssertionError('token %s never called' % token_id)


@pytest.fixture
def doctor_login(server):
    "doctor_login('dr.sharma') -> a logged-in doctor console client."
    return lambda login: Doctor(server, login)


@pytest.fixture(scope='module')
def rpc(server):
    "The administrator, through the back office's JSON-RPC."
    from helpers import Rpc
    return Rpc(server, 'admin', 'admin')


@pytest.fixture(scope='module')
def forget_address_counts(server):
    """For modules that ask for many OTPs from 127.0.0.1: forget them after,
    so that the next modules of the session meet the per-address limit
    fresh."""
    yield
    _psql("DELETE FROM sehat_opd_rate_event WHERE kind IN "
        "('otp_address', 'recover_address', 'token_login_address')",
        server.database)



# Browser ------------------------------------------------------------------

@pytest.fixture(scope='session')
def browser():
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail('Chromium is missing: apt-get install chromium')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=DESKTOP, locale='en-IN')
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.errors = []
    page.on('pageerror', lambda error: page.errors.append(str(error)))
    return page


def shot(page, name, full_page=True):
    "Save a screenshot under tests/screenshots/ and return its path."
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / ('%s.png' % name)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def shot_widths(page, name):
    "Screenshots at desktop and phone width."
    original = page.viewport_size
    paths = []
    for label, size in [('desktop', DESKTOP), ('phone', PHONE)]:
        page.set_viewport_size(size)
        paths.append(shot(page, '%s-%s' % (name, label)))
    page.set_viewport_size(original)
    return paths
