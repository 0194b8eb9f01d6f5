"""The video consultation in Chromium (fake camera and microphone): the
patient's and the doctor's pages against the Jitsi domain the tests serve
(tests/fake_jitsi: an external_api.js that records its options and lets the
test fire conference events), the chat both ways with files, a drop and a
rejoin, the end; and the device check page. Screenshots in
tests/screenshots/video-*.png."""
import os
import re
import time

import jwt
import pytest
from playwright.sync_api import expect

from conftest import (
    DESKTOP, JITSI_APP_ID, JITSI_SECRET, Doctor, _psql, shot, shot_widths)
from test_video import PNG, create_opd, logged_in, video_room


@pytest.fixture(scope='module')
def browser_opd(server):
    code = 'VIDB%s' % (os.getpid() % 10000)
    return {'id': create_opd(server, code, ['dr.khan']),
        'code': code}


def share_session(context, client, server, cookie):
    "Give the browser the session of an API client (same cookie)."
    context.add_cookies([{
                'name': cookie, 'value': client.http.cookies[cookie],
                'domain': '127.0.0.1', 'path': '/%s/opd' % server.database,
                }])


def wait_for(page, expression, timeout=10):
    """Poll `expression` until true: the pages' CSP forbids the eval that
    page.wait_for_function would need."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, 'timeout: %s' % expression
        time.sleep(0.1)


def options_of(page):
    wait_for(page, 'window.__jitsiOptions !== undefined')
    return page.evaluate('window.__jitsiOptions')


def fire(page, event, data=None):
    page.evaluate('([name, data]) => window.__jitsi.fire(name, data)',
        [event, data or {}])


def claims_of(options):
    return jwt.decode(options['jwt'], JITSI_SECRET, algorithms=['HS256'],
        audience='jitsi', issuer=JITSI_APP_ID)


def test_video_consultation(server, browser, context, page, api,
        new_mobile, browser_opd, fake_jitsi):
    # The patient takes a token with a record; dr.khan goes online.
    patient = logged_in(api, new_mobile)
    r = patient.take_token(browser_opd['code'], complaint='Fever and cough',
        files=[('report.png', PNG, 'image/png')])
    assert r.status_code == 201, r.text
    token_id = patient.get('/tokens/current').json()['token_id']
    doctor = Doctor(server, 'dr.khan')
    doctor.serve(browser_opd['id'], token_id)
    status = patient.get('/tokens/current').json()
    assert status['state'] == 'called', status
    room = video_room(server, token_id)
    try:
        _consult(server, browser, context, page, patient, doctor, token_id,
            room, fake_jitsi)
    finally:
        patient.post('/tokens/current/cancel')
        state = doctor.get('/state').json()
        if state['current'] and state['current']['state'] == (
                'in_consultation'):
            doctor.post('/tokens/%s/complete' % state['current']['id'])
        doctor.post('/offline')


def _consult(server, browser, context, page, patient, doctor, token_id,
        room, fake_jitsi):
    # Call Now answered: the answer leads to the consultation page.
    answer = patient.post('/tokens/current/call').json()
    share_session(context, patient, server, 'sehat_session')
    page.goto(server.base + answer['next_url'])
    expect(page.locator('#permission')).to_be_visible()
    expect(page.locator('#permission')).to_contain_text('Allow')
    expect(page.locator('#display-name')).to_have_text('Test Patient')
    # the explanation comes before anything asks for the camera
    assert page.evaluate('typeof window.JitsiMeetExternalAPI') == 'function'
    assert page.evaluate('window.__jitsiOptions') is None
    assert page.locator('#stage iframe').count() == 0
    shot(page, 'video-patient-before-start')

    page.click('#start')
    options = options_of(page)
    assert page.evaluate('window.__jitsiDomain') == fake_jitsi.domain
    assert options['roomName'] == room
    assert claims_of(options)['room'] == room
    assert claims_of(options)['context']['user']['affiliation'] == 'member'
    config = options['configOverwrite']
    assert config['prejoinConfig'] == {'enabled': False}
    assert config['prejoinPageEnabled'] is False
    assert config['readOnlyName'] is True
    assert config['resolution'] == 360
    assert config['constraints']['video']['height']['ideal'] == 360
    assert options['userInfo']['displayName'] == 'Test Patient'
    # the Jitsi frame may use the (fake) camera: CSP and
    # Permissions-Policy let the Jitsi origin in
    frame = page.frame_locator('#stage iframe')
    expect(frame.locator('body')).to_have_attribute(
        'data-media', 'ok', timeout=15_000)
    assert any(path.startswith('/' + room) for path in fake_jitsi.requests)
    fire(page, 'videoConferenceJoined', {'id': 'patient'})
    expect(page.locator('#status')).to_contain_text(
        'The doctor will join you shortly')
    assert patient.get('/tokens/current').json()['state'] == 'called'

    # The doctor opens the consultation from the console / back office.
    doctor_context = browser.new_context(viewport=DESKTOP, locale='en-IN')
    doctor_context.set_default_timeout(15_000)
    try:
        _doctor_side(server, doctor_context, page, patient, doctor,
            token_id, room)
    finally:
        doctor_context.close()
    assert page.errors == [], page.errors


def _doctor_side(server, doctor_context, page, patient, doctor, token_id,
        room):  # noqa: C901 (one story, told in order)
    share_session(doctor_context, doctor, server, 'sehat_staff')
    dpage = doctor_context.new_page()
    dpage.errors = []
    dpage.on('pageerror', lambda error: dpage.errors.append(str(error)))
    dpage.goto(server.portal + '/doctor/consult/%s' % token_id)
    expect(dpage.locator('h1')).to_contain_text('Test Patient')
    summary = dpage.locator('.summary')
    expect(summary).to_contain_text('Fever and cough')
    expect(summary).to_contain_text('IC-')
    record = summary.locator('.files a').first
    assert dpage.request.get(
        server.base + record.get_attribute('href')).body() == PNG
    backoffice = dpage.locator('#backoffice')
    assert backoffice.get_attribute('href') == (
        '/#%s/model/sehat.opd.token/%s' % (server.database, token_id))
    # the patient answered Call Now: the doctor may go on without video
    expect(dpage.locator('#without-video')).to_be_visible()
    expect(dpage.locator('#end')).to_be_hidden()
    dpage.click('#start')
    options = options_of(dpage)
    assert options['roomName'] == room
    claims = claims_of(options)
    assert claims['room'] == room
    assert claims['context']['user']['affiliation'] == 'owner'
    assert 'desktop' in options['configOverwrite']['toolbarButtons']
    fire(dpage, 'videoConferenceJoined', {'id': 'doctor'})
    expect(dpage.locator('#status')).to_have_text(
        'Consultation in progress.')
    assert patient.get('/tokens/current').json()['state'] == (
        'in_consultation')
    expect(page.locator('#status')).to_have_text(
        'Consultation in progress.', timeout=5_000)
    expect(dpage.locator('#end')).to_be_visible()
    expect(dpage.locator('#without-video')).to_be_hidden()

    # Chat both ways, each with a file; live on the other side.
    page.fill('#chat-text', 'I have had fever for two days.')
    page.set_input_files('#chat-file', files=[{
                'name': 'thermometer.png', 'mimeType': 'image/png',
                'buffer': PNG}])
    page.click('#chat-send')
    expect(page.locator('#chat-log li.mine')).to_contain_text(
        'I have had fever for two days.')
    theirs = dpage.locator('#chat-log li.theirs')
    expect(theirs).to_contain_text('I have had fever for two days.',
        timeout=5_000)
    expect(theirs.locator('a.attachment')).to_contain_text('.png')
    href = theirs.locator('a.attachment').get_attribute('href')
    assert dpage.request.get(server.base + href).body() == PNG
    dpage.fill('#chat-text', 'Take paracetamol and rest. See the chart.')
    dpage.set_input_files('#chat-file', files=[{
                'name': 'chart.png', 'mimeType': 'image/png',
                'buffer': PNG}])
    dpage.press('#chat-text', 'Enter')
    answer = page.locator('#chat-log li.theirs')
    expect(answer).to_contain_text('Take paracetamol', timeout=5_000)
    expect(answer).to_contain_text('Doctor')
    href = answer.locator('a.attachment').get_attribute('href')
    assert page.request.get(server.base + href).body() == PNG
    # a file the upload service refuses is explained next to the form
    page.set_input_files('#chat-file', files=[{
                'name': 'virus.pdf', 'mimeType': 'application/pdf',
                'buffer': b'MZ\x90\x00' + b'\x00' * 200}])
    page.click('#chat-send')
    expect(page.locator('#chat-error')).to_be_visible()
    page.set_input_files('#chat-file', files=[])
    shot(page, 'video-patient-in-consultation')
    shot_widths(page, 'video-patient-consultation')
    shot(dpage, 'video-doctor-in-consultation')

    # Low bandwidth: audio only.
    page.click('#audio-only')
    expect(page.locator('#audio-only')).to_have_attribute(
        'aria-pressed', 'true')
    assert ['setAudioOnly', True] in page.evaluate('window.__jitsiCommands')

    # The patient drops: Rejoin, into the same room.
    fire(page, 'videoConferenceLeft', {'roomName': room})
    expect(page.locator('#rejoin')).to_be_visible()
    expect(page.locator('#stage iframe')).to_have_count(0)
    expect(dpage.locator('#status')).to_contain_text(
        'The patient has left the video call', timeout=5_000)
    shot(page, 'video-patient-rejoin')
    page.click('#rejoin-button')
    wait_for(page, 'window.__jitsiCalls.length === 2')
    assert options_of(page)['roomName'] == room
    fire(page, 'videoConferenceJoined', {'id': 'patient'})
    expect(dpage.locator('#status')).to_have_text(
        'Consultation in progress.', timeout=5_000)

    # The doctor ends the consultation: no rejoin any more.
    dpage.once('dialog', lambda dialog: dialog.accept())
    dpage.click('#end')
    expect(dpage.locator('#over')).to_be_visible()
    expect(page.locator('#over')).to_be_visible(timeout=5_000)
    expect(page.locator('#over')).to_contain_text('Your consultation is over')
    expect(page.locator('#rejoin')).to_be_hidden()
    expect(page.locator('#chat-form')).to_be_hidden()
    expect(page.locator('#stage iframe')).to_have_count(0)
    assert patient.get('/tokens/current').status_code == 404
    shot(page, 'video-patient-over')
    shot(dpage, 'video-doctor-over')
    assert dpage.errors == [], dpage.errors
    # the chat stays with the consultation, in the back office too: the
    # page's link opens the token in the web client (sao 7.0 URL)
    messages = _psql(
        'SELECT count(*) FROM sehat_opd_message WHERE token = %s'
        % token_id, server.database)
    assert int(messages) == 2
    href = dpage.locator('#backoffice').get_attribute('href')
    sao = doctor_context.new_page()
    sao.errors = []
    sao.on('pageerror', lambda error: sao.errors.append(str(error)))
    sao.goto(server.base + href)
    # listing the server's databases can take a while on a shared server
    database = sao.locator('.login-dialog #database:visible')
    expect(database).to_be_visible(timeout=60_000)
    if database.evaluate('e => e.tagName') == 'SELECT':
        database.select_option(server.database)
    elif database.is_editable():
        database.fill(server.database)
    sao.locator('.login-dialog #login').fill('dr.khan')
    sao.locator('.login-dialog button[type=submit]').click()
    sao.locator('.ask-dialog #ask-dialog-entry').fill('sehat-demo')
    sao.locator('.ask-dialog button.btn-primary').click()
    form = sao.locator('.tab-pane.active .form')
    expect(form).to_contain_text('Patient Joined Video', timeout=30_000)
    # the many2one's name comes with a later read on a busy server
    expect(sao.get_by_role('textbox', name='OPD:').first).to_have_value(
        re.compile('Video Test OPD'), timeout=30_000)
    sao.locator('.tab-pane.active .nav-tabs a', has_text='Chat').click()
    expect(form).to_contain_text('I have had fever for two days.')
    expect(form).to_contain_text('Take paracetamol and rest.')
    shot(sao, 'video-backoffice-token-chat')
    assert sao.errors == [], sao.errors


def test_device_check(server, page):
    "Camera preview, microphone level, speaker test, browser support"
    page.goto(server.portal + '/')
    page.click('text=Check your camera and microphone')
    expect(page).to_have_url(server.portal + '/device-check')
    expect(page.locator('#browser-verdict')).to_have_text(
        'Your browser is ready for the video consultation.')
    for name in ['media', 'webrtc', 'secure', 'audio']:
        expect(page.locator('[data-check=%s]' % name)).to_have_class('ok')
    page.click('#test-media')
    expect(page.locator('#preview')).to_be_visible()
    wait_for(page, "document.getElementById('preview').videoWidth > 0")
    # Chromium's fake microphone beeps: the level moves
    expect(page.locator('#media-result')).to_contain_text(
        'We can hear you.', timeout=10_000)
    page.click('#test-speaker')
    expect(page.locator('#speaker-result')).to_contain_text('chime')
    wait_for(page,
        "document.getElementById('speaker-sound').currentTime > 0.2")
    assert page.evaluate(
        "document.getElementById('speaker-sound').error") is None
    shot_widths(page, 'video-device-check')
    page.goto(server.portal + '/device-check?lang=hi')
    expect(page.locator('h1')).to_have_text('अपना कैमरा और माइक्रोफ़ोन जाँचें')
    shot(page, 'video-device-check-hi')
    assert page.errors == [], page.errors
