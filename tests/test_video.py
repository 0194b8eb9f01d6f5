"""Video consultation through the real server (sehat_opd_video): who gets a
token for which room, when the consultation starts, rejoining, the live
consultation feed, the pages' access rules and the JaaS mode."""
import base64
import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from zoneinfo import ZoneInfo

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (
    JITSI_APP_ID, JITSI_SECRET, ROOT, Server, _psql, free_port)
from helpers import Rpc

ROOM = re.compile(r'^sehat-[a-z2-7]{32}$')
PNG = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01'
    b'\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0'
    b'\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82')


def create_opd(server, code, doctors):
    """A round-the-clock OPD of the test's own, copied from DEMO24, with
    `doctors` (logins): no other test's doctor can take its patients."""
    database = server.database
    columns = _psql(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns"
        " WHERE table_name = 'sehat_opd'"
        " AND column_name NOT IN ('id', 'code', 'name')", database)
    opd_id = int(_psql(
            "INSERT INTO sehat_opd (code, name, %s) SELECT '%s', "
            "'Video Test OPD %s', %s FROM sehat_opd WHERE code = 'DEMO24' "
            "RETURNING id" % (columns, code, code, columns), database
            ).splitlines()[0])
    # the doctors as an administrator adds them in the back office: the
    # server forgets who may see which OPD (rows written in SQL would
    # leave its cache as it was)
    admin = Rpc(server, 'admin', 'admin')
    healthprofs = admin('gnuhealth.healthprofessional', 'search', [
            ('party.internal_user.login', 'in', doctors)])
    admin('sehat.opd', 'write', [opd_id], {
            'doctors': [('add', healthprofs)]})
    return opd_id


def logged_in(api, new_mobile):
    """Register a patient and log them in with a second OTP; the first
    OTP is aged in the database so that the resend delay (30 s, per
    mobile) does not make every test wait."""
    mobile = new_mobile()
    api.patient_id = api.register(mobile)
    api.mobile = mobile
    _psql("UPDATE sehat_opd_otp SET create_date = create_date "
        "- interval '1 hour' WHERE mobile = '+91%s'" % mobile[-10:],
        api.server.database)
    api.login(mobile)
    return api


@pytest.fixture
def patient(api, new_mobile):
    "A registered and logged-in patient (see logged_in)."
    return logged_in(api, new_mobile)


def another_patient(api, new_mobile):
    return logged_in(type(api)(api.server), new_mobile)


@pytest.fixture(scope='module')
def video_opd(server):
    code = 'VID%s' % (os.getpid() % 100000)
    opd_id = create_opd(server, code, ['dr.rao', 'dr.singh'])
    return {'id': opd_id, 'code': code}


@pytest.fixture
def rao(doctor_login, video_opd):
    "dr.rao, online in the test OPD; offline again after the test."
    doctor = doctor_login('dr.rao')
    doctor.patients = []
    yield doctor
    for patient in doctor.patients:  # a failed test must not block the next
        patient.post('/tokens/current/cancel')
    state = doctor.get('/state').json()
    current = state.get('current')
    if current and current['state'] == 'in_consultation':
        doctor.post('/tokens/%s/complete' % current['id'])
    doctor.post('/offline')


def online(doctor, opd):
    r = doctor.post('/online', json={'opd': opd['id']})
    assert r.status_code == 200, r.text
    return r.json()


def take_token(patient, opd, **kwargs):
    r = patient.take_token(opd['code'], **kwargs)
    assert r.status_code == 201, r.text
    return r.json()


def called(patient, doctor, opd):
    "The patient takes a token and the doctor (going online) calls it."
    doctor.patients.append(patient)
    take_token(patient, opd)
    online(doctor, opd)
    status = patient.get('/tokens/current').json()
    assert status['state'] == 'called', status
    return status['token_id']


def decode(answer, key=JITSI_SECRET, algorithms=('HS256',), **kwargs):
    kwargs.setdefault('audience', 'jitsi')
    return jwt.decode(answer['jwt'], key, algorithms=list(algorithms),
        **kwargs)


def video_room(server, token_id):
    return _psql('SELECT video_room FROM sehat_opd_token WHERE id = %s'
        % token_id, server.database)


def test_join_only_when_called(patient, rao, video_opd, api, new_mobile):
    "No room before the call, nor for a patient without a token"
    take_token(patient, video_opd)
    r = patient.post('/tokens/current/join')
    assert r.status_code == 409, r.text
    assert r.json()['error']['code'] == 'token_state'
    stranger = another_patient(api, new_mobile)
    r = stranger.post('/tokens/current/join')
    assert r.status_code == 404, r.text
    r = requests.post(patient.url('/tokens/current/join'), timeout=10)
    assert r.status_code == 401
    # a cookie session without its CSRF header cannot mint a token
    r = patient.http.post(patient.url('/tokens/current/join'), timeout=10)
    assert r.status_code == 403
    patient.post('/tokens/current/cancel')


def test_tokens_for_patient_and_doctor(server, patient, rao, video_opd,
        fake_jitsi):
    "Both sides get a JWT for the token's own room; every claim checked"
    token_id = called(patient, rao, video_opd)
    r = patient.post('/tokens/current/call')
    assert r.status_code == 200, r.text
    assert r.json()['state'] == 'called', 'answering no longer starts'
    assert r.json()['next_url'] == '/%s/opd/consult' % server.database
    before = int(time.time())
    r = patient.post('/tokens/current/join')
    assert r.status_code == 200, r.text
    answer = r.json()
    room = video_room(server, token_id)
    assert ROOM.match(room)
    assert answer['domain'] == fake_jitsi.domain
    assert answer['room'] == room
    assert answer['script'] == fake_jitsi.origin + '/external_api.js'
    assert answer['options']['roomName'] == room
    assert answer['options']['noSSL'] is True
    assert answer['options']['configOverwrite']['prejoinConfig'] == {
        'enabled': False}
    assert answer['options']['configOverwrite']['resolution'] == 360
    assert answer['options']['userInfo']['displayName'] == 'Test Patient'
    header = jwt.get_unverified_header(answer['jwt'])
    assert header['alg'] == 'HS256'
    claims = decode(answer, issuer=JITSI_APP_ID)
    assert claims['sub'] == 'meet.jitsi'
    assert claims['room'] == room
    assert claims['nbf'] <= before <= claims['iat'] + 5
    # the token ends with the consultation: the day, the time limit
    midnight = dt.datetime.combine(
        dt.datetime.now(ZoneInfo('Asia/Kolkata')).date()
        + dt.timedelta(days=1), dt.time(), ZoneInfo('Asia/Kolkata'))
    assert claims['exp'] <= midnight.timestamp()
    assert claims['exp'] <= before + 3600 + 5
    user = claims['context']['user']
    assert user == {'id': user['id'], 'name': 'Test Patient', 'email': '',
        'avatar': '', 'affiliation': 'member', 'moderator': 'false'}
    assert all(isinstance(v, str) for v in user.values())
    assert patient.patient_id not in answer['jwt']
    with pytest.raises(jwt.InvalidSignatureError):
        decode(answer, key='not-the-secret-but-long-enough-32b')

    r = rao.post('/tokens/%s/join' % token_id)
    assert r.status_code == 200, r.text
    doctor = decode(r.json(), issuer=JITSI_APP_ID)
    assert doctor['room'] == room
    assert doctor['context']['user']['affiliation'] == 'owner'
    assert doctor['context']['user']['moderator'] == 'true'
    assert 'Rao' in doctor['context']['user']['name']
    assert 'desktop' in r.json()['options']['configOverwrite'][
        'toolbarButtons']
    patient.post('/tokens/current/cancel')


def test_other_doctors_and_patients_refused(server, patient, rao,
        doctor_login, video_opd, api, new_mobile):
    "Only the assigned doctor and the token's patient get into the room"
    token_id = called(patient, rao, video_opd)
    room = video_room(server, token_id)
    singh = doctor_login('dr.singh')  # same OPD, not the one who called
    r = singh.post('/tokens/%s/join' % token_id)
    assert r.status_code == 403, r.text
    assert r.json()['error']['code'] == 'forbidden'
    r = singh.post('/tokens/%s/video' % token_id, json={'event': 'joined'})
    assert r.status_code == 403
    iyer = doctor_login('dr.iyer')  # not a doctor of this OPD
    r = iyer.post('/tokens/%s/join' % token_id)
    assert r.status_code == 404, r.text
    r = iyer.get('/tokens/%s/consultation' % token_id)
    assert r.status_code == 404
    other = another_patient(api, new_mobile)
    take_token(other, video_opd)  # waits: dr.rao is busy
    r = other.post('/tokens/current/join')
    assert r.status_code == 409
    assert room not in r.text
    r = other.get('/tokens/current/consultation', params={'token': token_id})
    assert r.status_code == 404
    other.post('/tokens/current/cancel')
    patient.post('/tokens/current/cancel')


def test_consultation_starts_when_both_in_and_rejoin(server, patient, rao,
        video_opd):
    "Both in the room: in consultation; a dropped patient rejoins"
    token_id = called(patient, rao, video_opd)
    room = video_room(server, token_id)
    patient.post('/tokens/current/call')
    assert patient.post('/tokens/current/join').status_code == 200
    r = patient.post('/tokens/current/video', json={'event': 'joined'})
    assert r.status_code == 200, r.text
    assert r.json()['patient_in'] and r.json()['state'] == 'called'
    assert patient.get('/tokens/current').json()['state'] == 'called'
    r = rao.post('/tokens/%s/video' % token_id, json={'event': 'joined'})
    assert r.json()['state'] == 'in_consultation', r.text
    assert patient.get('/tokens/current').json()['state'] == (
        'in_consultation')
    r = patient.post('/tokens/current/video', json={'event': 'dance'})
    assert r.status_code == 422 and r.json()['error']['field'] == 'event'

    # the patient drops, the doctor sees it, the patient comes back
    patient.post('/tokens/current/video', json={'event': 'left'})
    feed = rao.get('/tokens/%s/consultation' % token_id).json()
    assert feed['token']['patient_in'] is False
    assert feed['token']['doctor_in'] is True
    r = patient.post('/tokens/current/join')
    assert r.status_code == 200
    assert r.json()['room'] == room
    patient.post('/tokens/current/video', json={'event': 'joined'})
    feed = patient.get('/tokens/current/consultation',
        params={'token': token_id}).json()
    assert feed['token']['patient_in'] and feed['token']['doctor_in']

    # the prescription is issued: no more room for anyone
    assert rao.post('/tokens/%s/complete' % token_id).status_code == 200
    r = patient.post('/tokens/current/join')
    assert r.status_code == 409 and r.json()['error']['code'] == 'token_state'
    r = rao.post('/tokens/%s/join' % token_id)
    assert r.status_code == 409
    feed = patient.get('/tokens/current/consultation',
        params={'token': token_id}).json()
    assert feed['token']['state'] == 'completed' and feed['token']['over']


def test_continue_without_video(patient, rao, video_opd):
    "The doctor can go on by chat or phone once the patient answered"
    token_id = called(patient, rao, video_opd)
    r = rao.post('/tokens/%s/start' % token_id)
    assert r.status_code == 409, 'not before the patient answers'
    patient.post('/tokens/current/call')
    r = rao.post('/tokens/%s/start' % token_id)
    assert r.status_code == 200, r.text
    assert r.json()['state'] == 'in_consultation'


def test_chat_is_live_both_ways(patient, rao, video_opd):
    "A chat line wakes the other side's long poll; files go both ways"
    token_id = called(patient, rao, video_opd)
    patient.post('/tokens/current/call')
    feed = rao.get('/tokens/%s/consultation' % token_id).json()
    if not feed['live']:
        pytest.skip('no bus on this database')
    result = {}

    def wait():
        started = time.monotonic()
        result['feed'] = rao.get('/tokens/%s/consultation' % token_id,
            params={'version': feed['version'],
                'cursor': feed['cursor'] or '', 'after': 0}).json()
        result['seconds'] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(2)
    assert 'feed' not in result, 'the poll waits while nothing changes'
    r = patient.post('/tokens/current/messages', data={'text': 'My report'},
        files={'file': ('report.png', PNG, 'image/png')})
    assert r.status_code == 201, r.text
    sent = r.json()
    waiter.join(30)
    assert result['seconds'] < 5, result
    assert [m['id'] for m in result['feed']['messages']] == [sent['id']]
    line = result['feed']['messages'][0]
    assert line['sender'] == 'patient' and line['text'] == 'My report'
    r = rao.get('/files/%s' % line['file']['id'])
    assert r.status_code == 200 and r.content == PNG

    r = rao.post('/tokens/%s/messages' % token_id,
        data={'text': 'Take rest'},
        files={'file': ('advice.png', PNG, 'image/png')})
    assert r.status_code == 201, r.text
    feed = patient.get('/tokens/current/consultation', params={
            'token': token_id, 'after': sent['id']}).json()
    assert [(m['sender'], m['text']) for m in feed['messages']] == [
        ('doctor', 'Take rest')]
    r = patient.get('/files/%s' % feed['messages'][0]['file']['id'])
    assert r.status_code == 200 and r.content == PNG
    patient.post('/tokens/current/cancel')


def test_pages_access(server, patient, rao, doctor_login, video_opd,
        fake_jitsi):
    "The consultation pages: own session only, Jitsi allowed by CSP"
    token_id = called(patient, rao, video_opd)
    consult = server.portal + '/consult'
    r = requests.get(consult, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and '/login' in r.headers['Location']
    # a session idle for a few minutes is touched on this GET page too
    _psql("UPDATE sehat_opd_session SET last_activity = last_activity "
        "- interval '3 minutes' WHERE patient IS NOT NULL", server.database)
    r = patient.http.get(consult, timeout=10)
    assert r.status_code == 200, r.text
    csp = dict(part.strip().split(' ', 1) for part in
        r.headers['Content-Security-Policy'].split(';'))
    assert fake_jitsi.origin in csp['script-src']
    assert fake_jitsi.origin in csp['frame-src']
    assert "'unsafe-inline'" not in csp['script-src']
    assert fake_jitsi.origin in r.headers['Permissions-Policy']
    assert fake_jitsi.origin + '/external_api.js' in r.text

    page = server.portal + '/doctor/consult/%s' % token_id
    r = requests.get(page, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303)
    assert r.headers['Location'].endswith('/doctor/?token=%s' % token_id)
    r = doctor_login('dr.singh').http.get(page, timeout=10)
    assert r.status_code == 403
    r = doctor_login('dr.iyer').http.get(page, timeout=10)
    assert r.status_code == 404
    r = rao.http.get(page, timeout=10)
    assert r.status_code == 200, r.text
    assert '/#%s/model/sehat.opd.token/%s' % (server.database, token_id) in (
        r.text)
    assert 'Test Patient' in r.text and 'Fever' in r.text
    r = requests.get(server.portal + '/device-check', timeout=10)
    assert r.status_code == 200
    assert 'speaker-test.wav' in r.text
    r = requests.get(server.portal
        + '/static/sehat_opd_video/speaker-test.wav', timeout=10)
    assert r.status_code == 200 and r.content[:4] == b'RIFF'
    patient.post('/tokens/current/cancel')


def test_back_office_button_opens_consultation(server, patient, rao,
        video_opd):
    "The token's Doctor Console button leads to the consultation page"
    token_id = called(patient, rao, video_opd)
    rpc = server.base + '/' + server.database + '/'
    r = requests.post(rpc, json={'id': 1, 'method': 'common.db.login',
            'params': ['dr.rao', {'password': 'sehat-demo'}, 'en']},
        timeout=30)
    user_id, session = r.json()['result']
    auth = base64.b64encode(
        ('dr.rao:%s:%s' % (user_id, session)).encode()).decode()
    r = requests.post(rpc, json={'id': 2,
            'method': 'model.sehat.opd.token.open_console',
            'params': [[token_id], {}]},
        headers={'Authorization': 'Session ' + auth}, timeout=30)
    assert 'error' not in r.json(), r.text
    assert r.json()['result']['url'] == '/%s/opd/doctor/consult/%s' % (
        server.database, token_id)
    patient.post('/tokens/current/cancel')


@pytest.fixture(scope='module')
def jaas_server(server, tmp_path_factory, fake_jitsi):
    "A second server on the same database, in JaaS mode."
    folder = tmp_path_factory.mktemp('jaas')
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = folder / 'jaas.pem'
    key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    port = free_port()
    app_id = 'vpaas-magic-cookie-0123456789abcdef0123456789abcdef'
    env = dict(server.env)
    env.update(fake_jitsi.settings(
            TRYTOND_SEHAT_OPD_VIDEO__MODE='jaas',
            TRYTOND_SEHAT_OPD_VIDEO__APP_ID=app_id,
            TRYTOND_SEHAT_OPD_VIDEO__APP_SECRET='',
            TRYTOND_SEHAT_OPD_VIDEO__JAAS_KID=app_id + '/4f4910',
            TRYTOND_SEHAT_OPD_VIDEO__JAAS_PRIVATE_KEY_FILE=str(key_file)))
    env['TRYTOND_WEB__LISTEN'] = '127.0.0.1:%s' % port
    jaas = Server(server.database, port, folder / 'trytond.log', env)
    jaas.start()
    jaas.public_key = public
    jaas.app_id = app_id
    yield jaas
    jaas.stop()


def test_jaas_mode(jaas_server, patient, rao, video_opd, fake_jitsi):
    "JaaS: RS256 with the key id, AppID/room for the IFrame API"
    token_id = called(patient, rao, video_opd)
    app_id = jaas_server.app_id
    session = requests.Session()
    session.cookies.update(patient.http.cookies)
    headers = {'X-CSRF-Token': patient.csrf}
    r = session.post(jaas_server.api + '/tokens/current/join',
        headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    room = video_room(jaas_server, token_id)
    assert answer['room'] == '%s/%s' % (app_id, room)
    assert answer['options']['roomName'] == answer['room']
    assert answer['script'] == '%s/%s/external_api.js' % (
        fake_jitsi.origin, app_id)
    assert jwt.get_unverified_header(answer['jwt']) == {
        'alg': 'RS256', 'kid': app_id + '/4f4910', 'typ': 'JWT'}
    claims = decode(answer, key=jaas_server.public_key,
        algorithms=['RS256'], issuer='chat')
    assert claims['sub'] == app_id
    assert claims['room'] == room
    assert claims['context']['user']['moderator'] == 'false'
    assert set(claims['context']['features'].values()) == {'false'}
    doctor = requests.Session()
    doctor.cookies.update(rao.http.cookies)
    r = doctor.post(jaas_server.api + '/doctor/tokens/%s/join' % token_id,
        headers={'X-CSRF-Token': rao.csrf}, timeout=30)
    assert r.status_code == 200, r.text
    claims = decode(r.json(), key=jaas_server.public_key,
        algorithms=['RS256'], issuer='chat')
    assert claims['context']['user']['moderator'] == 'true'
    assert claims['room'] == room
    patient.post('/tokens/current/cancel')


def test_portal_texts_translated():
    "Every text of the video pages has its Hindi translation"
    out = subprocess.run(
        [sys.executable, str(ROOT / 'scripts' / 'portal_messages.py'),
            '--check'], capture_output=True, text=True)
    missing = [line for line in out.stdout.splitlines()
        if line.startswith('sehat_opd_video ')]
    assert not missing, '\n'.join(missing)
