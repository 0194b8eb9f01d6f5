"""Issue 9, bad input: hostile uploads and hostile HTTP (cross-site posts,
foreign origins, oversized and slow bodies) against the real server.

Every refusal is a clean 4xx naming the problem, in the API's error JSON,
and leaves nothing behind; what is accepted is stored under a generated
name and only ever served as a download. (The property-based fuzzing of
every operation is in test_fuzz.py.)
"""
import http.client
import io
import os
import re
import socket
import threading
import time
import zlib
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

import queue_data
from conftest import SMS_WEBHOOK_SECRET, Server, _psql, free_port

# the body timeout of the `strict` server, seconds
BODY_TIMEOUT = 1.5
FOREIGN = 'https://evil.example'


# Helpers --------------------------------------------------------------------

def bearer(who):
    return {'Authorization': 'Bearer %s' % who['session']}


def count(server, table, where='true'):
    return int(_psql('SELECT count(*) FROM %s WHERE %s' % (table, where),
            server.database))


def picture(kind='PNG', size=(64, 64)):
    data = io.BytesIO()
    Image.new('RGB', size, 'white').save(data, kind)
    return data.getvalue()


def jpeg_comment(text):
    "A JPEG whose comment segment holds `text` (where polyglots hide)."
    jpeg = picture('JPEG', (16, 16))
    return (jpeg[:2] + b'\xff\xfe' + (len(text) + 2).to_bytes(2, 'big')
        + text + jpeg[2:])


def pdf(body=b''):
    return (b'%PDF-1.5\n1 0 obj<</Type/Catalog>>endobj\n' + body
        + b'trailer<</Root 1 0 R>>\n%%EOF\n')


def packed_script():
    "A PDF whose script hides in a compressed object stream."
    script = zlib.compress(b'2 0 <</S/JavaScript/JS(app.alert(1))>>')
    return pdf(b'4 0 obj<</Type/ObjStm/N 1/First 4/Filter/FlateDecode>>'
        b'stream\n' + script + b'\nendstream\nendobj\n')


# (file name, content, what the refusal says)
HOSTILE = [
    ('scan.jpg', jpeg_comment(b'<img src=x onerror=alert(1)>'), 'scripts'),
    ('page.jpg', jpeg_comment(b'<html><script>alert(1)</script>'),
        'scripts'),
    ('report.pdf', b'<html><script>alert(1)</script></html>\n'
        + pdf(), 'not a PDF'),
    ('report.pdf', pdf(b'2 0 obj<</OpenAction<</S/JavaScript'
            b'/JS(app.alert(1))>>>>endobj\n'), 'scripts'),
    ('report.pdf', pdf(b'2 0 obj<</OpenAction<</S/J#61vaScript'
            b'/J#53(app.alert(1))>>>>endobj\n'), 'scripts'),
    ('report.pdf', packed_script(), 'scripts'),
    ('report.pdf', pdf(b'2 0 obj<</OpenAction<</S/Launch'
            b'/F(cmd.exe)>>>>endobj\n'), 'scripts'),
    ('empty.png', b'', 'empty'),
    ('cut.png', picture()[:-40], 'damaged'),
    ('cut.jpg', picture('JPEG')[:300], 'damaged'),
    ]


@pytest.fixture(scope='module')
def db(server):
    queue_data.configure(server.env)
    return server.database


@pytest.fixture(scope='module')
def opd(db):
    return queue_data.make_opd(db, 'HD%s' % (os.getpid() % 10 ** 6))


def new_patient(db):
    patient, = queue_data.make_patients(db, 1, '96')
    return patient


def post(server, path, who=None, **kwargs):
    headers = kwargs.pop('headers', {})
    if who:
        headers.update(bearer(who))
    return requests.post(server.api + path, headers=headers, timeout=60,
        **kwargs)


def refused(r, status=422):
    "The API's error JSON with `status`; return the error."
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers['Content-Type'].startswith('application/json')
    error = r.json()['error']
    assert error['code'] and error['message']
    return error


# Hostile uploads ------------------------------------------------------------

def test_hostile_files_refused_by_name(server, db, opd):
    "Polyglots, scripts in PDFs (plain, escaped, packed), launchers, empty "
    "and truncated pictures: each refused with a message naming the file "
    "and the problem; no token, no file is left"
    patient = new_patient(db)
    attachments = count(server, 'ir_attachment')
    for name, data, problem in HOSTILE:
        r = post(server, '/tokens', patient, data={'opd': opd},
            files=[('files', (name, data, 'application/octet-stream'))])
        error = refused(r)
        assert (error['code'], error['field']) == ('file_refused', 'files')
        assert name in error['message'] and problem in error['message'], (
            name, error['message'])
    assert count(server, 'sehat_opd_token',
        'patient = %s' % patient['id']) == 0
    assert count(server, 'ir_attachment') == attachments


def test_hostile_files_refused_in_waiting_room_and_chat(server, db, opd):
    "The waiting room's and the chat's uploads (patient and doctor) go "
    "through the same checks"
    patient = new_patient(db)
    doctor, = queue_data.make_doctors(db, 1, opd, 'hd')
    assert post(server, '/tokens', patient,
        json={'opd': opd}).status_code == 201
    attachments = count(server, 'ir_attachment')
    messages = count(server, 'sehat_opd_message')
    for name, data, _ in HOSTILE[:4]:
        refused(post(server, '/tokens/current/files', patient,
                files=[('file', (name, data))]))
    assert post(server, '/doctor/online', doctor,
        json={'opd': opd}).status_code == 200
    token_id = requests.get(server.api + '/tokens/current',
        headers=bearer(patient), timeout=30).json()['token_id']
    for name, data, _ in HOSTILE[:4]:
        refused(post(server, '/tokens/current/messages', patient,
                data={'text': 'my report'}, files=[('file', (name, data))]))
        refused(post(server, '/doctor/tokens/%s/messages' % token_id,
                doctor, files=[('file', (name, data))]))
    assert count(server, 'ir_attachment') == attachments
    assert count(server, 'sehat_opd_message') == messages


def test_file_names_never_reused(server, db, opd):
    "Names with ../, ..\\, quotes or line breaks: a good file is stored "
    "under a generated name, a refused one is named without its path"
    patient = new_patient(db)
    evil = ['../../../etc/passwd.png', '..\\..\\windows\\win.ini.png',
        'a"b\r\nSet-Cookie: x=1.png']
    r = post(server, '/tokens', patient, data={'opd': opd},
        files=[('files', (name, picture())) for name in evil])
    assert r.status_code == 201, r.text
    files = requests.get(server.api + '/tokens/current/files',
        headers=bearer(patient), timeout=30).json()['files']
    assert len(files) == 3
    for file in files:
        assert re.fullmatch(r'token-\d+-\d+\.png', file['name']), file
        r = requests.get(server.api + '/files/%s' % file['id'],
            headers=bearer(patient), timeout=30)
        assert r.headers['Content-Disposition'] == (
            'attachment; filename="%s"' % file['name'])
        assert 'Set-Cookie' not in r.headers
    error = refused(post(server, '/tokens/current/files', patient,
            files=[('file', ('../../secret/..\\evil.png', b''))]))
    name = re.search(r'"(.*)"', error['message']).group(1)
    assert name.endswith('evil.png') and not set('/\\') & set(name), name


def test_ten_files_at_once(server, db, opd):
    "Ten files: refused for their number (3 at most), or for their size "
    "(413 before anything is read); nothing stored"
    patient = new_patient(db)
    attachments = count(server, 'ir_attachment')
    ten = [('files', ('f%d.png' % i, picture())) for i in range(10)]
    error = refused(post(server, '/tokens', patient, data={'opd': opd},
            files=ten))
    assert error['field'] == 'files' and '3' in error['message']
    assert count(server, 'sehat_opd_token',
        'patient = %s' % patient['id']) == 0
    assert post(server, '/tokens', patient,
        json={'opd': opd}).status_code == 201
    ten = [(field, value) for _, value in ten for field in ['file']]
    assert refused(post(server, '/tokens/current/files', patient,
            files=ten))['field'] == 'file'
    assert refused(post(server, '/tokens/current/messages', patient,
            files=ten))['field'] == 'file'
    # 10 files of 2.5 MB: past the upload routes' 20 MB, refused unread
    status, _, body, _ = raw(server, 'POST', '/tokens/current/files',
        dict(bearer(patient), **{
                'Content-Type': 'multipart/form-data; boundary=x'}),
        length=10 * 5 * 2 ** 19)
    assert status == 413 and b'too_large' in body, body
    assert count(server, 'ir_attachment') == attachments


def test_accepted_files_only_downloaded(server, db, opd):
    "A picture with a PDF glued after it is a picture: stored as one, and "
    "served like every file as a download the browser may not sniff"
    patient = new_patient(db)
    glued = picture() + packed_script()
    r = post(server, '/tokens', patient, data={'opd': opd}, files=[
            ('files', ('glued.html', glued, 'text/html')),
            ('files', ('report.pdf', pdf(), 'text/html'))])
    assert r.status_code == 201, r.text
    files = requests.get(server.api + '/tokens/current/files',
        headers=bearer(patient), timeout=30).json()['files']
    assert [f['type'] for f in files] == ['image/png', 'application/pdf']
    for file in files:
        r = requests.get(server.api + '/files/%s' % file['id'],
            headers=bearer(patient), timeout=30)
        assert r.headers['Content-Type'] == file['type']
        assert r.headers['Content-Disposition'].startswith('attachment;')
        assert r.headers['X-Content-Type-Options'] == 'nosniff'
        assert 'sandbox' in r.headers['Content-Security-Policy']


# Headers --------------------------------------------------------------------

def test_cross_site_post_refused(server, db, opd):
    "A cookie-authenticated write without the CSRF token, or from another "
    "site, is refused in JSON and does nothing"
    patient = new_patient(db)
    cookies = {'sehat_session': patient['session']}
    url = server.api + '/tokens'
    for headers in [{}, {'X-CSRF-Token': 'guess'}, {'Origin': FOREIGN},
            {'Origin': FOREIGN, 'X-CSRF-Token': patient['csrf']},
            {'Origin': 'null', 'X-CSRF-Token': patient['csrf']}]:
        r = requests.post(url, json={'opd': opd}, cookies=cookies,
            headers=headers, timeout=30)
        assert refused(r, 403)['code'] == 'forbidden', headers
        # what a cross-site HTML form sends
        r = requests.post(url, data={'opd': opd}, cookies=cookies,
            headers=headers, timeout=30)
        assert refused(r, 403)['code'] == 'forbidden', headers
    assert count(server, 'sehat_opd_token',
        'patient = %s' % patient['id']) == 0
    r = requests.post(url, json={'opd': opd}, cookies=cookies,
        headers={'X-CSRF-Token': patient['csrf'], 'Origin': server.base},
        timeout=30)
    assert r.status_code == 201, r.text


def test_foreign_origin_refused(server):
    "A foreign Origin is a 403 in JSON under the API, not a 500"
    for method, path in [('GET', '/opds'), ('POST', '/otp'),
            ('GET', '/no/such/route')]:
        r = requests.request(method, server.api + path, timeout=30,
            headers={'Origin': FOREIGN}, json={})
        assert refused(r, 403)['code'] == 'forbidden'
        assert 'Access-Control-Allow-Origin' not in r.headers
    r = requests.get(server.portal + '/', headers={'Origin': FOREIGN},
        timeout=30)
    assert r.status_code == 403


def test_dispatcher_refusals_in_json(server):
    "Unknown address, wrong method, no length: the API's error JSON"
    r = requests.get(server.api + '/no/such/route', timeout=30)
    assert refused(r, 404)['code'] == 'not_found'
    r = requests.put(server.api + '/otp', json={}, timeout=30)
    assert refused(r, 405)['code'] == 'method_not_allowed'
    r = requests.get(server.api + '/doctor/tokens/-1', timeout=30)
    assert refused(r, 404)['code'] == 'not_found'
    r = requests.post(server.api + '/otp', timeout=30,
        data=iter([b'{"mobile": "9876543210"}']))  # chunked: no length
    assert refused(r, 411)['code'] == 'length_required'


def test_oversized_body_refused_unread(server, new_mobile):
    "A body past [request] max_size: 413 in JSON at once, without waiting "
    "for the body (none is sent), and nothing happens"
    mobile = new_mobile()
    otps = count(server, 'sehat_opd_otp')
    body = b'{"mobile": "%s", "pad": "%s"}' % (
        mobile.encode(), b'x' * (3 * 2 ** 20))
    status, headers, answer, _ = raw(server, 'POST', '/otp',
        {'Content-Type': 'application/json'}, length=len(body))
    assert status == 413
    assert headers['Content-Type'] == 'application/json'
    assert b'"too_large"' in answer
    assert count(server, 'sehat_opd_otp') == otps
    assert not server.messages(mobile)


# Slow bodies ----------------------------------------------------------------

def raw(server, method, path, headers, body=b'', length=None, drip=None):
    """Send a request by hand: the headers, then `body` (all of it, or a
    byte every `drip` seconds), announcing `length` bytes. Return (status,
    headers, body, seconds until the answer)."""
    sock = socket.create_connection(('127.0.0.1', server.port), timeout=30)
    head = ['%s %s HTTP/1.1' % (method, urlsplit(server.api).path + path),
        'Host: 127.0.0.1:%s' % server.port,
        'Content-Length: %s' % (len(body) if length is None else length)]
    head += ['%s: %s' % item for item in headers.items()]
    sock.sendall(('\r\n'.join(head) + '\r\n\r\n').encode())
    started = time.monotonic()
    stop = threading.Event()

    def send():
        try:
            if drip is None:
                sock.sendall(body)
            for byte in body if drip else b'':
                if stop.wait(drip):
                    return
                sock.sendall(bytes([byte]))
        except OSError:
            pass  # the server answered and closed
    sender = threading.Thread(target=send)
    sender.start()
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        answer = response.read()
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        sender.join()
        sock.close()
    return response.status, response.headers, answer, elapsed


@pytest.fixture(scope='module')
def strict(server, tmp_path_factory):
    "A second server on the same database with a short body timeout."
    port = free_port()
    log = tmp_path_factory.mktemp('strict') / 'trytond.log'
    strict = Server(server.database, port, log, dict(server.env,
            TRYTOND_WEB__LISTEN='127.0.0.1:%s' % port,
            TRYTOND_SEHAT_OPD__BODY_TIMEOUT=str(BODY_TIMEOUT)),
        gateway=server.gateway)
    strict.start()
    yield strict
    strict.stop()


@pytest.mark.parametrize('drip', [None, 0.3], ids=['stalled', 'trickled'])
def test_slow_body_timed_out(strict, new_mobile, drip):
    "Headers, then a body that stalls or trickles: 408 in JSON once the "
    "body timeout is over, nothing done, and others are served meanwhile"
    mobile = new_mobile()
    body = b'{"mobile": "%s", "purpose": "register"}' % mobile.encode()
    result = {}
    slow = threading.Thread(target=lambda: result.update(answer=raw(
                strict, 'POST', '/otp', {'Content-Type': 'application/json'},
                body[:10] if drip is None else body, length=len(body),
                drip=drip)))
    slow.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert requests.get(strict.api + '/opds', timeout=30).status_code == 200
    assert time.monotonic() - started < BODY_TIMEOUT
    slow.join(30)
    status, headers, answer, elapsed = result['answer']
    assert status == 408, answer
    assert headers['Content-Type'] == 'application/json'
    assert b'"timeout"' in answer
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 3, elapsed
    assert not strict.messages(mobile)
    assert count(strict, 'sehat_opd_otp',
        "mobile = '+91%s'" % mobile[-10:]) == 0


def test_slow_but_complete_body_served(strict, new_mobile):
    "A body that takes its time but arrives within the timeout is served"
    mobile = new_mobile()
    body = b'{"mobile": "%s", "purpose": "register"}' % mobile.encode()
    status, _, answer, _ = raw(strict, 'POST', '/otp',
        {'Content-Type': 'application/json'}, body,
        drip=BODY_TIMEOUT / 2 / len(body))
    assert status == 202, answer
    assert strict.otp(mobile)


# SMS webhook ----------------------------------------------------------------

def test_sms_receipt_body_must_be_a_report(server):
    "A JSON body that is no object or array is refused; an empty report "
    "list or a form is fine"
    url = server.api + '/sms/receipt/generic'
    headers = {'X-Sehat-Secret': SMS_WEBHOOK_SECRET}
    for body in [b'"AAA"', b'42', b'{not json', b'null']:
        r = requests.post(url, data=body, timeout=30, headers=dict(
                headers, **{'Content-Type': 'application/json'}))
        assert refused(r)['code'] == 'invalid', body
    r = requests.post(url, json=[], headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()['received'] == 0
    r = requests.post(url, data={'id': 'x', 'status': 'DELIVERED'},
        headers=headers, timeout=30)
    assert r.status_code == 200, r.text
