"""The e-prescription from the doctor's signature to the pharmacist's check.

The doctor's side is driven through the back office's own JSON-RPC (the
calls the Tryton web client makes when the doctor presses "Consultation
Record", "e-Prescription" and "Sign and Issue" on the token), as dr.sharma
with the rights of a doctor; the patient's and the pharmacist's sides run
in Chromium. Screenshots: tests/screenshots/rx-*.png, the PDF's first page
as rx-pdf-page1.png (pdftoppm).
"""
import hashlib
import io
import re
import subprocess
import time

import pytest
import requests
from playwright.sync_api import expect

from conftest import SCREENSHOTS, Api, shot, shot_widths
from helpers import Rpc, RpcError


@pytest.fixture(scope='module')
def rx_opd(server):
    """A round-the-clock OPD of dr.sharma for this module only, so that no
    other test's patient is called instead of ours."""
    admin = Rpc(server, 'admin', 'admin')
    institution, = admin.search('gnuhealth.institution',
        [('code', '=', 'CHSC-DEMO')])
    doctor, = admin.search('gnuhealth.healthprofessional',
        [('code', '=', 'DMC-48213')])
    # shortest OTP resend wait: the patients below verify twice in a row
    admin('sehat.opd.configuration', 'write', [1],
        {'otp_resend_after': 10})
    admin('sehat.opd', 'create', [{
                'code': 'RXT', 'name': 'Rx Test OPD', 'kind': 'general',
                'institution': institution, 'round_the_clock': True,
                'doctors': [['add', [doctor]]]}])
    return 'RXT'


def login(api, mobile):
    "Log in by OTP, waiting out the resend delay after registering."
    for _ in range(20):
        try:
            return api.login(mobile)
        except AssertionError as error:
            if 'rate_limited' not in str(error):
                raise
            time.sleep(1)
    raise AssertionError('OTP login refused for %s' % mobile)


@pytest.fixture
def rx_patient(server, new_mobile, rx_opd):
    "A registered, logged-in patient (cookie session)."
    patient = Api(server)
    patient.mobile = new_mobile()
    patient.patient_id = patient.register(patient.mobile)
    login(patient, patient.mobile)
    return patient


def consult(server, patient, doctor_login, rx_opd, complaint):
    "The patient takes a token, dr.sharma calls, the patient answers."
    r = patient.take_token(rx_opd, complaint)
    assert r.status_code == 201, r.text
    token_id = patient.get('/tokens/current').json()['token_id']
    console = doctor_login('dr.sharma')
    console.serve(patient.opd_id(rx_opd), token_id)
    status = patient.get('/tokens/current').json()
    assert status['state'] == 'called', status
    r = patient.post('/tokens/current/call')
    assert r.status_code == 200, r.text
    # the consultation starts when both are in the video room, or when the
    # doctor goes on without video
    r = console.post('/tokens/%s/start' % token_id)
    assert r.status_code == 200, r.text
    return token_id


def write_prescription(doctor, token_id, lines):
    """What the doctor does in the back office: the consultation record,
    then the e-prescription with its lines."""
    action = doctor('sehat.opd.token', 'consultation', [token_id])
    evaluation, = action['res_id']
    doctor('gnuhealth.patient.evaluation', 'write', [evaluation], {
            'sehat_mode': 'video',
            'visit_type': 'new',
            'present_illness': 'Fever since 3 days, no cough.',
            'info_diagnosis': 'Acute pharyngitis',
            'investigations': 'CBC if fever persists beyond 3 days',
            'directions': 'Warm saline gargles, fluids, rest.',
            'follow_up': 'After 5 days or earlier if worse',
            'temperature': 38.4,
            })
    action = doctor('sehat.opd.token', 'prescribe', [token_id])
    order, = action['res_id']
    tds, = doctor.search('gnuhealth.medication.dosage',
        [('abbreviation', '=', 'tds')])
    for name, comment in lines:
        medicament, = doctor.search('gnuhealth.medicament',
            [('rec_name', '=', name)], limit=1)
        doctor('gnuhealth.prescription.line', 'create', [{
                    'presc_order': order, 'medicament': medicament,
                    'qty': 1, 'common_dosage': tds, 'duration': 5,
                    'duration_period': 'days', 'short_comment': comment}])
    return evaluation, order


def test_doctor_signs_patient_downloads_pharmacist_verifies(
        server, rx_patient, doctor_login, rx_opd, browser, new_mobile):
    patient = rx_patient
    token_id = consult(server, patient, doctor_login, rx_opd,
        'Fever and sore throat')
    doctor = Rpc(server, 'dr.sharma', 'sehat-demo')
    evaluation, order = write_prescription(doctor, token_id, [
            ('Paracetamol 500 mg tablet', 'After food, if fever'),
            ])

    # the rules of the guidelines refuse a prohibited medicine by name
    prohibited, = doctor.search('gnuhealth.medicament',
        [('telemedicine_list', '=', 'prohibited')], limit=1)
    name, = doctor('gnuhealth.medicament', 'read', [prohibited],
        ['rec_name'])
    with pytest.raises(RpcError, match='prohibited list'):
        doctor('gnuhealth.prescription.line', 'create', [{
                    'presc_order': order, 'medicament': prohibited,
                    'qty': 1}])

    doctor('gnuhealth.prescription.order', 'write', [order],
        {'prescription_warning_ack': True})
    doctor('gnuhealth.prescription.order', 'sehat_sign', [order])
    signed, = doctor('gnuhealth.prescription.order', 'read', [order], [
            'sehat_state', 'sehat_code', 'sehat_hash', 'prescription_id'])
    assert signed['sehat_state'] == 'issued'
    # frozen: the doctor cannot change it any more
    with pytest.raises(RpcError, match='signed and cannot be changed'):
        doctor('gnuhealth.prescription.order', 'write', [order],
            {'notes': 'changed'})
    # the consultation is over: no active token left
    assert patient.get('/tokens/current').status_code == 404

    # the patient got the SMS with the download link
    texts = server.messages(patient.mobile, 'prescription_ready')
    assert texts, server.log()[-2000:]
    link = re.search(r'(http\S+/opd/rx/\S+)', texts[-1]).group(1)

    # API: history, detail and PDF, for the owner only
    r = patient.get('/consultations')
    assert r.status_code == 200, r.text
    item, = [c for c in r.json()['consultations'] if c['id'] == token_id]
    assert item['diagnosis'] == 'Acute pharyngitis'
    assert item['prescription']['id'] == order
    detail = patient.get('/consultations/%d' % token_id).json()
    assert detail['doctor_details']['registration'] == 'DMC-48213'
    assert detail['investigations'].startswith('CBC')
    r = patient.get('/prescriptions/%d.pdf' % order)
    assert r.status_code == 200
    assert r.headers['Content-Type'] == 'application/pdf'
    pdf = r.content

    other = Api(server)
    mobile = new_mobile()
    other.register(mobile)
    assert other.get('/consultations/%d' % token_id).status_code == 401
    login(other, mobile)
    assert other.get('/consultations').json()['consultations'] == []
    for path in ['/consultations/%d' % token_id,
            '/prescriptions/%d.pdf' % order,
            '/consultations/999999', '/prescriptions/999999.pdf']:
        r = other.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.json()['error']['code'] == 'not_found'

    # the patient's browser: Past consultations, detail, download
    context = browser.new_context(viewport={'width': 1280, 'height': 900},
        accept_downloads=True)
    context.add_cookies([{
                'name': 'sehat_session',
                'value': patient.http.cookies['sehat_session'],
                'domain': '127.0.0.1', 'path': '/%s/opd' % server.database,
                }])
    page = context.new_page()
    errors = []
    page.on('pageerror', lambda error: errors.append(str(error)))
    page.goto(server.portal + '/history')
    expect(page.locator('h1')).to_have_text('Past consultations')
    entry = page.locator('.history-item', has_text='Rx Test OPD').first
    expect(entry).to_contain_text('Acute pharyngitis')
    expect(entry).to_contain_text('e-Prescription')
    shot_widths(page, 'rx-history')
    entry.locator('a').click()
    expect(page.locator('h1')).to_contain_text('Consultation of')
    expect(page.locator('.consultation').first).to_contain_text('DMC-48213')
    expect(page.locator('table.medicines')).to_contain_text('PARACETAMOL')
    shot_widths(page, 'rx-history-detail')
    with page.expect_download() as download:
        page.get_by_role('link', name='Download PDF').click()
    downloaded = open(download.value.path(), 'rb').read()
    assert downloaded == pdf
    assert not errors, errors

    # the PDF: first page as a picture, its QR code, its text
    png = pdf_first_page(pdf)
    url, = decode_qr(png)
    assert url == '%s/verify/%s' % (server.portal, signed['sehat_code'])
    text = pdf_text(pdf)
    for value in ['Dr. Anil Sharma', 'DMC-48213 (Delhi Medical Council)',
            'PARACETAMOL', 'Acute pharyngitis', signed['sehat_hash'][:32],
            'Mode: Video', 'Test Patient', patient.patient_id]:
        assert value in text, value

    # the pharmacist scans the QR code
    pharmacist = browser.new_context(viewport={'width': 1280, 'height': 900})
    check = pharmacist.new_page()
    check.goto(url)
    verdict = check.locator('.verdict').first
    expect(verdict).to_contain_text('Genuine')
    body = check.locator('main')
    expect(body).to_contain_text('Dr. Anil Sharma')
    expect(body).to_contain_text('DMC-48213')
    expect(body).to_contain_text('PARACETAMOL')
    expect(body).to_contain_text('T. P.')
    # never the whole record
    assert 'Test Patient' not in body.inner_text()
    assert patient.patient_id not in body.inner_text()
    assert 'Acute pharyngitis' not in body.inner_text()
    shot_widths(check, 'rx-verify-genuine')
    check.goto(url + '?lang=hi')
    expect(check.locator('.verdict').first).to_contain_text('असली')
    shot(check, 'rx-verify-genuine-hindi')
    check.goto(url + '?lang=en')

    # the same file uploaded matches; an edited copy does not
    check.set_input_files('#pdf', files=[{'name': 'rx.pdf',
                'mimeType': 'application/pdf', 'buffer': pdf}])
    check.get_by_role('button', name='Check the PDF file').click()
    expect(check.locator('.verdict').first).to_contain_text(
        'has not been altered')
    check.set_input_files('#pdf', files=[{'name': 'rx.pdf',
                'mimeType': 'application/pdf', 'buffer': edit_pdf(pdf)}])
    check.get_by_role('button', name='Check the PDF file').click()
    expect(check.locator('.verdict').first).to_contain_text(
        'does NOT match')
    shot(check, 'rx-verify-altered')
    check.goto(server.portal + '/verify/' + 'x' * 22)
    expect(check.locator('.verdict').first).to_contain_text(
        'No prescription has this code')

    # the SMS link asks the date of birth before opening the PDF
    sms = pharmacist.new_page()
    sms.goto(link)
    expect(sms.locator('h1')).to_have_text('Your e-prescription')
    sms.fill('#birth_date', '1990-01-01')
    sms.get_by_role('button', name='Open the prescription').click()
    expect(sms.locator('#birth_date_error')).to_be_visible()
    shot(sms, 'rx-sms-link')
    session = requests.Session()
    form = session.get(link, timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    r = session.post(link, data={'csrf_token': csrf.group(1),
            'action': 'birth_date', 'birth_date': '1985-04-12'}, timeout=30)
    assert r.status_code == 200
    assert r.content == pdf
    # ... or an OTP sent to the registered mobile
    for _ in range(20):
        r = session.post(link, data={'csrf_token': csrf.group(1),
                'action': 'send_otp'}, timeout=30)
        if r.status_code != 429:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text
    otp_id = re.search(r'name="otp_id" value="(\d+)"', r.text).group(1)
    r = session.post(link, data={'csrf_token': csrf.group(1),
            'action': 'otp', 'otp_id': otp_id, 'code': '000000'}, timeout=30)
    assert r.status_code == 422 and 'The OTP is not correct' in r.text
    r = session.post(link, data={'csrf_token': csrf.group(1),
            'action': 'otp', 'otp_id': otp_id,
            'code': server.otp(patient.mobile)}, timeout=30)
    assert r.status_code == 200
    assert r.content == pdf

    # revoked by the doctor: the pharmacist is told, the link no longer
    # serves it
    revoke(doctor, order, 'Prescribed to the wrong patient')
    check.goto(url)
    expect(check.locator('.verdict').first).to_contain_text('Revoked')
    shot(check, 'rx-verify-revoked')
    assert patient.get('/prescriptions/%d.pdf' % order).status_code == 410
    pharmacist.close()
    context.close()


def revoke(doctor, order, reason):
    "The Revoke button's wizard, as the web client runs it."
    wizard = 'wizard.sehat.opd.prescription.revoke.'
    context = dict(doctor.context, active_model='gnuhealth.prescription.order',
        active_id=order, active_ids=[order])
    session = doctor.call(wizard + 'create', context)[0]
    doctor.call(wizard + 'execute', session, {'start': {'reason': reason}},
        'revoke', context)
    doctor.call(wizard + 'delete', session, context)


def pdf_first_page(pdf):
    "Render the PDF's first page to tests/screenshots/rx-pdf-page1.png."
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    source = SCREENSHOTS / 'rx.pdf'
    source.write_bytes(pdf)
    subprocess.run(['pdftoppm', '-png', '-r', '110', '-f', '1', '-l', '1',
            '-singlefile', str(source), str(SCREENSHOTS / 'rx-pdf-page1')],
        check=True)
    return SCREENSHOTS / 'rx-pdf-page1.png'


def decode_qr(png):
    result = subprocess.run(['zbarimg', '-q', '--raw', str(png)],
        capture_output=True, text=True)
    return result.stdout.split()


def pdf_text(pdf):
    from pypdf import PdfReader
    reader = PdfReader(io.BytesIO(pdf))
    return ' '.join(' '.join(p.extract_text() for p in reader.pages).split())


def edit_pdf(pdf):
    "A copy with one more byte in a comment: no longer the issued file."
    altered = pdf.replace(b'%PDF-1.4\n', b'%PDF-1.4\n%edited\n', 1)
    assert hashlib.sha256(altered).digest() != hashlib.sha256(pdf).digest()
    return altered


def test_back_office_consultation_forms(server, rx_patient, doctor_login,
        rx_opd, page):
    """In the web client, the doctor opens the token in consultation, then
    its consultation record and its e-prescription from the buttons."""
    consult(server, rx_patient, doctor_login, rx_opd, 'Knee pain')
    page.set_viewport_size({'width': 1400, 'height': 1000})
    page.goto(server.base + '/')
    database = page.locator('.login-dialog #database:visible')
    expect(database).to_be_visible(timeout=30_000)
    if database.evaluate('e => e.tagName') == 'SELECT':
        database.select_option(server.database)
    elif database.is_editable():
        database.fill(server.database)
    page.locator('.login-dialog #login').fill('dr.sharma')
    page.locator('.login-dialog button[type=submit]').click()
    page.locator('.ask-dialog #ask-dialog-entry').fill('sehat-demo')
    page.locator('.ask-dialog button.btn-primary').click()
    menu = page.locator('#menu')
    expect(menu).to_contain_text('SeHAT OPD', timeout=30_000)
    page.locator('#menu tr', has_text='SeHAT OPD').first.locator(
        '.expander').click()
    page.locator('#menu tr', has_text='My OPD Queue').first.locator(
        '.cell').first.click()
    # the queue opens on its "Waiting" tab; the patient is with the doctor
    page.get_by_role('tab', name=re.compile('^With a Doctor')).click()
    row = page.locator('.treeview tr', has_text='Knee pain').first
    expect(row).to_be_visible(timeout=30_000)
    row.dblclick()
    record = page.get_by_role('button', name='Consultation Record')
    expect(record).to_be_visible(timeout=30_000)
    shot(page, 'rx-backoffice-token')
    logs = []
    page.on('console', lambda m: logs.append(m.text))
    record.click()
    try:
        expect(page.locator('#tablist li', has_text='Teleconsultations')
            ).to_be_visible(timeout=30_000)
    except AssertionError:
        shot(page, 'rx-debug')
        raise AssertionError('%s %s' % (logs, page.errors))
    try:
        expect(page.get_by_text('Consultation Mode:').first).to_be_visible(
            timeout=30_000)
        # the complaint of the token, prefilled
        page.wait_for_function('() => [...document.querySelectorAll('
            '"input")].some(input => input.value === "Knee pain")',
            timeout=30_000)
    except AssertionError:
        shot(page, 'rx-debug')
        raise
    shot(page, 'rx-backoffice-consultation')
    page.get_by_role('button', name='e-Prescription').last.click()
    expect(page.locator('#tablist li', has_text='e-Prescriptions')
        ).to_be_visible(timeout=30_000)
    expect(page.get_by_role('button', name='Sign and Issue').last
        ).to_be_visible(timeout=30_000)
    shot(page, 'rx-backoffice-prescription')
    assert not page.errors, page.errors
