"""Fault drills: the service under the failures production will meet.

Each drill drives a real trytond server over HTTP, breaks something for
real (SIGKILL of the server, a restart of the PostgreSQL cluster, an SMS
gateway that refuses everything) and checks that nothing a patient or a
doctor relies on is lost, and that the service recovers by itself.

Drills that kill or restart a server use servers of their own on the
session's database, so that the session `server` is not disturbed; the
PostgreSQL drill disturbs every client of the cluster for a few seconds
and checks that the session server recovers too.
"""
import concurrent.futures
import os
import pwd
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter

import jwt
import psycopg2
import pytest
import requests
from playwright.sync_api import expect

import queue_data
from conftest import (
    BIN, CONF, DESKTOP, JITSI_SECRET, FakeGateway, Server, _psql, free_port,
    shot)

PNG = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01'
    b'\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0'
    b'\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82')
TRACE = re.compile(r'Traceback|File "/|psycopg2|OperationalError', re.I)


@pytest.fixture(scope='module')
def db(server):
    queue_data.configure(server.env)
    return server.database


@pytest.fixture
def own_server(server, tmp_path):
    """own_server(**env) -> a server of the test's own on the session
    database (the session server's settings, another port, `env` on top),
    not started; stopped after the test."""
    servers = []

    def make(**extra):
        port = free_port()
        env = dict(server.env, TRYTOND_WEB__LISTEN='127.0.0.1:%s' % port,
            TRYTOND_SEHAT_OPD__BASE_URL='http://127.0.0.1:%s' % port,
            **extra)
        servers.append(Server(server.database, port,
                tmp_path / ('trytond-%s.log' % port), env))
        return servers[-1]
    yield make
    for own in servers:
        own.stop()


class Client:
    "A patient's or a doctor's bearer-authenticated HTTP client."

    def __init__(self, server, session, prefix=''):
        self.server = server
        self.prefix = prefix
        self.http = requests.Session()
        self.http.headers['Authorization'] = 'Bearer %s' % session

    def url(self, path):
        return self.server.api + self.prefix + path

    def get(self, path, **kwargs):
        return self.http.get(self.url(path), timeout=30, **kwargs)

    def post(self, path, **kwargs):
        return self.http.post(self.url(path), timeout=30, **kwargs)


def ok(response, status=200):
    assert response.status_code == status, (
        response.status_code, response.text)
    return response.json()


def new_code(prefix):
    return '%s%s' % (prefix, secrets.token_hex(2).upper())


# 1. The server is killed during a consultation -----------------------------

def consultation(server, db):
    """A patient and a doctor in a video consultation on `server`, having
    chatted and shared a file. Return (patient, doctor, token id)."""
    opd = queue_data.make_opd(db, new_code('KL'))
    patient_data, = queue_data.make_patients(db, 1, '91')
    doctor_data, = queue_data.make_doctors(db, 1, opd, 'k')
    patient = Client(server, patient_data['session'])
    doctor = Client(server, doctor_data['session'], '/doctor')
    ok(patient.post('/tokens', json={'opd': opd, 'complaint': 'Chest pain'}),
        201)
    ok(doctor.post('/online', json={'opd': opd}))
    token_id = ok(patient.get('/tokens/current'))['token_id']
    ok(patient.post('/tokens/current/call'))
    ok(patient.post('/tokens/current/join'))
    ok(patient.post('/tokens/current/video', json={'event': 'joined'}))
    ok(doctor.post('/tokens/%s/join' % token_id))
    state = ok(doctor.post('/tokens/%s/video' % token_id,
            json={'event': 'joined'}))['state']
    assert state == 'in_consultation'
    ok(patient.post('/tokens/current/messages',
            data={'text': 'Pain since morning'}), 201)
    ok(doctor.post('/tokens/%s/messages' % token_id,
            data={'text': 'Any report?'}), 201)
    ok(patient.post('/tokens/current/messages', data={'text': 'ECG'},
            files={'file': ('ecg.png', PNG, 'image/png')}), 201)
    return patient, doctor, token_id


def test_server_killed_during_consultation(own_server, db):
    "SIGKILL in the middle of a consultation: after a restart the token, "
    "the room and the chat are intact, both sides rejoin and go on"
    server = own_server().start()
    patient, doctor, token_id = consultation(server, db)
    room = ok(patient.post('/tokens/current/join'))['room']
    before = ok(patient.get('/tokens/current/messages'))['messages']
    assert [m['text'] for m in before] == [
        'Pain since morning', 'Any report?', 'ECG']

    # chat lines with files keep coming while the server is killed
    acknowledged, stop = [], threading.Event()

    def chatter():
        for i in range(1000):
            if stop.is_set():
                return
            try:
                r = patient.post('/tokens/current/messages',
                    data={'text': 'burst %s' % i},
                    files={'file': ('burst%s.png' % i, PNG, 'image/png')})
            except requests.RequestException:
                return
            if r.status_code == 201:
                acknowledged.append(r.json()['id'])
    thread = threading.Thread(target=chatter)
    thread.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    thread.join(30)
    assert len(acknowledged) >= 3, 'too few chat lines before the kill'
    killed = time.time()

    server.start()
    status = ok(patient.get('/tokens/current'))
    assert (status['token_id'], status['state']) == (
        token_id, 'in_consultation')
    after = ok(patient.get('/tokens/current/messages'))['messages']
    assert after[:3] == before
    # every acknowledged line is there; none is there without its file
    ids = [m['id'] for m in after]
    assert set(acknowledged) <= set(ids)
    for message in after[3:]:
        assert re.fullmatch(r'burst \d+', message['text'])
        assert message['file']['type'] == 'image/png', message
        r = patient.get('/files/%s' % message['file']['id'])
        assert r.status_code == 200 and r.content == PNG
    assert queue_data.sql(db, 'SELECT count(*) FROM ir_attachment '
        "WHERE resource LIKE 'sehat.opd.message,%%' AND resource NOT IN "
        "(SELECT 'sehat.opd.message,' || id FROM sehat_opd_message)") == [(0,)]
    r = doctor.get('/files/%s' % after[2]['file']['id'])
    assert r.status_code == 200 and r.content == PNG

    # both rejoin the same room with fresh tokens and chat on
    for answer in [ok(patient.post('/tokens/current/join')),
            ok(doctor.post('/tokens/%s/join' % token_id))]:
        assert answer['room'] == room
        claims = jwt.decode(answer['jwt'], JITSI_SECRET,
            algorithms=['HS256'], audience='jitsi')
        assert claims['room'] == room and claims['iat'] >= int(killed)
    ok(patient.post('/tokens/current/video', json={'event': 'joined'}))
    feed = ok(doctor.post('/tokens/%s/video' % token_id,
            json={'event': 'joined'}))
    assert feed['state'] == 'in_consultation'
    ok(doctor.post('/tokens/%s/messages' % token_id,
            data={'text': 'Back again'}), 201)
    ok(patient.post('/tokens/current/messages', data={'text': 'Me too'}),
        201)
    lines = ok(doctor.get('/tokens/%s/messages' % token_id))['messages']
    assert [m['text'] for m in lines[-2:]] == ['Back again', 'Me too']
    assert ok(doctor.get('/state'))['current']['id'] == token_id


# 2. PostgreSQL restarts while patients wait --------------------------------

def cluster():
    """The Debian cluster (version, name) of the test database, or skip:
    the drill restarts it for real."""
    directory = _psql('SHOW data_directory')
    try:
        listing = subprocess.run(['pg_lsclusters', '--no-header'],
            capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('no pg_lsclusters: the cluster cannot be restarted here')
    for line in listing.splitlines():
        version, name, _, _, owner, data, *_ = line.split()
        if data == directory:
            if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != (
                    owner):
                pytest.skip('cluster %s/%s belongs to %s' % (
                        version, name, owner))
            return version, name
    pytest.skip('the cluster of %s is not a Debian cluster' % directory)


class Poller(threading.Thread):
    """A waiting room's long poll, as static/waiting.js does it (with
    `path` /tokens/current: a page reading its status again and again)."""

    def __init__(self, client, path='/tokens/current/wait'):
        super().__init__(daemon=True)
        self.client = client
        self.path = path
        self.answers = []  # (time, status code, Retry-After, body)
        self.stop = threading.Event()
        self.expected = None

    def last(self):
        return [a for a in self.answers if a[1] == 200][-1][3]

    def run(self):
        version, cursor = '', ''
        while not self.stop.is_set():
            try:
                r = self.client.get(self.path,
                    params={'version': version, 'cursor': cursor})
            except requests.RequestException as exception:
                self.answers.append((time.monotonic(), None, None,
                        str(exception)))
                time.sleep(0.5)
                continue
            body = r.json() if r.headers.get('Content-Type', '').startswith(
                'application/json') else r.text
            self.answers.append((time.monotonic(), r.status_code,
                    r.headers.get('Retry-After'), body))
            if r.status_code == 200:
                version = str(body['version'])
                cursor = body.get('cursor') or ''
            if r.status_code != 200 or 'wait' not in self.path:
                time.sleep(0.2)


def test_postgresql_restart_while_patients_wait(own_server, server, db):
    "PostgreSQL restarts under waiting patients: a clean 503 for what it "
    "cut, then the waiting rooms come back live by themselves, every "
    "place kept"
    version, name = cluster()
    own = own_server().start()
    opd = queue_data.make_opd(db, new_code('PG'))
    sessions = [p['session'] for p in queue_data.make_patients(db, 6, '92')]
    patients = [Client(own, session) for session in sessions]
    for patient in patients[:5]:
        ok(patient.post('/tokens', json={'opd': opd}), 201)
    before = [ok(p.get('/tokens/current')) for p in patients[:5]]
    assert [(s['token_number'], s['position']) for s in before] == [
        (i, i) for i in range(1, 6)]
    # four waiting rooms long-poll this server, one the session server;
    # the first patient's page reads its status over and over
    pollers = [Poller(p) for p in patients[1:5]]
    pollers.append(Poller(Client(server, sessions[4])))
    for poller, place in zip(pollers, [2, 3, 4, 5, 5]):
        poller.expected = place - 1  # once the first patient cancels
    reader = Poller(patients[0], '/tokens/current')
    for poller in pollers + [reader]:
        poller.start()

    # the sixth patient's "Take token" is waiting for the queue's lock
    # when the database goes away
    holder = psycopg2.connect(dbname=db)
    holder.cursor().execute('SELECT id FROM sehat_opd_queue '
        'WHERE opd = %s FOR UPDATE', (opd,))
    cut = {}
    taking = threading.Thread(target=lambda: cut.update(
            r=patients[5].post('/tokens', json={'opd': opd})))
    taking.start()
    deadline = time.monotonic() + 10
    while not _psql("SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = '%s' AND wait_event_type = 'Lock'" % db) == '1':
        assert time.monotonic() < deadline, 'the request never waited'
        time.sleep(0.1)
    subprocess.run(['pg_ctlcluster', version, name, 'restart', '-m',
            'fast'], check=True, capture_output=True, timeout=60)
    holder.close()
    taking.join(90)
    r = cut['r']
    assert r.status_code == 503, r.text
    assert r.json()['error']['code'] == 'unavailable'
    assert int(r.headers['Retry-After']) > 0
    assert not TRACE.search(r.text)
    assert queue_data.sql(db, 'SELECT count(*) FROM sehat_opd_token '
        'WHERE opd = %s', opd) == [(5,)]

    # the same requests succeed again, every place kept
    after = [ok(p.get('/tokens/current')) for p in patients[:5]]
    assert [(s['token_number'], s['position']) for s in after] == [
        (s['token_number'], s['position']) for s in before]
    assert ok(patients[5].post('/tokens', json={'opd': opd}),
        201)['token_number'] == 6
    # the waiting rooms are live again: a cancellation moves everyone up
    time.sleep(1)  # the pollers' next long polls are waiting
    reader.stop.set()
    reader.join(30)
    cancelled = time.monotonic()
    ok(patients[0].post('/tokens/current/cancel'))
    deadline = cancelled + 5
    while time.monotonic() < deadline and any(
            p.last()['position'] != p.expected for p in pollers):
        time.sleep(0.1)
    for poller in pollers:
        poller.stop.set()
        moved = [t for t, code, _, body in poller.answers if code == 200
            and t > cancelled and body['position'] == poller.expected]
        assert moved and moved[0] - cancelled < 3, poller.answers[-3:]
    for _, code, retry_after, body in [
            a for p in pollers + [reader] for a in p.answers]:
        assert code in {200, 503}, (code, body)
        assert not TRACE.search(str(body))
        if code == 503:
            assert body['error']['code'] == 'unavailable' and retry_after
    assert {a[3]['token_number'] for a in reader.answers} == {1}
    assert requests.get(server.api + '/health', timeout=30).ok


def test_database_unreachable_from_the_start(own_server):
    "A server (a new worker) that cannot reach its database answers 503 "
    "with Retry-After, not 404: the API in JSON, pages that reload"
    closed = free_port()
    own = own_server(
        TRYTOND_DATABASE__URI='postgresql://127.0.0.1:%s/' % closed)
    with open(own.log_path, 'ab') as log:
        own.process = subprocess.Popen([str(BIN / 'trytond'), '-c', str(CONF),
                '-d', own.database], stdout=log, stderr=subprocess.STDOUT,
            env=own.env)
    deadline = time.monotonic() + 60
    while True:
        try:
            r = requests.get(own.api + '/tokens/current', timeout=10)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, 'the server did not start'
            time.sleep(0.3)
    assert r.status_code == 503, r.text
    assert r.json()['error']['code'] == 'unavailable'
    assert r.headers['Retry-After'] == '3'
    r = requests.get(own.portal + '/waiting', params={'lang': 'hi'},
        timeout=10)
    assert r.status_code == 503 and r.headers['Retry-After'] == '3'
    assert '<meta http-equiv="refresh" content="3">' in r.text
    assert 'यह पेज अपने आप फिर से प्रयास करेगा' in r.text
    assert not TRACE.search(r.text)


def test_waiting_page_reconnects(server, db, browser):
    "The waiting room says it is reconnecting while the service answers "
    "503 or cannot be reached, tries again later each time, and comes "
    "back live by itself"
    opd = queue_data.make_opd(db, new_code('WR'))
    first, patient, third = queue_data.make_patients(db, 3, '95')
    for each in (first, patient):
        ok(Client(server, each['session']).post('/tokens', json={'opd': opd}),
            201)
    context = browser.new_context(viewport=DESKTOP, locale='en-IN')
    context.set_default_timeout(15_000)
    context.add_cookies([{'name': 'sehat_session', 'value': patient['session'],
                'url': server.portal + '/'}])
    failures, tries = ['503', 'refused'], []

    def outage(route):
        tries.append(time.monotonic())
        if not failures:
            return route.continue_()
        if failures.pop(0) == '503':
            return route.fulfill(status=503, headers={'Retry-After': '1'},
                content_type='application/json',
                body='{"error": {"code": "unavailable", "message": "-"}}')
        return route.abort('connectionrefused')
    try:
        page = context.new_page()
        errors = []
        page.on('pageerror', lambda error: errors.append(str(error)))
        page.goto(server.portal + '/waiting')
        expect(page.locator('#position')).to_have_text('2 of 2')
        reconnecting = page.locator('#reconnecting')
        expect(reconnecting).to_be_hidden()
        # from the next poll on, the service is away for two tries
        page.route(re.compile(r'/tokens/current(/wait)?(\?|$)'), outage)
        ok(Client(server, first['session']).post('/tokens/current/cancel'))
        expect(page.locator('#position')).to_have_text('1 of 1')
        expect(reconnecting).to_be_visible()
        shot(page, 'faults-waiting-reconnecting')
        expect(reconnecting).to_be_hidden(timeout=20_000)
        # three tries: the two failures, then a status read that went
        # through, each after a longer pause (Retry-After 1 s, then 2 s,
        # give or take)
        first_try, second, third_try = tries[:3]
        assert second - first_try >= 0.7
        assert third_try - second >= 1.4
        # and the room is live again: the next patient shows at once
        ok(Client(server, third['session']).post('/tokens',
                json={'opd': opd}), 201)
        expect(page.locator('#position')).to_have_text('1 of 2',
            timeout=5_000)
        assert not errors
    finally:
        context.close()


# 3. The SMS gateway is down for a whole burst of tokens --------------------

# What trytond-cron does for the outbox's scheduled action, in a process of
# its own: run the ir.cron record of sehat_opd_sms once.
CRON = """
import sys
from trytond.config import config
config.update_etc(sys.argv[1])
from trytond.pool import Pool
from trytond.transaction import Transaction
database = sys.argv[2]
Pool.start()
pool = Pool(database)
with Transaction().start(database, 0, readonly=True):
    pool.init()
with Transaction().start(database, 0) as transaction:
    Cron = pool.get('ir.cron')
    cron, = Cron.search([('method', '=', 'sehat.sms.message|cron_send')])
    cron.run_once()
    transaction.commit()
"""


def test_sms_gateway_down_during_token_burst(own_server, db, tmp_path):
    "20 patients take tokens while the SMS gateway refuses connections: "
    "all get their token at once; once it is back the cron sends each "
    "message exactly once"
    port = free_port()  # nothing listens there yet: connections refused
    server = own_server(
        TRYTOND_SEHAT_OPD_SMS__URL='http://127.0.0.1:%s/sms' % port).start()
    opd = queue_data.make_opd(db, new_code('SM'))
    patients = queue_data.make_patients(db, 20, '93')
    mobiles = {p['mobile'] for p in patients}

    def take(patient):
        started = time.monotonic()
        r = Client(server, patient['session']).post('/tokens',
            json={'opd': opd, 'complaint': 'Fever'})
        return r, time.monotonic() - started
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(take, patients))
    assert [r.status_code for r, _ in answers] == [201] * 20, [
        r.text for r, _ in answers if r.status_code != 201][:2]
    assert sorted(r.json()['token_number'] for r, _ in answers) == list(
        range(1, 21))
    assert max(seconds for _, seconds in answers) < 10

    def outbox():
        return queue_data.sql(db, 'SELECT id, recipient, event, state, '
            'attempts, reference FROM sehat_sms_message '
            'WHERE recipient = ANY(%s) ORDER BY id', list(mobiles))
    queued = outbox()
    assert Counter(event for _, _, event, _, _, _ in queued)[
        'token_issued'] == 20
    assert {state for _, _, _, state, _, _ in queued} == {'queued'}

    # the gateway comes back (answering 503 to its first request) and the
    # backoff delay of the failed tries has passed; two cron workers run
    gateway = FakeGateway(port=port).start()
    try:
        gateway.fail_next(1, 'error')
        queue_data.sql(db, "UPDATE sehat_sms_message SET next_try = "
            "next_try - interval '1 day' WHERE recipient = ANY(%s)",
            list(mobiles))
        crons = [subprocess.Popen([sys.executable, '-c', CRON, str(CONF),
                    db], env=server.env, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
        for cron in crons:
            _, errors = cron.communicate(timeout=120)
            assert cron.returncode == 0, errors
        # the one the 503 sent back is due again after its delay
        queue_data.sql(db, "UPDATE sehat_sms_message SET next_try = "
            "next_try - interval '1 day' WHERE recipient = ANY(%s) "
            "AND state = 'queued'", list(mobiles))
        subprocess.run([sys.executable, '-c', CRON, str(CONF), db],
            env=server.env, check=True, capture_output=True, timeout=120)
        sent = outbox()
        assert {state for _, _, _, state, _, _ in sent} == {'sent'}, sent
        accepted = [r for r in gateway.accepted if r.params['to'] in mobiles]
        assert sorted(r['key'] for r in accepted) == sorted(
            reference for *_, reference in sent)
        per_message = Counter((r.params['to'], r.params['event'])
            for r in accepted)
        assert per_message == Counter((recipient, event)
            for _, recipient, event, *_ in sent)
        assert {to for to, event in per_message
            if event == 'token_issued'} == mobiles
        assert set(per_message.values()) == {1}
        assert not gateway.duplicates
        # one request per message, plus the one answered 503
        assert [r['mode'] for r in gateway.requests].count('error') == 1
        assert len(gateway.requests) == len(sent) + 1
    finally:
        gateway.stop()
