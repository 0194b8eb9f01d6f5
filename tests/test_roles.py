"""Issue 8 end to end: who may read what (back-office RPC, doctor console,
patient API), the contact form and its CAPTCHA, the doctors' status page and
the reports in the back office."""
import io
import re
import time

import pytest
import requests
from PIL import Image
from playwright.sync_api import expect

from conftest import Api, fresh_mobile, shot, shot_widths
from helpers import Rpc, RpcError, settings

from trytond.modules.sehat_opd import captcha


@pytest.fixture(scope='module')
def admin(rpc):
    return rpc


@pytest.fixture(scope='module', autouse=True)
def quick_otp(admin):
    """A patient needs two OTPs, to register then to log in: wait 10 s
    between them (the settings' minimum) instead of the default 30 s."""
    with settings(admin, otp_resend_after=10):
        yield


def new_patient(server):
    "A registered, logged-in patient's API client (fresh mobile)."
    client = Api(server)
    mobile = fresh_mobile()
    client.patient_id = client.register(mobile)
    client.mobile = mobile
    deadline = time.time() + 60
    while True:
        r = client.post('/otp', json={'mobile': mobile, 'purpose': 'login'})
        if r.status_code == 202:
            break
        assert r.status_code == 429 and time.time() < deadline, r.text
        time.sleep(1)
    r = client.post('/otp/verify', json={
            'otp_id': r.json()['otp_id'], 'code': server.otp(mobile)})
    assert r.status_code == 200, r.text
    r = client.post('/session', json={
            'verification': r.json()['verification']})
    assert r.status_code == 200, r.text
    client.csrf = r.json()['csrf_token']
    return client


def _png(color='white'):
    data = io.BytesIO()
    Image.new('RGB', (8, 8), color).save(data, 'PNG')
    return data.getvalue()


@pytest.fixture(scope='module')
def owner(server):
    "A patient holding a DEMO24 token with a health record."
    return new_patient(server)


@pytest.fixture(scope='module')
def demo24_token(owner, admin):
    """The owner's DEMO24 token and file: DEMO24 is served by dr.khan, not
    by dr.das (GEN, MED)."""
    r = owner.take_token('DEMO24', 'Knee pain', files=[
            ('knee.png', _png(), 'image/png')])
    assert r.status_code == 201, r.text
    token_id, = admin('sehat.opd.token', 'search', [
            ('patient.patient_code', '=', owner.patient_id),
            ('state', 'in', ['waiting', 'called', 'in_consultation'])])
    file_id, = admin('ir.attachment', 'search', [
            ('resource', '=', 'sehat.opd.token,%s' % token_id)])
    return token_id, file_id


def test_back_office_rpc_follows_opds(server, admin, demo24_token):
    "Over RPC, a doctor reads the tokens, patients and files of their OPDs "
    "only; the access is logged for administrators"
    token_id, file_id = demo24_token
    das, khan = Rpc(server, 'dr.das'), Rpc(server, 'dr.khan')

    assert das('sehat.opd.token', 'search', [('id', '=', token_id)]) == []
    with pytest.raises(RpcError):
        das('sehat.opd.token', 'read', [token_id], ['number', 'complaint'])
    with pytest.raises(RpcError):
        das('ir.attachment', 'read', [file_id], ['name', 'data'])
    patient_id = admin('sehat.opd.token', 'read', [token_id],
        ['patient'])[0]['patient']
    with pytest.raises(RpcError):
        das('gnuhealth.patient', 'read', [patient_id], ['patient_code'])

    record, = khan('sehat.opd.token', 'read', [token_id],
        ['number', 'complaint'])
    assert record['complaint'] == 'Knee pain'
    attachment, = khan('ir.attachment', 'read', [file_id], ['data'])
    assert attachment['data']

    logs = admin('sehat.opd.access_log', 'search_read', [
            ('user', '=', khan.user_id), ('token', '=', token_id)],
        0, None, None, ['what', 'patient'])
    assert {log['what'] for log in logs} == {'record', 'file'}
    assert all(log['patient'] == patient_id for log in logs)
    # the log is the administrators' only
    with pytest.raises(RpcError):
        khan('sehat.opd.access_log', 'search', [])


def test_console_follows_opds(doctor_login, admin, demo24_token):
    "Through the doctor console, another OPD's patient and files are 404"
    token_id, file_id = demo24_token
    das, khan = doctor_login('dr.das'), doctor_login('dr.khan')
    assert das.get('/tokens/%s' % token_id).status_code == 404
    assert das.get('/files/%s' % file_id).status_code == 404
    assert das.get('/tokens/%s/messages' % token_id).status_code == 404
    r = khan.get('/tokens/%s' % token_id)
    assert r.status_code == 200 and r.json()['complaint'] == 'Knee pain'
    r = khan.get('/files/%s' % file_id)
    assert r.status_code == 200 and r.content.startswith(b'\x89PNG')
    logs = admin('sehat.opd.access_log', 'search_read', [
            ('user.login', '=', 'dr.khan'), ('token', '=', token_id),
            ('what', '=', 'console')], 0, None, None, ['address'])
    assert logs and logs[0]['address'] == '127.0.0.1'


def test_console_refuses_users_without_doctor_role(server):
    "A back-office user who is not a SeHAT doctor cannot open the console"
    r = requests.post(server.api + '/doctor/session', json={
            'login': 'staff.opd', 'password': 'sehat-demo'}, timeout=30)
    assert r.status_code == 403


def test_patient_cannot_read_others_files(server, owner, demo24_token):
    "A patient who changes the id in the URL gets 404, not the file"
    token_id, file_id = demo24_token
    r = owner.get('/files/%s' % file_id)
    assert r.status_code == 200
    other = new_patient(server)
    for path in ['/files/%s' % file_id, '/files/%s' % (file_id + 1000)]:
        r = other.get(path)
        assert r.status_code == 404, path
        assert r.json()['error']['code'] == 'not_found'
    # and their own waiting room shows nothing of the other's token
    assert other.get('/tokens/current').status_code == 404


def _contact(**fields):
    values = {
        'first_name': 'Meera', 'last_name': 'Nair', 'mobile': fields.pop(
            'mobile'), 'email': 'meera@example.com', 'city': 'Kochi',
        'state': 'IN-KL',
        'message': 'My father could not log in with his token number.',
        }
    values.update(fields)
    return values


def test_contact_api_needs_captcha(server, api):
    "POST /contact without a solved CAPTCHA is refused, naming the field; "
    "solved, it is stored and acknowledged by SMS"
    mobile = fresh_mobile()
    r = api.post('/contact', json=_contact(mobile=mobile))
    assert r.status_code == 422
    assert r.json()['error']['field'] == 'captcha'

    challenge = api.get('/contact/captcha').json()
    assert challenge['image'].startswith('data:image/png;base64,')
    r = api.post('/contact', json=_contact(mobile=mobile,
            captcha=challenge['captcha'], captcha_answer='AAAAA'))
    assert r.status_code == 422 and r.json()['error']['field'] == 'captcha'

    challenge = api.get('/contact/captcha').json()
    solved = _contact(mobile=mobile, captcha=challenge['captcha'],
        captcha_nonce=captcha.solve_pow(challenge['captcha'],
            challenge['bits']))
    r = api.post('/contact', json=solved)
    assert r.status_code == 201, r.text
    reference = r.json()['reference']
    assert re.match(r'^CR-[0-9A-Z]{8}$', reference)
    # a solved challenge is good once
    r = api.post('/contact', json=solved)
    assert r.status_code == 422 and r.json()['error']['field'] == 'captcha'
    deadline = time.time() + 5
    while not server.messages(mobile, 'contact_received'):
        assert time.time() < deadline, 'no acknowledgment'
        time.sleep(0.1)
    assert reference in server.messages(mobile, 'contact_received')[0]


def test_contact_page(server, page):
    "The contact form: the browser solves the check, the sender gets a "
    "reference"
    page.goto(server.portal + '/contact')
    mobile = fresh_mobile()
    page.fill('#first_name', 'Meera')
    page.fill('#last_name', 'Nair')
    page.fill('#mobile', mobile)
    page.fill('#email', 'meera@example.com')
    page.fill('#city', 'Kochi')
    page.select_option('#state', 'IN-KL')
    page.fill('#message', 'How do I download an old prescription?')
    expect(page.locator('#captcha-auto')).to_contain_text(
        'Done', timeout=60_000)
    expect(page.locator('#captcha-image')).to_be_hidden()
    shot_widths(page, 'contact-form')
    page.click('#contact-send')
    expect(page.locator('h1')).to_have_text('Message sent')
    expect(page.locator('.notice')).to_contain_text('CR-')
    shot(page, 'contact-sent')
    assert not page.errors


def test_contact_page_without_javascript(server, browser):
    "Without JavaScript the image is shown; an unsolved check is refused"
    context = browser.new_context(java_script_enabled=False,
        viewport={'width': 1280, 'height': 900})
    page = context.new_page()
    try:
        page.goto(server.portal + '/contact')
        expect(page.locator('#captcha-image img')).to_be_visible()
        page.fill('#first_name', 'Meera')
        page.fill('#mobile', '9876501234')
        page.fill('#city', 'Kochi')
        page.select_option('#state', 'IN-KL')
        page.fill('#message', 'Testing the form without JavaScript.')
        page.fill('#captcha_answer', 'WRONG')
        with page.expect_navigation():
            page.click('#contact-send')
        expect(page.locator('#captcha-error')).to_be_visible()
        # what was typed is kept, the check is new
        expect(page.locator('#message')).to_have_value(
            'Testing the form without JavaScript.')
        shot(page, 'contact-nojs-refused')
    finally:
        context.close()


def test_doctors_status_page(server, page, doctor_login, api):
    "Doctors' status lists the OPDs, the online doctors, busy or not, and "
    "the queue length"
    khan = doctor_login('dr.khan')
    opd = api.opd_id('DEMO24')
    r = khan.post('/online', json={'opd': opd})
    assert r.status_code == 200, r.text
    try:
        page.goto(server.portal + '/doctors')
        card = page.locator('.opd-status', has_text='24x7 Demo OPD')
        expect(card).to_contain_text('Khan')
        expect(card).to_contain_text('MBBS, MS (Orthopaedics)')
        expect(card.locator('.tag.open, .tag.busy').first).to_be_visible()
        expect(page.locator('.opd-status', has_text='General OPD')
            ).to_be_visible()
        shot_widths(page, 'doctors-status')
        page.goto(server.portal + '/doctors?lang=hi')
        expect(page.locator('h1')).to_have_text('डॉक्टरों की स्थिति')
        shot(page, 'doctors-status-hi')
        assert not page.errors
    finally:
        khan.post('/offline')


def test_help_page(server, page):
    page.goto(server.portal + '/help')
    expect(page.locator('#drop')).to_contain_text('dropped call')
    expect(page.locator('#hours')).to_contain_text('24x7 Demo OPD')
    shot(page, 'help')


def _sao_login(page, server, login, password):
    page.goto(server.base + '/')
    database = page.locator('.login-dialog #database:visible')
    # sao lists the databases first: slow on a busy server
    expect(database).to_be_visible(timeout=30_000)
    if database.evaluate('e => e.tagName') == 'SELECT':
        database.select_option(server.database)
    elif database.is_editable():
        database.fill(server.database)
    page.locator('.login-dialog #login').fill(login)
    page.locator('.login-dialog button[type=submit]').click()
    page.locator('.ask-dialog #ask-dialog-entry').fill(password)
    page.locator('.ask-dialog button.btn-primary').click()
    expect(page.locator('#menu')).to_contain_text('SeHAT OPD',
        timeout=30_000)


def _open_menu(page, *path):
    for name in path[:-1]:
        row = page.locator('#menu tr', has_text=name).first
        row.locator('.expander').click()
    page.locator('#menu tr', has_text=path[-1]).first.locator(
        '.cell').first.click()


def test_report_graph_in_back_office(server, page, admin, owner,
        demo24_token, doctor_login):
    "Staff open the OPD day figures and see them as a graph"
    token_id, _ = demo24_token
    # today's figures: the owner consults dr.khan, another patient cancels
    khan = doctor_login('dr.khan')
    try:
        khan.serve(owner.opd_id('DEMO24'), token_id)
        assert owner.post('/tokens/current/call').status_code == 200
        # with the video module the consultation starts when both are in
        # the room; the doctor may also start it without video
        khan.finish(token_id)
    finally:
        khan.post('/offline')
    other = new_patient(server)
    assert other.take_token('DEMO24', 'Cold').status_code == 201
    assert other.post('/tokens/current/cancel').status_code == 200
    day, = admin('sehat.opd.report', 'search_read', [
            ('opd.code', '=', 'DEMO24')], 0, None, None,
        ['issued', 'consulted', 'cancelled', 'consultation_median'])
    assert day['consulted'] >= 1 and day['cancelled'] >= 1
    assert day['issued'] >= 2 and day['consultation_median'] is not None

    _sao_login(page, server, 'staff.opd', 'sehat-demo')
    _open_menu(page, 'SeHAT OPD', 'Reports', 'OPD Day Figures')
    tab = page.locator('#tablist li', has_text='OPD Day Figures')
    expect(tab).to_be_visible()
    content = page.locator('#tabcontent .tab-pane.active')
    expect(content.locator('table tbody tr', has_text='24x7 Demo OPD').first
        ).to_be_visible(timeout=30_000)
    shot(page, 'report-list')
    content.locator('button#switch_').click()
    expect(content.locator('svg .c3-bar').first).to_be_attached(
        timeout=30_000)
    page.wait_for_timeout(500)
    shot(page, 'report-graph')
