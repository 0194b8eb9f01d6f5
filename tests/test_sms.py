"""SMS and e-mail notifications end to end: a real server sending to the
session's fake gateway (conftest `gateway`), receipts through the webhook,
and the outbox in the back office."""
import os
import re
import subprocess
import sys
import time

import pytest
import requests
from playwright.sync_api import expect

from conftest import CONF, SMS_WEBHOOK_SECRET, _psql, fresh_mobile, shot
from test_foundation import bare_database  # noqa: F401 (fixture)
from test_video import create_opd

NOTIFY = """
import sys
from trytond.config import config
config.update_etc(sys.argv[1])
from trytond.pool import Pool
from trytond.transaction import Transaction
database, mobile, link = sys.argv[2:5]
Pool.start()
pool = Pool(database)
with Transaction().start(database, 0, readonly=True):
    pool.init()
with Transaction().start(database, 0):
    Patient = pool.get('gnuhealth.patient')
    Notifier = pool.get('sehat.opd.notifier')
    patient, = Patient.search([('portal_mobile', '=', mobile)])
    Notifier.notify('prescription_ready', patient=patient,
        values={'prescription': 'RX-E2E-0001', 'link': link})
"""


def notify_prescription_ready(server, mobile):
    """What the e-prescription will do once it is signed: a notification
    from another process (the cron, a worker), sent after its commit."""
    link = '%s/opd/prescriptions/42.pdf' % server.portal.rsplit('/opd', 1)[0]
    # sent from a thread after commit, as in production: the process
    # waits for it before it exits
    env = dict(server.env, TRYTOND_SEHAT_OPD_SMS__DISPATCH='thread')
    subprocess.run([sys.executable, '-c', NOTIFY, str(CONF), server.database,
            '+91' + mobile[-10:], link], check=True, env=env,
        capture_output=True, timeout=60)
    return link


def wait_messages(server, mobile, event, count=1, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        texts = server.messages(mobile, event)
        if len(texts) >= count:
            return texts
        time.sleep(0.1)
    raise AssertionError('no %s message for %s' % (event, mobile))


@pytest.fixture
def mobile():
    "A fresh mobile."
    return fresh_mobile()


def login(server, api, mobile):
    """Log in right after registering: the OTP resend delay (30 s) is
    skipped by ageing the registration OTP."""
    _psql("UPDATE sehat_opd_otp SET create_date = create_date - "
        "INTERVAL '10 minutes' WHERE mobile = '+91%s'" % mobile[-10:],
        database=server.database)
    api.login(mobile)


def message_row(server, mobile, event, column='state'):
    "A column of the last outbox record of `event` for `mobile`."
    return _psql("SELECT %s FROM sehat_sms_message WHERE recipient = '%s' "
        "AND event = '%s' ORDER BY id DESC LIMIT 1" % (
            column, '+91' + mobile[-10:], event), database=server.database)


@pytest.fixture(autouse=True)
def _gateway_answers(server):
    "Whatever a test did to the session's gateway, it answers again after."
    server.gateway.set_mode('ok')
    yield
    server.gateway.set_mode('ok')


def test_journey_messages_reach_gateway(server, api, mobile):
    "OTP, token and prescription-ready SMS reach the gateway during a journey"
    patient_id = api.register(mobile)  # reads the OTP at the gateway
    otp, = server.messages(mobile, 'otp')
    assert re.fullmatch(r'\d{6} is your SeHAT OPD OTP\. It is valid for \d+ '
        r'minutes\. Do not share it with anyone\.', otp)
    welcome, = wait_messages(server, mobile, 'registered')
    assert patient_id in welcome
    login(server, api, mobile)
    r = api.take_token('DEMO24', 'Fever since two days')
    assert r.status_code == 201, r.text
    token = r.json()['token_number']
    issued, = wait_messages(server, mobile, 'token_issued')
    assert issued.startswith('SeHAT OPD: token %s issued for ' % token)
    assert patient_id in issued
    link = notify_prescription_ready(server, mobile)
    ready, = wait_messages(server, mobile, 'prescription_ready')
    assert ready == ('SeHAT OPD: your e-prescription RX-E2E-0001 is ready. '
        'Download it: %s' % link)
    # each message once, with its idempotency key and DLT template
    sent = server.gateway.sent_to('to', '+91' + mobile)
    assert [r.params['event'] for r in sent
        if r.params['event'] != 'turn_near'] == [
        'otp', 'registered', 'otp', 'token_issued', 'prescription_ready']
    assert len({r['key'] for r in sent}) == len(sent)
    assert message_row(server, mobile, 'prescription_ready') == 'sent'
    # the OTP leaves no readable code in the outbox
    assert not re.search(r'\d{6}', message_row(server, mobile, 'otp', 'text'))


def test_delivery_receipt_webhook(server, api, mobile):
    "The gateway's receipt, signed with the shared secret, marks delivery"
    api.register(mobile)
    welcome = wait_messages(server, mobile, 'registered')
    assert welcome
    gateway_id = message_row(server, mobile, 'registered', 'gateway_id')
    assert gateway_id.startswith('gw-')
    url = server.api + '/sms/receipt/generic'
    receipt = {'id': gateway_id, 'status': 'delivered'}
    r = requests.post(url, json=receipt, timeout=10)
    assert r.status_code == 401
    assert r.json()['error']['code'] == 'unauthorized'
    r = requests.post(url, json=receipt, timeout=10,
        headers={'X-Sehat-Secret': 'not-the-secret'})
    assert r.status_code == 401
    assert message_row(server, mobile, 'registered') == 'sent'
    r = requests.post(url, json=receipt, timeout=10,
        headers={'X-Sehat-Secret': SMS_WEBHOOK_SECRET})
    assert r.status_code == 200, r.text
    assert r.json() == {'received': 1, 'updated': 1}
    assert message_row(server, mobile, 'registered') == 'delivered'
    # gateways that only take a URL: the secret in the query, a GET
    r = requests.get(url, params={'id': gateway_id, 'status': 'failed',
            'secret': SMS_WEBHOOK_SECRET}, timeout=10)
    assert r.json() == {'received': 1, 'updated': 0}  # delivered stays
    r = requests.post(server.api + '/sms/receipt/nosuch', json=receipt,
        headers={'X-Sehat-Secret': SMS_WEBHOOK_SECRET}, timeout=10)
    assert r.status_code == 404


def test_receipt_route_404_without_module(server, bare_database):  # noqa
    "The webhook does not exist on a database without the modules"
    r = requests.post('%s/%s/opd/api/v1/sms/receipt/generic' % (
            server.base, bare_database), json={}, timeout=10,
        headers={'X-Sehat-Secret': SMS_WEBHOOK_SECRET})
    assert r.status_code == 404


def test_refused_message_resent_by_staff(server, api, mobile, page):
    """A message the gateway refuses is failed with its reason, without
    blocking the token; staff see it in the outbox and send it again."""
    api.register(mobile)
    login(server, api, mobile)
    # an OPD of its own: first in line, the patient's turn is near at once
    # (in DEMO24 other tests may have left patients waiting)
    opd = 'SMS%s' % mobile[-4:]
    create_opd(server, opd, [])
    server.gateway.set_mode('reject')
    r = api.take_token(opd, 'Skin rash')
    assert r.status_code == 201, r.text
    deadline = time.time() + 10
    while message_row(server, mobile, 'token_issued') != 'failed':
        assert time.time() < deadline
        time.sleep(0.2)
    assert 'HTTP 400' in message_row(server, mobile, 'token_issued', 'reason')
    assert server.messages(mobile, 'token_issued') == []
    server.gateway.set_mode('ok')

    page.goto(server.base + '/')
    database = page.locator('.login-dialog #database:visible')
    # sao lists the databases of the cluster first (slow on a shared one)
    expect(database).to_be_visible(timeout=60_000)
    if database.evaluate('e => e.tagName') == 'SELECT':
        database.select_option(server.database)
    elif database.is_editable():
        database.fill(server.database)
    page.locator('.login-dialog #login').fill('staff.opd')
    page.locator('.login-dialog button[type=submit]').click()
    page.locator('.ask-dialog #ask-dialog-entry').fill('sehat-demo')
    page.locator('.ask-dialog button.btn-primary').click()
    menu = page.locator('#menu')
    expect(menu).to_contain_text('SeHAT OPD', timeout=30_000)
    page.locator('#menu tr', has_text='SeHAT OPD').first.locator(
        '.expander').click()
    page.locator('#menu tr', has_text='Notifications').first.locator(
        '.expander').click()
    expect(menu).not_to_contain_text('SMS Templates')  # administrators'
    page.locator('#menu tr', has_text='Outbox').first.locator(
        '.cell').first.click()
    page.locator('.tab-domain a', has_text='Failed').click()
    rows = page.locator('.treeview tbody tr', has_text='+91' + mobile)
    expect(rows.filter(has_text='Token Issued')).to_contain_text('HTTP 400')
    expect(rows.filter(has_text='Turn Near')).to_be_visible()
    shot(page, 'sms-outbox-failed')

    # the form shows the reason and the gateway's answer; Resend
    page.locator('.tab-domain a', has_text='All').click()
    expect(rows.filter(has_text='OTP').first).to_be_visible()  # loaded
    rows.filter(has_text='Turn Near').dblclick()
    expect(page.get_by_text('Gateway Answer').first).to_be_visible()
    shot(page, 'sms-outbox-form')
    page.locator('button:visible', has_text='Resend').click()
    page.locator('.modal-dialog:visible button.btn-primary',
        has_text='OK').click()
    assert len(wait_messages(server, mobile, 'turn_near')) == 1  # once
    expect(page.locator('button:visible', has_text='Resend')).to_be_hidden()

    # or from the list: select the row, then its button
    page.locator('button#switch_:visible').click()
    page.locator('.tab-domain a', has_text='Failed').click()
    issued = rows.filter(has_text='Token Issued')
    expect(rows).to_have_count(1)
    issued.locator('td').nth(2).click()
    issued.locator('button[name=resend]').click()
    page.locator('.modal-dialog:visible button.btn-primary',
        has_text='OK').click()
    assert len(wait_messages(server, mobile, 'token_issued')) == 1
    deadline = time.time() + 10
    while message_row(server, mobile, 'token_issued') != 'sent':
        assert time.time() < deadline
        time.sleep(0.2)
    page.locator('.tab-domain a', has_text='Failed').click()
    expect(rows).to_have_count(0)
    page.locator('.tab-domain a', has_text='Sent').click()
    expect(rows.filter(has_text='Token Issued')).to_be_visible()
    shot(page, 'sms-outbox-resent')


def test_burst_sends_without_exhausting_the_pool(small_pool_server):
    "Twelve patients taking tokens at once on a server with a pool of 4 "
    "connections: every request answers, every text is sent (sending one "
    "never holds a connection while waiting for another)"
    import threading
    import queue_data
    server = small_pool_server
    queue_data.configure(server.env)
    opd = queue_data.make_opd(server.database, 'SP%s' % (os.getpid() % 1000))
    first, *patients = queue_data.make_patients(server.database, 13, '28')
    # a first token: trytond looks up what the server supports with a
    # connection of its own the first time (not what is tested here)
    r = requests.post(server.api + '/tokens', json={'opd': opd},
        headers={'Authorization': 'Bearer ' + first['session']}, timeout=60)
    assert r.status_code == 201, r.text
    barrier = threading.Barrier(len(patients))
    answers = {}

    def take(patient):
        barrier.wait()
        answers[patient['mobile']] = requests.post(
            server.api + '/tokens', json={'opd': opd},
            headers={'Authorization': 'Bearer ' + patient['session']},
            timeout=120)
    threads = [threading.Thread(target=take, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert {r.status_code for r in answers.values()} == {201}, [
        r.text for r in answers.values() if r.status_code != 201][:2]
    for patient in patients:
        wait_messages(server, patient['mobile'], 'token_issued', timeout=30)
    assert 'pool exhausted' not in server.log()
