"""The live waiting room and the doctor console in Chromium.

A patient takes a token and waits; a doctor logs into the console, goes
online and is given the patient; the patient's Call Now turns active
within 3 s; the patient lets the (shortened) window pass and is back in
line. Both pages are photographed at each step. The OPD is created for
the test, so other tests' tokens and doctors do not interfere.
"""
import datetime as dt
import io
import secrets
import time
from zoneinfo import ZoneInfo

import pytest
import requests
from PIL import Image
from playwright.sync_api import expect

import queue_data
from conftest import DESKTOP, shot, shot_widths

CALL_WINDOW = 6
PASSWORD = 'Queue-Test-Pass-2026'


@pytest.fixture(scope='module')
def db(server):
    queue_data.configure(server.env)
    return server.database


def patient_context(browser, server, patient, **options):
    context = browser.new_context(viewport=DESKTOP, locale='en-IN', **options)
    context.set_default_timeout(15_000)
    context.add_cookies([{'name': 'sehat_session', 'value': patient['session'],
                'url': server.portal + '/'}])
    return context


def watch(page):
    page.errors = []
    page.on('pageerror', lambda error: page.errors.append(str(error)))
    return page


def png():
    data = io.BytesIO()
    Image.new('RGB', (32, 32), 'white').save(data, 'PNG')
    return data.getvalue()


def test_call_now_live_and_missed_window(server, db, browser):
    "Patient waits 1 of 1; the doctor goes online; Call Now is active "
    "within 3 s; the window passes and the patient is back in line"
    code = 'BRW%s' % secrets.token_hex(2).upper()
    opd = queue_data.make_opd(db, code, name='Browser Test OPD %s' % code,
        call_window=CALL_WINDOW)
    patient, = queue_data.make_patients(db, 1, '99')
    doctor, = queue_data.make_doctors(db, 1, opd, 'b', password=PASSWORD)

    patient_ctx = patient_context(browser, server, patient)
    doctor_ctx = browser.new_context(viewport=DESKTOP, locale='en-IN')
    doctor_ctx.set_default_timeout(15_000)
    try:
        room = watch(patient_ctx.new_page())
        # the patient takes a token, with a health record
        room.goto(server.portal + '/token')
        room.locator('label.opd-choice', has_text=code).click()
        room.fill('#complaint', 'Fever and body ache since yesterday')
        room.set_input_files('#files', files=[{
                    'name': 'report.png', 'mimeType': 'image/png',
                    'buffer': png()}])
        shot_widths(room, 'queue-01-token')
        room.click('button[type=submit].big')
        room.wait_for_url('**/opd/waiting')
        expect(room.locator('#position')).to_have_text('1 of 1')
        expect(room.locator('#call-now')).to_be_disabled()
        expect(room.locator('#records .files li')).to_have_count(1)
        shot_widths(room, 'queue-02-waiting')

        # the doctor logs into the console with Tryton credentials
        console = watch(doctor_ctx.new_page())
        console.goto(server.portal + '/doctor/')
        console.fill('#login', doctor['login'])
        console.fill('#password', 'wrong password')
        console.click('button[type=submit]')
        expect(console.locator('#login-error')).to_be_visible()
        console.fill('#password', PASSWORD)
        console.click('button[type=submit]')
        expect(console.locator('#presence-text')).to_have_text('Offline')
        console.select_option('#opd-select', str(opd))
        shot(console, 'queue-03-console-offline')

        # online: the patient is called to this doctor
        with console.expect_response('**/doctor/online') as online:
            clicked = time.monotonic()
            console.click('#toggle-online')
        answered = time.monotonic()
        assert online.value.ok
        expect(room.locator('#call-now')).to_be_enabled(timeout=3_000)
        active = time.monotonic()
        print('Call Now active %.2f s after the call was committed '
            '(%.2f s after the click)' % (active - answered, active - clicked))
        assert active - answered < 3
        expect(room.locator('#callnow-title')).to_contain_text('is calling you')
        expect(room.locator('#countdown')).to_have_text('0:0%d' % (
                CALL_WINDOW - 1), timeout=3_000)
        expect(console.locator('#presence-text')).to_have_text(
            'Online · with a patient')
        expect(console.locator('#current')).to_contain_text(
            'Fever and body ache')
        expect(console.locator('#current .files a')).to_have_count(1)
        shot_widths(room, 'queue-04-waiting-called')
        shot(console, 'queue-05-console-called')

        # the patient lets the window pass: back in line, doctor freed
        expect(room.locator('#call-now')).to_be_disabled(
            timeout=(CALL_WINDOW + 2) * 1000)
        expect(room.locator('#position')).to_have_text('1 of 1',
            timeout=3_000)
        expect(room.locator('[data-state="missed"]')).to_be_visible()
        status = requests.get(server.api + '/tokens/current', headers={
                'Authorization': 'Bearer %s' % patient['session']},
            timeout=10).json()
        assert (status['state'], status['missed_calls']) == ('waiting', 1)
        expect(console.locator('#presence-text')).to_have_text(
            'Online · free', timeout=3_000)
        expect(console.locator('#queue tr')).to_have_count(1)
        expect(console.locator('#queue')).to_contain_text('Missed calls: 1')
        shot_widths(room, 'queue-06-waiting-missed')
        shot(console, 'queue-07-console-missed')
        room.goto(server.portal + '/waiting?lang=hi')
        expect(room.locator('#position')).to_have_text('1 में से 1')
        shot_widths(room, 'queue-06b-waiting-hindi')
        room.goto(server.portal + '/waiting?lang=en')

        # the back office's link focuses the patient in the console
        console.goto(server.portal + '/doctor/?token=%s' % status['token_id'])
        expect(console.locator('#focus-card')).to_be_visible()
        expect(console.locator('#focus')).to_contain_text(
            'Fever and body ache')
        expect(console.locator('#queue tr.focus')).to_have_count(1)
        shot(console, 'queue-08-console-focus')

        # the doctor calls them again; the patient cancels
        console.click('#call-next')
        expect(room.locator('#call-now')).to_be_enabled(timeout=3_000)
        room.locator('details.cancel summary').click()
        room.click('#cancel-token')
        expect(room.locator('main')).to_contain_text('was cancelled')
        expect(console.locator('#presence-text')).to_have_text(
            'Online · free', timeout=3_000)
        shot(room, 'queue-09-waiting-cancelled')
        console.click('#toggle-online')
        expect(console.locator('#presence-text')).to_have_text('Offline')
        assert room.errors == [] and console.errors == []
    finally:
        patient_ctx.close()
        doctor_ctx.close()


def test_take_token_without_javascript(server, db, browser):
    "Without JavaScript the token form shows errors next to the fields, a "
    "closed OPD names its next opening, and the waiting room refreshes"
    code = 'NJS%s' % secrets.token_hex(2).upper()
    zone = ZoneInfo('Asia/Kolkata')
    tomorrow = (dt.datetime.now(zone) + dt.timedelta(days=1)).weekday()
    closed = queue_data.make_opd(db, code + 'C',
        name='Closed Test OPD %s' % code, round_the_clock=False,
        hours=[('create', [{'weekday': str(tomorrow),
                        'open_time': dt.time(9), 'close_time': dt.time(17)}])])
    queue_data.make_opd(db, code, name='Open Test OPD %s' % code)
    patient, = queue_data.make_patients(db, 1, '98')
    context = patient_context(browser, server, patient,
        java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(server.portal + '/token')
        closed_choice = page.locator('label.opd-choice',
            has_text='Closed Test OPD %s' % code)
        expect(closed_choice).to_contain_text('Opens')
        page.click('button[type=submit].big')
        expect(page.locator('#opd-error')).to_have_text(
            'Choose one of the OPDs of the list.')
        closed_choice.click()
        page.fill('#complaint', 'x' * 10)
        page.click('button[type=submit].big')
        expect(page.locator('#opd-error')).to_contain_text('opens next on')
        assert page.locator('input[name=opd]:checked').get_attribute(
            'value') == str(closed)
        shot(page, 'queue-10-token-closed-nojs')
        page.locator('label.opd-choice', has_text='Open Test OPD %s' % code
            ).click()
        page.click('button[type=submit].big')
        page.wait_for_url('**/opd/waiting')
        expect(page.locator('#position')).to_have_text('1 of 1')
        assert page.locator('meta[http-equiv="refresh"]').count() == 1
        page.goto(server.portal + '/token')
        expect(page.locator('main')).to_contain_text('You already have token')
    finally:
        context.close()
