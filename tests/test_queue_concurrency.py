"""The queue under real concurrency: parallel HTTP clients against the
real server on PostgreSQL.

Patients, doctors and waiting tokens are fixture data written straight
into the e2e database (tests/queue_data.py); the behaviour under test, the
token numbers and the assignments, goes through the HTTP API.
"""
import secrets
import threading
import time
from collections import Counter
from contextlib import contextmanager

import pytest
import requests

import queue_data
from helpers import Rpc, race


@pytest.fixture(scope='module')
def db(server):
    queue_data.configure(server.env)
    return server.database


def bearer(session):
    return {'Authorization': 'Bearer %s' % session}


def new_code(prefix):
    return '%s%s' % (prefix, secrets.token_hex(2).upper())


@contextmanager
def churning(server, opd, patients):
    """While the block runs, `patients` keep taking and cancelling tokens of
    `opd`: each request changes the queue, so every transaction that bumps
    it meets a concurrent change. Yields the list of 5xx answers' texts."""
    stop = threading.Event()
    failures = []

    def churn(patient):
        while not stop.is_set():
            for path, body in [('/tokens', {'opd': opd}),
                    ('/tokens/current/cancel', {})]:
                r = requests.post(server.api + path, json=body,
                    headers=bearer(patient['session']), timeout=60)
                if r.status_code >= 500:
                    failures.append(r.text)
    threads = [threading.Thread(target=churn, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    try:
        yield failures
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)


def test_64_patients_take_tokens_at_once(server, db):
    "64 patients pressing 'Take token' together get 64 distinct numbers"
    opd = queue_data.make_opd(db, new_code('C64'))
    patients = queue_data.make_patients(db, 64, '64')
    assert len(patients) == 64

    def take(i):
        return requests.post(server.api + '/tokens',
            json={'opd': opd, 'complaint': 'Fever %s' % i},
            headers=bearer(patients[i]['session']), timeout=120)
    responses = race(64, take)
    errors = [r for r in responses
        if not isinstance(r, requests.Response) or r.status_code != 201]
    assert not errors, [getattr(r, 'text', r) for r in errors][:3]
    numbers = sorted(r.json()['token_number'] for r in responses)
    assert numbers == list(range(1, 65))

    rows = queue_data.sql(db, 'SELECT t.number, t.seq, t.patient '
        'FROM sehat_opd_token t WHERE t.opd = %s', opd)
    assert len(rows) == 64
    assert len({seq for _, seq, _ in rows}) == 64
    assert {patient for _, _, patient in rows} == {p['id'] for p in patients}
    (last_number, tail, appointments), = queue_data.sql(db,
        'SELECT q.last_number, q.tail, (SELECT count(*) '
        'FROM gnuhealth_appointment a JOIN sehat_opd_token t '
        'ON t.appointment = a.id WHERE t.opd = q.opd) '
        'FROM sehat_opd_queue q WHERE q.opd = %s', opd)
    assert (last_number, tail, appointments) == (64, 64, 64)
    # every patient sees a distinct place in the line
    positions = race(64, lambda i: requests.get(server.api + '/tokens/current',
            headers=bearer(patients[i]['session']), timeout=60).json())
    assert sorted(p['position'] for p in positions) == list(range(1, 65))
    assert {p['waiting'] for p in positions} == {64}


def test_32_doctors_call_next_on_20_waiting(server, db):
    "32 doctors pressing 'Call next patient' together on a queue of 20: "
    "20 calls, each patient called once, no doctor with two"
    opd = queue_data.make_opd(db, new_code('C32'))
    patients = queue_data.make_patients(db, 20, '32')
    tokens = queue_data.waiting_tokens(db, [p['id'] for p in patients], opd)
    doctors = queue_data.make_doctors(db, 32, opd, 'c')
    queue_data.set_online(db, [d['id'] for d in doctors], opd)

    def call_next(i):
        return requests.post(server.api + '/doctor/call-next',
            headers=bearer(doctors[i]['session']), timeout=120)
    responses = race(32, call_next)
    assert all(isinstance(r, requests.Response) for r in responses), [
        r for r in responses if not isinstance(r, requests.Response)]
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 20, 409: 12}, [
        r.text for r in responses if r.status_code not in {200, 409}][:3]
    assert {r.json()['error']['code'] for r in responses
        if r.status_code == 409} == {'token_state'}
    called = [r.json()['token']['id'] for r in responses
        if r.status_code == 200]
    assert sorted(called) == sorted(tokens)

    rows = queue_data.sql(db, 'SELECT id, state, healthprof '
        'FROM sehat_opd_token WHERE opd = %s', opd)
    assert {state for _, state, _ in rows} == {'called'}
    doctor_ids = [healthprof for _, _, healthprof in rows]
    assert len(set(doctor_ids)) == 20
    assert set(doctor_ids) <= {d['id'] for d in doctors}
    presences = queue_data.sql(db, 'SELECT healthprof, current_token '
        'FROM sehat_opd_presence WHERE opd = %s '
        'AND current_token IS NOT NULL', opd)
    assert sorted(presences) == sorted(
        (healthprof, id_) for id_, _, healthprof in rows)


def test_one_patient_racing_gets_one_token(server, db):
    "Eight 'Take token' presses of one patient at once, to two OPDs, from "
    "the app (JSON API) and the portal's form, on two sessions: one token, "
    "the others refused as conflicts"
    first = queue_data.make_opd(db, new_code('R1'))
    second = queue_data.make_opd(db, new_code('R2'))
    patient, = queue_data.make_patients(db, 1, '01')
    phone = bearer(patient['session'])
    with queue_data.transaction(db) as pool:  # logged in on a computer too
        _, computer = pool.get('sehat.opd.session').start(
            patient=pool.get('gnuhealth.patient')(patient['id']))
    form_token = secrets.token_urlsafe(16)
    cookies = {'sehat_session': computer, 'sehat_form': form_token}

    def take(i):
        opd = first if i % 2 else second
        if i < 4:
            return requests.post(server.api + '/tokens',
                json={'opd': opd, 'complaint': 'Cough'}, headers=phone,
                timeout=120)
        return requests.post(server.portal + '/token', data={
                'opd': opd, 'complaint': 'Cough', 'csrf_token': form_token},
            cookies=cookies, allow_redirects=False, timeout=120)
    responses = race(8, take)
    statuses = Counter(getattr(r, 'status_code', r) for r in responses)
    # issued: 201 from the API or 303 to the waiting room from the form;
    # refused: 409 from the API, the form shown again (422) with the reason
    assert statuses[201] + statuses[303] == 1, statuses
    assert statuses[409] + statuses[422] == 7, [
        getattr(r, 'text', r)[:300] for r in responses
        if getattr(r, 'status_code', None) not in {201, 303, 409, 422}][:2]
    assert {r.json()['error']['code'] for r in responses
        if r.status_code == 409} <= {'conflict'}
    for r in responses:
        if r.status_code == 422:
            assert 'You can hold one token at a time' in r.text, r.text
    rows = queue_data.sql(db, 'SELECT state FROM sehat_opd_token '
        'WHERE patient = %s', patient['id'])
    assert rows == [('waiting',)]
    appointments = queue_data.sql(db, 'SELECT count(*) '
        'FROM gnuhealth_appointment WHERE patient = %s', patient['id'])
    assert appointments == [(1,)]


def test_stale_issue_refused_by_the_database(server, db):
    "A token issued from a transaction that started before the patient "
    "took one (the referral cron, at REPEATABLE READ, does not see it "
    "behind the patient's row lock) is refused by the database itself"
    from trytond.model.exceptions import SQLConstraintError
    first = queue_data.make_opd(db, new_code('S1'))
    referral = queue_data.make_opd(db, new_code('S2'))
    patient, = queue_data.make_patients(db, 1, '02')
    with pytest.raises(SQLConstraintError):
        with queue_data.transaction(db) as pool:
            Token = pool.get('sehat.opd.token')
            Patient = pool.get('gnuhealth.patient')
            OPD = pool.get('sehat.opd')
            record = Patient(patient['id'])
            assert Token.current(record) is None  # the snapshot is taken
            r = requests.post(server.api + '/tokens', json={'opd': first},
                headers=bearer(patient['session']), timeout=60)
            assert r.status_code == 201, r.text
            Token.issue(record, OPD(referral), 'Referred', at_head=True)
    rows = queue_data.sql(db, 'SELECT opd, state FROM sehat_opd_token '
        'WHERE patient = %s', patient['id'])
    assert rows == [(first, 'waiting')]


def deadlocks(db):
    "Deadlocks PostgreSQL has broken in the database so far."
    return queue_data.sql(db, 'SELECT deadlocks FROM pg_stat_database '
        'WHERE datname = current_database()')[0][0]


def test_patients_at_the_head_cancel_at_once(server, db):
    "Ten patients at the head of the line cancel together while their OPD "
    "tells the next ones that their turn is near: every cancel succeeds "
    "and no two of them deadlock (PostgreSQL would break each deadlock "
    "after a second, a retry each)"
    opd = queue_data.make_opd(db, new_code('CH'))
    patients = queue_data.make_patients(db, 14, '59')
    queue_data.waiting_tokens(db, [p['id'] for p in patients], opd)
    before = deadlocks(db)

    def cancel(i):
        return requests.post(server.api + '/tokens/current/cancel',
            headers=bearer(patients[i]['session']), timeout=120)
    results = race(10, cancel)
    assert [r.status_code for r in results] == [200] * 10, [
        getattr(r, 'text', r) for r in results]
    # the statistics collector reports within a second or so
    time.sleep(1.5)
    assert deadlocks(db) == before
    states = Counter(state for state, in queue_data.sql(db,
            'SELECT state FROM sehat_opd_token WHERE opd = %s', opd))
    assert states == {'cancelled': 10, 'waiting': 4}


def test_consultations_start_while_the_queue_moves(server, db):
    "Six patients and their doctors entering the video rooms while other "
    "patients keep taking and cancelling tokens of the same OPD: every "
    "consultation starts, no request fails"
    opd = queue_data.make_opd(db, new_code('VQ'))
    patients = queue_data.make_patients(db, 6, '26')
    churners = queue_data.make_patients(db, 6, '27')
    doctors = queue_data.make_doctors(db, 6, opd, 'v')
    queue_data.waiting_tokens(db, [p['id'] for p in patients], opd)
    for doctor in doctors:
        r = requests.post(server.api + '/doctor/online', json={'opd': opd},
            headers=bearer(doctor['session']), timeout=60)
        assert r.status_code == 200, r.text
    calls = dict(queue_data.sql(db, 'SELECT patient, id FROM sehat_opd_token '
            "WHERE opd = %s AND state = 'called'", opd))
    by_doctor = dict(queue_data.sql(db, 'SELECT id, healthprof '
            'FROM sehat_opd_token WHERE opd = %s', opd))
    sessions = {d['id']: d['session'] for d in doctors}
    assert len(calls) == 6

    def enter(i):
        patient = patients[i]
        token = calls[patient['id']]
        doctor = sessions[by_doctor[token]]
        first = requests.post(server.api + '/tokens/current/video',
            json={'event': 'joined'}, headers=bearer(patient['session']),
            timeout=120)
        second = requests.post(server.api + '/doctor/tokens/%s/video' % token,
            json={'event': 'joined'}, headers=bearer(doctor), timeout=120)
        return first.status_code, second.status_code, second.text

    with churning(server, opd, churners) as failures:
        results = race(6, enter)
    assert all(r[:2] == (200, 200) for r in results), results
    assert not failures, failures[:3]
    states = queue_data.sql(db, 'SELECT DISTINCT state FROM sehat_opd_token '
        'WHERE id IN %s', tuple(calls.values()))
    assert states == [('in_consultation',)]


def test_sign_while_the_queue_moves(server, db):
    "The doctor signs and issues the e-prescription in the back office "
    "while other patients keep taking and cancelling tokens of the OPD: "
    "the prescription is issued and the consultation completed"
    opd = queue_data.make_opd(db, new_code('SQ'))
    patient, *churners = queue_data.make_patients(db, 7, '29')
    doctor, = queue_data.make_doctors(db, 1, opd, 's',
        password='sign-queue-Doctor-1', prescriber=True)
    token, = queue_data.waiting_tokens(db, [patient['id']], opd)
    r = requests.post(server.api + '/doctor/online', json={'opd': opd},
        headers=bearer(doctor['session']), timeout=60)
    assert r.json()['current']['id'] == token, r.text
    rpc = Rpc(server, doctor['login'], 'sign-queue-Doctor-1')
    evaluation, = rpc('sehat.opd.token', 'consultation', [token])['res_id']
    rpc('gnuhealth.patient.evaluation', 'write', [evaluation], {
            'sehat_mode': 'video', 'visit_type': 'new',
            'info_diagnosis': 'Acute pharyngitis'})
    order, = rpc('sehat.opd.token', 'prescribe', [token])['res_id']
    medicament, = rpc.search('gnuhealth.medicament',
        [('rec_name', '=', 'Paracetamol 500 mg tablet')], limit=1)
    rpc('gnuhealth.prescription.line', 'create', [{
                'presc_order': order, 'medicament': medicament, 'qty': 1}])
    rpc('gnuhealth.prescription.order', 'write', [order],
        {'prescription_warning_ack': True})

    with churning(server, opd, churners) as failures:
        rpc('gnuhealth.prescription.order', 'sehat_sign', [order])
    assert not failures, failures[:3]
    assert queue_data.sql(db, 'SELECT o.sehat_state, t.state '
        'FROM sehat_opd_token t JOIN gnuhealth_prescription_order o '
        'ON o.id = t.prescription WHERE t.id = %s', token) == [
        ('issued', 'completed')]
