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


# Slow bodies ------------------------------------------------------------------

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


# SMS webhook --------------------------------------------------------------------

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
