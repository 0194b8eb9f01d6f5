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
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter

import jwt
import pytest
import requests

import queue_data
from conftest import CONF, JITSI_SECRET, FakeGateway, Server, free_port

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
