"""Issue 3: what follows registration, through the JSON API of a real
server and the portal pages' forms: sessions and their keys, login with
the token number, recovery of the Patient ID, uploads, the pages."""
import base64
import threading
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests

from helpers import PDF, age_otps, count, e164, png_bytes, settings, sql

pytestmark = pytest.mark.usefixtures('forget_address_counts')


# Sessions -------------------------------------------------------------------

def _verification(api, server, mobile):
    age_otps(server, mobile)
    return api.verify(mobile, 'login')


def test_session_cookie_flags(api, server, new_mobile):
    "The session cookie is HttpOnly, SameSite=Lax, scoped to the portal"
    mobile = new_mobile()
    api.register(mobile)
    r = api.post('/session', json={
            'verification': _verification(api, server, mobile)})
    assert r.status_code == 200
    cookie = r.headers['Set-Cookie']
    assert cookie.startswith('sehat_session=')
    assert 'HttpOnly' in cookie and 'SameSite=Lax' in cookie
    assert 'Path=/%s/opd' % server.database in cookie
    # plain HTTP here; Secure over HTTPS is tested in the module tests
    assert 'Secure' not in cookie
    body = r.json()
    assert set(body) == {'session', 'csrf_token', 'patient_id'}
    assert len(base64.urlsafe_b64decode(body['session'] + '==')) >= 16


def test_new_key_at_every_login(api, server, new_mobile):
    "Every login gives a new key; the browser's previous key ends"
    mobile = new_mobile()
    api.register(mobile)
    first = api.login(mobile)
    old_cookie = api.http.cookies.get('sehat_session')
    second = api.post('/session', json={
            'verification': _verification(api, server, mobile)}).json()
    assert second['session'] != first['session']
    r = requests.get(api.url('/me'), cookies={'sehat_session': old_cookie},
        timeout=10)
    assert r.status_code == 401


def test_logout_refuses_old_key(api, server, new_mobile):
    "A session key from before logout is refused (cookie and bearer)"
    mobile = new_mobile()
    api.register(mobile)
    key = api.login(mobile)['session']
    assert api.get('/me').status_code == 200
    assert api.delete('/session').status_code == 204
    assert api.get('/me').status_code == 401
    r = requests.get(api.url('/me'), cookies={'sehat_session': key},
        timeout=10)
    assert r.status_code == 401
    r = requests.get(api.url('/me'), timeout=10,
        headers={'Authorization': 'Bearer ' + key})
    assert r.status_code == 401
    assert r.json()['error']['code'] == 'unauthorized'


def test_bearer_session(api, server, new_mobile):
    "API clients use Authorization: Bearer, without cookie or CSRF header"
    mobile = new_mobile()
    api.register(mobile)
    key = api.login(mobile, bearer=True)['session']
    bare = requests.Session()
    headers = {'Authorization': 'Bearer ' + key}
    r = bare.get(api.url('/me'), headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()['mobile'] == e164(mobile)
    r = bare.delete(api.url('/session'), headers=headers, timeout=10)
    assert r.status_code == 204
    assert bare.get(api.url('/me'), headers=headers,
        timeout=10).status_code == 401
    r = bare.get(api.url('/me'), headers={'Authorization': 'Bearer nope'},
        timeout=10)
    assert r.status_code == 401


def test_csrf_on_cookie_writes(patient):
    "A cookie-authenticated write needs the session's CSRF token"
    csrf = patient.csrf
    patient.csrf = None
    r = patient.delete('/session')
    assert r.status_code == 403 and r.json()['error']['code'] == 'forbidden'
    r = patient.delete('/session', headers={'X-CSRF-Token': 'wrong'})
    assert r.status_code == 403
    r = patient.post('/tokens', json={'opd': 1, 'complaint': 'x'})
    assert r.status_code == 403
    # reads need no token; the session is still alive
    assert patient.get('/me').status_code == 200
    assert patient.delete('/session', headers={
            'X-CSRF-Token': csrf}).status_code == 204


def test_idle_timeout(patient, server):
    "A session idle longer than the setting is over, for good"
    assert patient.get('/me').status_code == 200
    sql(server, "UPDATE sehat_opd_session SET last_activity = last_activity "
        "- interval '31 minutes' WHERE patient = (SELECT id FROM "
        "gnuhealth_patient WHERE patient_code = '%s')" % patient.patient_id)
    r = patient.get('/me')
    assert r.status_code == 401
    assert r.json()['error']['code'] == 'unauthorized'
    assert patient.get('/me').status_code == 401


def test_idle_timeout_is_a_setting(patient, server, rpc):
    "Activity within the timeout keeps the session alive"
    with settings(rpc, session_idle_timeout=60):
        sql(server, "UPDATE sehat_opd_session SET last_activity = "
            "last_activity - interval '45 minutes' WHERE patient = (SELECT "
            "id FROM gnuhealth_patient WHERE patient_code = '%s')"
            % patient.patient_id)
        assert patient.get('/me').status_code == 200


# Login with the token number ------------------------------------------------

def test_token_number_login_and_lock(patient, api, server):
    "Mobile + token number logs in; 5 failures lock it, OTP still works"
    r = patient.take_token()
    assert r.status_code == 201, r.text
    number = r.json()['token_number']
    login = requests.Session()

    def token_login(value):
        return login.post(api.url('/session'), timeout=10, json={
                'mobile': patient.mobile, 'token_number': value})
    r = token_login(str(number))
    assert r.status_code == 200 and r.json()['patient_id'] == (
        patient.patient_id)
    for _ in range(5):
        r = token_login(number + 1000)
        assert r.status_code == 401
        assert r.json()['error']['code'] == 'unauthorized'
    r = token_login(number)
    assert r.status_code == 429
    assert 'OTP' in r.json()['error']['message']
    verification = _verification(api, server, patient.mobile)
    r = login.post(api.url('/session'), json={
            'verification': verification}, timeout=10)
    assert r.status_code == 200


def test_parallel_token_guesses_counted(patient, api):
    "Parallel wrong token numbers cannot get past the lock"
    number = patient.take_token().json()['token_number']
    statuses = []

    def guess(value):
        r = requests.post(api.url('/session'), timeout=30, json={
                'mobile': patient.mobile, 'token_number': value})
        statuses.append(r.status_code)
    threads = [threading.Thread(target=guess, args=(number + 100 + i,))
        for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(401) <= 5, statuses
    assert set(statuses) <= {401, 429}
    r = requests.post(api.url('/session'), timeout=10, json={
            'mobile': patient.mobile, 'token_number': number})
    if statuses.count(401) == 5:
        assert r.status_code == 429


def test_token_login_bad_input(api, new_mobile):
    "Token login checks its fields; an unknown mobile is a plain 401"
    r = api.post('/session', json={'mobile': '123', 'token_number': '4'})
    assert r.status_code == 422 and r.json()['error']['field'] == 'mobile'
    for value in ['abc', '', -1, 0, 1.5, '²', None, True, [1]]:
        r = api.post('/session', json={
                'mobile': new_mobile(), 'token_number': value})
        assert r.status_code == 422, value
        assert r.json()['error']['field'] == 'token_number'
    r = api.post('/session', json={'mobile': new_mobile(), 'token_number': 3})
    assert r.status_code == 401
    r = api.post('/session', json={})
    assert r.status_code == 422
    r = api.post('/session', json={'verification': 'forged'})
    assert r.status_code == 400


# Recovery -------------------------------------------------------------------

def test_recover(patient, api, server, new_mobile):
    "Recovery answers alike; a registered mobile gets its ID and token"
    token = patient.take_token().json()['token_number']
    unknown = new_mobile()
    known = api.post('/recover', json={'mobile': patient.mobile})
    other = api.post('/recover', json={'mobile': unknown})
    assert known.status_code == other.status_code == 202
    assert known.json() == other.json()
    # both wait for the same floor, whatever they did
    assert known.elapsed.total_seconds() >= 0.1
    assert other.elapsed.total_seconds() >= 0.1
    text = server.messages(patient.mobile, 'recover')[-1]
    assert patient.patient_id in text and str(token) in text
    assert not server.messages(unknown)
    r = api.post('/recover', json={'mobile': '555'})
    assert r.status_code == 422 and r.json()['error']['field'] == 'mobile'


def test_recover_rate_limited(api, new_mobile):
    "Recovery is limited per mobile"
    mobile = new_mobile()
    for _ in range(5):
        assert api.post('/recover', json={'mobile': mobile}).status_code == 202
    r = api.post('/recover', json={'mobile': mobile})
    assert r.status_code == 429


# Uploads --------------------------------------------------------------------

def test_uploads_checked_by_content(patient, server):
    "A .exe named .pdf, a 6 MB file and a 4th file are refused"
    attachments = count(server, 'ir_attachment')
    exe = ('report.pdf', b'MZ\x90\x00' + b'\x00' * 200, 'application/pdf')
    r = patient.take_token(files=[exe])
    assert r.status_code == 422, r.text
    assert r.json()['error']['code'] == 'file_refused'
    assert r.json()['error']['field'] == 'files'
    big = ('scan.png', png_bytes() + b'\x00' * (6 * 1024 * 1024), 'image/png')
    r = patient.take_token(files=[big])
    assert r.status_code in (413, 422), r.status_code
    four = [('f%d.png' % i, png_bytes(), 'image/png') for i in range(4)]
    r = patient.take_token(files=four)
    assert r.status_code == 422
    assert patient.get('/tokens/current').status_code == 404
    assert count(server, 'ir_attachment') == attachments
    # three good files are fine, and three more in the waiting room
    r = patient.take_token(files=[
            ('a.png', png_bytes(), 'image/png'),
            ('b.pdf', PDF, 'application/pdf'),
            ('c.jpg', png_bytes(), 'image/jpeg')])
    assert r.status_code == 201, r.text
    for i in range(3):
        r = patient.post('/tokens/current/files', files=[
                ('file', ('more%d.png' % i, png_bytes(), 'image/png'))])
        assert r.status_code == 201, r.text
    r = patient.post('/tokens/current/files', files=[
            ('file', ('one-too-many.png', png_bytes(), 'image/png'))])
    assert r.status_code == 422
    files = patient.get('/tokens/current/files').json()['files']
    assert len(files) == 6
    # stored under generated names, typed by content
    assert all(not f['name'].startswith(('a.', 'b.', 'c.', 'more'))
        for f in files)
    assert {f['type'] for f in files} == {'image/png', 'application/pdf'}


def test_file_download_headers_and_owner(patient, api, server, new_mobile,
        doctor_login):
    "A file is served as a download, with nosniff, to its owner and the "
    "doctors of the OPD only"
    patient.take_token(files=[('x.png', png_bytes(), 'image/png')])
    file = patient.get('/tokens/current/files').json()['files'][0]
    r = patient.get('/files/%d' % file['id'])
    assert r.status_code == 200
    assert r.headers['Content-Disposition'].startswith('attachment;')
    assert r.headers['X-Content-Type-Options'] == 'nosniff'
    assert r.headers['Content-Type'] == 'image/png'
    assert r.content == png_bytes()
    other = type(api)(server)
    mobile = new_mobile()
    other.register(mobile)
    other.login(mobile)
    r = other.get('/files/%d' % file['id'])
    assert r.status_code == 404
    assert other.get('/files/999999999').status_code == 404
    assert requests.get(api.url('/files/%d' % file['id']),
        timeout=10).status_code == 401
    sharma = doctor_login('dr.sharma')  # a doctor of DEMO24
    r = sharma.get('/files/%d' % file['id'])
    assert r.status_code == 200
    assert r.headers['Content-Disposition'].startswith('attachment;')
    das = doctor_login('dr.das')  # GEN and MED only
    assert das.get('/files/%d' % file['id']).status_code == 404


# Pages ----------------------------------------------------------------------

class Assets(HTMLParser):
    "The stylesheets and scripts a page loads."

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'link' and attrs.get('rel') == 'stylesheet':
            self.urls.append(attrs['href'])
        elif tag == 'script' and attrs.get('src'):
            self.urls.append(attrs['src'])


def page_weight(http, url):
    "Bytes of a page with its CSS and JavaScript."
    r = http.get(url, timeout=10)
    assert r.status_code == 200, (url, r.status_code)
    parser = Assets()
    parser.feed(r.text)
    total = len(r.content)
    for asset in parser.urls:
        a = http.get(urljoin(url, asset), timeout=10)
        assert a.status_code == 200, asset
        total += len(a.content)
    return total


def test_pages_are_light(patient, server):
    "Each portal page of this issue, with its CSS and JS, is under 150 KB"
    anonymous = requests.Session()
    for path in ['/', '/register', '/login', '/recover']:
        for lang in ['en', 'hi']:
            weight = page_weight(anonymous,
                '%s%s?lang=%s' % (server.portal, path, lang))
            assert weight < 150 * 1024, (path, lang, weight)
    for path in ['/profile', '/welcome']:
        weight = page_weight(patient.http, server.portal + path)
        assert weight < 150 * 1024, (path, weight)


def test_pages_need_login(server):
    "Profile and welcome send a visitor to the login page, with next="
    for path in ['/profile', '/welcome']:
        r = requests.get(server.portal + path, allow_redirects=False,
            timeout=10)
        assert r.status_code in (302, 303)
        assert r.headers['Location'].endswith(
            '/login?next=/%s/opd%s' % (server.database, path))


def test_form_posts_need_form_token(server, new_mobile):
    "A page form posted without the page's form token is refused"
    r = requests.post(server.portal + '/register', timeout=10, data={
            'action': 'send', 'mobile': new_mobile()})
    assert r.status_code == 400
    assert not server.messages(new_mobile())


def test_regions(api):
    "GET /regions: states with districts and towns; ?state= for one"
    states = api.get('/regions').json()['states']
    assert len(states) == 36
    maharashtra = api.get('/regions?state=IN-MH').json()['states']
    assert [s['code'] for s in maharashtra] == ['IN-MH']
    pune = [d for d in maharashtra[0]['districts'] if d['code'] == 'IN-MH-PUN']
    assert 'Pune Cantonment' in pune[0]['cities']
    hindi = api.get('/regions?state=IN-MH&lang=hi').json()['states'][0]
    assert hindi['name'] == 'महाराष्ट्र'
    r = api.get('/regions?state=IN-XX')
    assert r.status_code == 422 and r.json()['error']['field'] == 'state'

