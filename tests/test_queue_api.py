"""The queue's HTTP API against the real server: the waiting room's long
poll, Call Now, the refusals of POST /tokens and the console's checks."""
import datetime as dt
import secrets
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import requests

import queue_data
from helpers import race


@pytest.fixture(scope='module')
def db(server):
    queue_data.configure(server.env)
    return server.database


def bearer(session):
    return {'Authorization': 'Bearer %s' % session}


def code(prefix):
    return '%s%s' % (prefix, secrets.token_hex(2).upper())


def test_long_poll_wakes_on_change(server, db):
    "The waiting room's long poll answers at once when its version is old, "
    "waits while nothing changes, and wakes within 3 s of a change"
    opd = queue_data.make_opd(db, code('LP'))
    first, second = queue_data.make_patients(db, 2, '21')
    for patient in (first, second):
        r = requests.post(server.api + '/tokens', json={'opd': opd},
            headers=bearer(patient['session']), timeout=30)
        assert r.status_code == 201, r.text
    wait = server.api + '/tokens/current/wait'
    r = requests.get(wait, params={'version': 'old'},
        headers=bearer(second['session']), timeout=30)
    status = r.json()
    assert (status['position'], status['waiting'], status['live']) == (
        2, 2, True)

    changed = []

    def poll():
        # as the page does: poll again with the cursor until it changes
        version, cursor = status['version'], status['cursor'] or ''
        while True:
            r = requests.get(wait, params={
                    'version': version, 'cursor': cursor},
                headers=bearer(second['session']), timeout=60)
            answer = r.json()
            cursor = answer['cursor'] or ''
            if answer['version'] != version:
                changed.append((time.monotonic(), answer))
                return
    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(2)
    assert not changed, 'answered without a change'
    cancelled = time.monotonic()
    r = requests.post(server.api + '/tokens/current/cancel',
        headers=bearer(first['session']), timeout=30)
    assert r.status_code == 200, r.text
    thread.join(30)
    (answered, after), = changed
    assert answered - cancelled < 3
    assert (after['position'], after['waiting']) == (1, 1)
    assert after['version'] > status['version']


def test_call_now_answer(server, db):
    "Call Now answered: the patient is sent to the consultation room, which "
    "starts when the doctor is in too; answering without a call is refused"
    opd = queue_data.make_opd(db, code('CN'))
    patient, other = queue_data.make_patients(db, 2, '22')
    doctor, = queue_data.make_doctors(db, 1, opd, 'n')
    r = requests.post(server.api + '/tokens', json={'opd': opd},
        headers=bearer(other['session']), timeout=30)
    r = requests.post(server.api + '/tokens/current/call',
        headers=bearer(other['session']), timeout=30)
    assert r.status_code == 409 and r.json()['error']['code'] == 'token_state'
    r = requests.post(server.api + '/doctor/online', json={'opd': opd},
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()['current']['patient']['name'].startswith('Queue Patient')
    status = requests.get(server.api + '/tokens/current',
        headers=bearer(other['session']), timeout=30).json()
    assert status['state'] == 'called'
    assert 0 < status['call_seconds_left'] <= 120
    assert status['doctor']['name'].startswith('Dr Queue')
    r = requests.post(server.api + '/tokens/current/call',
        headers=bearer(other['session']), timeout=30)
    assert r.status_code == 200, r.text
    # with the video module the answer opens the consultation page; the
    # consultation starts when both are in the room (here: the doctor
    # starts it)
    consult = '/%s/opd/consult' % server.database
    assert r.json() == {'token_number': 1, 'state': 'called',
        'next_url': consult}
    token_id = requests.get(server.api + '/doctor/state',
        headers=bearer(doctor['session']), timeout=30).json()['current']['id']
    r = requests.post(server.api + '/doctor/tokens/%s/start' % token_id,
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 200, r.text
    status = requests.get(server.api + '/tokens/current',
        headers=bearer(other['session']), timeout=30).json()
    assert (status['state'], status['consultation_url']) == (
        'in_consultation', consult)
    # the doctor is busy: the next patient waits
    requests.post(server.api + '/tokens', json={'opd': opd},
        headers=bearer(patient['session']), timeout=30)
    status = requests.get(server.api + '/tokens/current',
        headers=bearer(patient['session']), timeout=30).json()
    assert (status['state'], status['position']) == ('waiting', 1)
    assert status['doctors'][0]['busy'] is True
    console = requests.get(server.api + '/doctor/state',
        headers=bearer(doctor['session']), timeout=30).json()
    assert console['busy'] and console['current']['state'] == (
        'in_consultation')
    assert [t['number'] for t in console['queue']] == [2]


def test_token_refusals(server, db):
    "A closed OPD names its next opening; unknown OPDs and oversized "
    "complaints name their field; nothing is created"
    zone = ZoneInfo('Asia/Kolkata')
    tomorrow = (dt.datetime.now(zone) + dt.timedelta(days=1)).weekday()
    closed = queue_data.make_opd(db, code('CL'), round_the_clock=False,
        hours=[('create', [{'weekday': str(tomorrow),
                        'open_time': dt.time(9), 'close_time': dt.time(17)}])])
    patient, = queue_data.make_patients(db, 1, '23')
    r = requests.post(server.api + '/tokens', json={'opd': closed},
        headers=bearer(patient['session']), timeout=30)
    assert r.status_code == 422
    error = r.json()['error']
    assert (error['code'], error['field']) == ('opd_closed', 'opd')
    assert 'opens next on' in error['message'] and '09:00' in error['message']
    opds = requests.get(server.api + '/opds', timeout=30).json()['opds']
    listed, = [o for o in opds if o['id'] == closed]
    assert listed['open_now'] is False
    assert listed['next_opening'].endswith('09:00:00+05:30')
    r = requests.post(server.api + '/tokens', json={'opd': 10 ** 9},
        headers=bearer(patient['session']), timeout=30)
    assert (r.status_code, r.json()['error']['field']) == (422, 'opd')
    open_ = queue_data.make_opd(db, code('OP'))
    r = requests.post(server.api + '/tokens',
        json={'opd': open_, 'complaint': 'x' * 2001},
        headers=bearer(patient['session']), timeout=30)
    assert (r.status_code, r.json()['error']['field']) == (422, 'complaint')
    assert queue_data.sql(db, 'SELECT count(*) FROM sehat_opd_token '
        'WHERE patient = %s', patient['id']) == [(0,)]


def test_console_checks_ownership(server, db):
    "A doctor sees only the tokens of their OPDs and goes online only there"
    mine = queue_data.make_opd(db, code('MY'))
    theirs = queue_data.make_opd(db, code('TH'))
    patient, = queue_data.make_patients(db, 1, '24')
    doctor, = queue_data.make_doctors(db, 1, mine, 'o')
    r = requests.post(server.api + '/tokens', json={'opd': theirs},
        headers=bearer(patient['session']), timeout=30)
    token_id = requests.get(server.api + '/tokens/current',
        headers=bearer(patient['session']), timeout=30).json()['token_id']
    r = requests.get(server.api + '/doctor/tokens/%s' % token_id,
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 404
    r = requests.post(server.api + '/doctor/online', json={'opd': theirs},
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 403
    r = requests.post(server.api + '/doctor/call-next',
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 409
    # a patient's session is no doctor's
    r = requests.get(server.api + '/doctor/state',
        headers=bearer(patient['session']), timeout=30)
    assert r.status_code == 401


class Poll:
    "A waiting room's long poll running in a thread."

    def __init__(self, server, session, version, cursor=''):
        self.answer = None
        self.thread = threading.Thread(target=self.run, args=(
                server.api + '/tokens/current/wait', session, version,
                cursor))
        self.thread.start()

    def run(self, url, session, version, cursor):
        self.answer = requests.get(url, params={
                'version': version, 'cursor': cursor},
            headers=bearer(session), timeout=120).json()

    def answered_within(self, seconds):
        self.thread.join(seconds)
        return self.answer is not None


def test_long_poll_answers_once_per_change(server, db):
    "A waiting room opened after a busy spell, or polling again after a "
    "change made in one transaction with several steps, waits for the "
    "next change instead of answering once per past bus message"
    opd = queue_data.make_opd(db, code('BU'))
    waiter, *others = queue_data.make_patients(db, 6, '25')
    doctor, = queue_data.make_doctors(db, 1, opd, 'b')

    def take(patient):
        r = requests.post(server.api + '/tokens', json={'opd': opd},
            headers=bearer(patient['session']), timeout=30)
        assert r.status_code == 201, r.text

    def current():
        return requests.get(server.api + '/tokens/current',
            headers=bearer(waiter['session']), timeout=30).json()

    take(waiter)
    # the server's bus listener runs: a poll is open while the line moves
    first = Poll(server, waiter['session'], current()['version'])
    for patient in others[:4]:
        take(patient)
    assert first.answered_within(10)
    # the page opens now (no cursor): nothing changes, so it waits
    status = current()
    opened = Poll(server, waiter['session'], status['version'])
    assert not opened.answered_within(2), opened.answer
    take(others[4])
    assert opened.answered_within(5)
    assert opened.answer['version'] > status['version']
    # one transaction moves the line twice (the doctor comes online: the
    # doctors' list changes, the first patient is called); the poll that
    # follows the answer waits for the next change
    status = current()
    polled = Poll(server, waiter['session'], status['version'],
        opened.answer['cursor'] or '')
    r = requests.post(server.api + '/doctor/online', json={'opd': opd},
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 200, r.text
    assert polled.answered_within(5)
    after = polled.answer
    assert after['state'] == 'called' and after['version'] > status['version']
    again = Poll(server, waiter['session'], after['version'],
        after['cursor'] or '')
    assert not again.answered_within(2), again.answer
    requests.post(server.api + '/tokens/current/cancel',
        headers=bearer(others[0]['session']), timeout=30)
    assert again.answered_within(5)


def test_many_waiting_rooms_wake_on_a_small_pool(small_pool_server):
    "Forty waiting rooms of one queue woken by one change, on a server "
    "with a pool of 4 connections: every one of them is answered with "
    "the new line, none with an error"
    server = small_pool_server
    queue_data.configure(server.env)
    db = server.database
    opd = queue_data.make_opd(db, code('WB'))
    waiting = queue_data.make_patients(db, 41, '30')
    queue_data.waiting_tokens(db, [p['id'] for p in waiting], opd)
    first, others = waiting[0], waiting[1:]
    version = requests.get(server.api + '/tokens/current',
        headers=bearer(first['session']), timeout=30).json()['version']
    # the pages open one after the other, then all wait
    polls = []
    for patient in others:
        polls.append(Poll(server, patient['session'], version))
        time.sleep(0.05)
    time.sleep(2)
    assert not any(p.answer for p in polls)
    r = requests.post(server.api + '/tokens/current/cancel',
        headers=bearer(first['session']), timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    for poll in polls:
        poll.thread.join(max(0, deadline - time.monotonic()))
    answers = [p.answer for p in polls]
    assert all(a and 'error' not in a for a in answers), [
        a for a in answers if not a or 'error' in a][:2]
    assert {a['waiting'] for a in answers} == {40}
    assert sorted(a['position'] for a in answers) == list(range(1, 41))


def test_burst_waits_in_turn_for_a_connection(small_pool_server):
    "Twenty-four waiting rooms reading their place at once, five times, "
    "on a server with a pool of 4 connections: each request waits for a "
    "connection to come back, none sleeps the pool's second (trytond's "
    "'waiting a connection': it made the median 1 s, see bench/README)"
    server = small_pool_server
    queue_data.configure(server.env)
    db = server.database
    opd = queue_data.make_opd(db, code('PB'))
    patients = queue_data.make_patients(db, 24, '56')
    queue_data.waiting_tokens(db, [p['id'] for p in patients], opd)
    log_start = len(server.log())

    def read(i):
        return requests.get(server.api + '/tokens/current',
            headers=bearer(patients[i]['session']), timeout=60)
    for _ in range(5):
        answers = race(len(patients), read)
        assert sorted(r.json()['position'] for r in answers) == list(
            range(1, 25)), [r.text for r in answers if not r.ok][:2]
    assert 'waiting a connection' not in server.log()[log_start:]


def test_long_poll_tells_a_missed_call(server, db):
    "A called patient's waiting room learns that the Call Now window has "
    "passed (back in line) within 3 s, though nobody else looks"
    opd = queue_data.make_opd(db, code('MW'), call_window=3)
    patient, = queue_data.make_patients(db, 1, '32')
    doctor, = queue_data.make_doctors(db, 1, opd, 'w')
    queue_data.waiting_tokens(db, [patient['id']], opd)
    r = requests.post(server.api + '/doctor/online', json={'opd': opd},
        headers=bearer(doctor['session']), timeout=30)
    assert r.status_code == 200, r.text
    status = requests.get(server.api + '/tokens/current',
        headers=bearer(patient['session']), timeout=30).json()
    assert status['state'] == 'called'
    poll = Poll(server, patient['session'], status['version'])
    assert poll.answered_within(status['call_seconds_left'] + 3)
    assert (poll.answer['state'], poll.answer['missed_calls']) == (
        'waiting', 1)
