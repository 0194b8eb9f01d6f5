"""The people of bench/load_day.py: patients and doctors doing, over HTTP,
what the portal's and the console's pages do (waiting.js, consult.js,
console.js), each request timed under its endpoint's name.

- `Recorder`: every request's endpoint, status and time, by phase;
- `Http`: a requests session that records what it sends;
- `Rpc`: the back office's JSON-RPC (how doctors write and sign the
  e-prescription, as tests/test_prescription_browser.py does);
- `patient_day`, `doctor_day`: one person's day, run in a thread each.
"""
import base64
import random
import re
import threading
import time
from collections import defaultdict

import requests

# long polls: their time is mostly waiting, not serving
POLLS = {
    'GET /tokens/current/wait', 'GET /tokens/current/consultation',
    'GET /doctor/wait', 'GET /doctor/tokens/{id}/consultation'}


class FlowError(Exception):
    "An answer the page would not expect (the request is recorded)."


class Recorder:
    "Times of requests by phase and endpoint; errors with a sample each."

    def __init__(self):
        self.lock = threading.Lock()
        self.phase = 'setup'
        self.times = defaultdict(lambda: defaultdict(list))
        self.statuses = defaultdict(lambda: defaultdict(
                lambda: defaultdict(int)))
        self.samples = {}
        self.count = 0
        self.events = defaultdict(lambda: defaultdict(int))

    def set_phase(self, phase):
        with self.lock:
            self.phase = phase

    def add(self, endpoint, status, seconds, body=None, phase=None):
        """`phase`: the one the request was sent in (a request still open
        when its phase ends, answered by a server that is being stopped,
        belongs to that phase, not to the next one)."""
        with self.lock:
            phase = phase or self.phase
            self.count += 1
            self.times[phase][endpoint].append(seconds)
            self.statuses[phase][endpoint][status] += 1
            if (status == 'error' or (isinstance(status, int)
                        and status >= 500)) and (
                    (endpoint, status) not in self.samples):
                self.samples[endpoint, status] = (body or '')[:300]

    def event(self, name, count=1):
        "Count something that happened to people (served, cancelled...)."
        with self.lock:
            self.events[self.phase][name] += count


def percentile(values, q):
    "Nearest-rank percentile of `values` (sorted or not)."
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
    return ordered[index]


class Http:
    """One person's browser or app: a session (cookies), an optional
    Bearer key and CSRF token, every request timed by the recorder."""

    def __init__(self, recorder, root, database):
        self.recorder = recorder
        self.root = root
        self.api = '%s/%s/opd/api/v1' % (root, database)
        self.portal = '%s/%s/opd' % (root, database)
        self.http = requests.Session()
        self.bearer = None
        self.csrf = None

    def request(self, method, path, endpoint=None, expect=(200,),
            page=False, timeout=75, **kwargs):
        """Send, time and record; return the response. An unexpected
        status raises FlowError (a 5xx is also counted as an error)."""
        url = (self.portal if page else self.api) + path
        headers = kwargs.pop('headers', {})
        if self.bearer:
            headers['Authorization'] = 'Bearer ' + self.bearer
        elif self.csrf and method != 'GET':
            headers['X-CSRF-Token'] = self.csrf
        endpoint = endpoint or '%s %s' % (method, path)
        phase = self.recorder.phase
        started = time.monotonic()
        try:
            response = self.http.request(method, url, headers=headers,
                timeout=timeout, **kwargs)
        except requests.RequestException as exception:
            self.recorder.add(endpoint, 'error', time.monotonic() - started,
                repr(exception), phase)
            raise FlowError('%s: %r' % (endpoint, exception))
        self.recorder.add(endpoint, response.status_code,
            time.monotonic() - started, response.text
            if response.status_code >= 500 else None, phase)
        if response.status_code not in expect:
            raise FlowError('%s: %s %s' % (
                    endpoint, response.status_code, response.text[:200]))
        return response

    def get(self, path, **kwargs):
        return self.request('GET', path, **kwargs)

    def post(self, path, **kwargs):
        return self.request('POST', path, **kwargs)


class Rpc:
    "A back-office user through trytond's JSON-RPC, each call recorded."

    def __init__(self, http, database, login, password):
        self.http = http
        self.url = '%s/%s/' % (http.root, database)
        user_id, session = self.call('common.db.login', login,
            {'password': password}, 'en')[:2]
        key = base64.b64encode(
            ('%s:%s:%s' % (login, user_id, session)).encode()).decode()
        self.headers = {'Authorization': 'Session ' + key}
        self.context = self.call('model.res.user.get_preferences', True, {})

    def call(self, method, *params):
        endpoint = 'RPC ' + re.sub(r'^model\.', '', method)
        started = time.monotonic()
        try:
            response = self.http.http.post(self.url, json={
                    'id': 1, 'method': method, 'params': list(params)},
                headers=getattr(self, 'headers', {}), timeout=75)
        except requests.RequestException as exception:
            self.http.recorder.add(endpoint, 'error',
                time.monotonic() - started, repr(exception))
            raise FlowError('%s: %r' % (endpoint, exception))
        data = response.json() if response.status_code == 200 else {}
        status = response.status_code
        if status == 200 and data.get('error'):
            status = 'rpc-error'
        self.http.recorder.add(endpoint, status, time.monotonic() - started,
            str(data.get('error') or response.text))
        if status != 200:
            raise FlowError('%s: %s %s' % (
                    endpoint, status, str(data.get('error'))[:300]))
        return data['result']

    def __call__(self, model, method, *args):
        return self.call('model.%s.%s' % (model, method), *args,
            self.context)


class Day:
    """What the people of one run share: when the day ends, the OPDs, the
    SMS gateway (for OTPs), the options."""

    def __init__(self, recorder, root, database, opds, gateway, options):
        self.recorder = recorder
        self.root = root
        self.database = database
        self.opds = opds
        self.gateway = gateway
        self.options = options
        self.closing = threading.Event()
        self.ended = threading.Event()

    def http(self):
        return Http(self.recorder, self.root, self.database)


# Patients ---------------------------------------------------------------

def read_otp(day, mobile, seen, timeout=20):
    "The next OTP texted to `mobile` (the gateway is on 127.0.0.1)."
    def fresh(gateway):
        return [r for r in gateway.sent_to('to', mobile)
            if r.params.get('event') == 'otp' and id(r) not in seen]
    found = day.gateway.wait_for(fresh, timeout=timeout)
    if not found:
        day.recorder.event('otp_not_received')
        raise FlowError('no OTP texted to %s' % mobile)
    seen.add(id(found[-1]))
    return re.search(r'\b(\d{6})\b', found[-1].params['text']).group(1)


def verify(day, http, mobile, purpose, seen):
    r = http.post('/otp', json={'mobile': mobile, 'purpose': purpose},
        expect=(202,))
    code = read_otp(day, mobile, seen)
    r = http.post('/otp/verify', json={
            'otp_id': r.json()['otp_id'], 'code': code})
    return r.json()['verification']


def register(day, http, mobile, fields):
    """The real OTP flow of a new patient: register, then log in (a
    browser: cookie session and CSRF token)."""
    seen = set()
    http.get('/regions', params={'state': fields['state']})
    values = dict(fields, verification=verify(
            day, http, mobile, 'register', seen))
    http.post('/patients', json=values, expect=(201,))
    r = http.post('/session', json={
            'verification': verify(day, http, mobile, 'login', seen)})
    http.csrf = r.json()['csrf_token']


def wait_turn(day, http, status):
    """The waiting room: long-poll with the version shown and the bus
    cursor, as waiting.js does, until the patient is called (or the token
    is gone, or the day ends). Return the last status or None."""
    version, cursor = status['version'], status.get('cursor') or ''
    while status['state'] == 'waiting':
        if day.closing.is_set():
            return None
        r = http.get('/tokens/current/wait', params={
                'version': version, 'cursor': cursor}, expect=(200, 404))
        if r.status_code == 404:
            return None
        status = r.json()
        if status['version'] == version:
            day.recorder.event('wait answered, no change')
        version, cursor = status['version'], status['cursor'] or ''
    return status


def consult(day, http, token_id):
    """The consultation page: join the room, say hello on the chat when
    the doctor writes, follow the consultation until it is over."""
    http.post('/tokens/current/join')
    http.post('/tokens/current/video', json={'event': 'joined'})
    after, version, cursor, replied = 0, '', '', False
    deadline = time.monotonic() + day.options.consult_timeout
    while time.monotonic() < deadline:
        r = http.get('/tokens/current/consultation', params={
                'token': token_id, 'after': after, 'version': version,
                'cursor': cursor})
        state = r.json()
        version, cursor = state['version'], state['cursor'] or ''
        for message in state['messages']:
            after = max(after, message['id'])
            if message['sender'] == 'doctor' and not replied:
                replied = True
                # the doctor may have signed already (the chat is closed)
                http.post('/tokens/current/messages', json={
                        'text': 'Fever since yesterday, no cough.'},
                    expect=(201, 404, 409))
        if state['token']['over']:
            return state['token']['state']
    raise FlowError('consultation %s not over in time' % token_id)


def patient_day(day, person):
    """One patient's visit: (register,) take a token, wait, answer the
    call, consult, (download the prescription)."""
    options = day.options
    http = day.http()
    rng = random.Random(person['mobile'])
    try:
        if person.get('session'):
            http.bearer = person['session']
        else:
            register(day, http, person['mobile'], person['fields'])
            day.recorder.event('registered')
        http.get('/opds')
        http.post('/tokens', json={'opd': person['opd'],
                'complaint': 'Fever and sore throat'}, expect=(201,))
        day.recorder.event('token')
        status = http.get('/tokens/current').json()
        if http.csrf:
            http.get('/waiting', page=True)
        if rng.random() < options.cancel_share:
            # gives up after a while
            time.sleep(rng.uniform(1, 10))
            http.post('/tokens/current/cancel')
            day.recorder.event('cancelled')
            return
        status = wait_turn(day, http, status)
        if status is None:
            if day.closing.is_set():
                http.post('/tokens/current/cancel', expect=(200, 404, 409))
                day.recorder.event('not_seen_by_closing')
            else:
                day.recorder.event('token_lost')
            return
        r = http.post('/tokens/current/call')
        if r.json().get('next_url') and http.csrf:
            http.get('/consult', page=True)
        final = consult(day, http, status['token_id'])
        day.recorder.event('consulted_' + final)
        if final == 'completed' and rng.random() < options.pdf_share:
            history = http.get('/consultations').json()['consultations']
            mine = [c for c in history if c['id'] == status['token_id']]
            prescription = mine and mine[0].get('prescription')
            if prescription and prescription.get('pdf'):
                r = http.get('/prescriptions/%s.pdf' % prescription['id'],
                    endpoint='GET /prescriptions/{id}.pdf')
                if not r.content.startswith(b'%PDF'):
                    raise FlowError('not a PDF')
                day.recorder.event('pdf')
    except FlowError as error:
        day.recorder.event('patient_failed')
        day.recorder.event('failure: ' + str(error)[:120])


# Doctors ----------------------------------------------------------------

class Doctor:
    "A doctor's console and back-office client."

    def __init__(self, day, person):
        self.day = day
        self.person = person
        self.http = day.http()
        self.rng = random.Random(person['login'])
        r = self.http.post('/doctor/session', json={
                'login': person['login'], 'password': person['password']})
        self.http.csrf = r.json()['csrf_token']
        self.rpc = Rpc(self.http, day.database, person['login'],
            person['password'])
        self.medicament, = self.rpc('gnuhealth.medicament', 'search',
            [('rec_name', '=', 'Paracetamol 500 mg tablet')], 0, 1, None)
        self.dosage, = self.rpc('gnuhealth.medication.dosage', 'search',
            [('abbreviation', '=', 'tds')], 0, 1, None)

    def heartbeat(self):
        "What the open console sends every 20 s."
        while not self.day.ended.wait(20):
            try:
                self.http.post('/doctor/heartbeat')
            except FlowError:
                self.day.recorder.event('heartbeat_failed')

    def consult(self, token_id):
        """The consultation page, then the back office: the record, the
        e-prescription, Sign and Issue (which completes the token)."""
        http, path = self.http, '/doctor/tokens/%s' % token_id
        http.get(path, endpoint='GET /doctor/tokens/{id}')
        http.get('/doctor/consult/%s' % token_id, page=True,
            endpoint='GET /opd/doctor/consult/{id} (page)')
        # 409: the patient cancelled meanwhile
        r = http.post(path + '/join', expect=(200, 409),
            endpoint='POST /doctor/tokens/{id}/join')
        if r.status_code == 409:
            self.day.recorder.event('patient_left')
            return
        http.post(path + '/video', json={'event': 'joined'},
            expect=(200, 409), endpoint='POST /doctor/tokens/{id}/video')
        version, cursor, after = '', '', 0
        deadline = time.monotonic() + self.day.options.consult_timeout
        while True:
            # until the patient is in the room too
            if time.monotonic() > deadline:
                raise FlowError('consultation %s did not start' % token_id)
            r = http.get(path + '/consultation', params={
                    'after': after, 'version': version, 'cursor': cursor},
                endpoint='GET /doctor/tokens/{id}/consultation')
            state = r.json()
            version, cursor = state['version'], state['cursor'] or ''
            after = max([after] + [m['id'] for m in state['messages']])
            if state['token']['over']:
                self.day.recorder.event('patient_left')
                return
            if state['token']['state'] == 'in_consultation':
                break
        http.post(path + '/messages', json={
                'text': 'Hello, how can I help you?'}, expect=(201,),
            endpoint='POST /doctor/tokens/{id}/messages')
        # the consultation itself (video and chat), compressed
        time.sleep(self.rng.uniform(*self.day.options.consult_seconds))
        self.prescribe(token_id)
        self.day.recorder.event('prescribed')

    def prescribe(self, token_id):
        rpc = self.rpc
        action = rpc('sehat.opd.token', 'consultation', [token_id])
        evaluation, = action['res_id']
        rpc('gnuhealth.patient.evaluation', 'write', [evaluation], {
                'sehat_mode': 'video', 'visit_type': 'new',
                'present_illness': 'Fever since yesterday, no cough.',
                'info_diagnosis': 'Acute pharyngitis',
                'directions': 'Warm saline gargles, fluids, rest.',
                'temperature': 38.2})
        action = rpc('sehat.opd.token', 'prescribe', [token_id])
        order, = action['res_id']
        rpc('gnuhealth.prescription.line', 'create', [{
                    'presc_order': order, 'medicament': self.medicament,
                    'qty': 1, 'common_dosage': self.dosage, 'duration': 5,
                    'duration_period': 'days',
                    'short_comment': 'After food, if fever'}])
        rpc('gnuhealth.prescription.order', 'write', [order],
            {'prescription_warning_ack': True})
        rpc('gnuhealth.prescription.order', 'sehat_sign', [order])


def doctor_day(day, doctor):
    """Online for the day: follow the console's long poll; take each
    patient the queue gives (or press Call next when free and someone
    waits); offline when the day ends."""
    http = doctor.http
    beat = threading.Thread(target=doctor.heartbeat, daemon=True)
    beat.start()
    try:
        state = http.post('/doctor/online', json={
                'opd': doctor.person['opd']}).json()
        version, cursor, seen, offline = '', '', set(), False
        while True:
            if day.closing.is_set() and not offline:
                # no new patients; the one called already is still seen
                state = http.post('/doctor/offline').json()
                offline = True
            current = state.get('current')
            if current and current['id'] not in seen and (
                    current['state'] in {'called', 'in_consultation'}):
                seen.add(current['id'])
                doctor.consult(current['id'])
                version = ''
            elif offline:
                break
            elif not current and state.get('queue'):
                r = http.post('/doctor/call-next', expect=(200, 409))
                if r.status_code == 200:
                    version = ''
            r = http.get('/doctor/wait', params={
                    'version': version, 'cursor': cursor})
            state = r.json()
            version, cursor = state['version'], state['cursor'] or ''
    except FlowError as error:
        day.recorder.event('doctor_failed')
        day.recorder.event('failure: ' + str(error)[:120])


# Capacity ---------------------------------------------------------------

class Probe(threading.Thread):
    """GET /health and GET /tokens/current (patients of a quiet OPD) in
    turn, `rate` times a second each, from a few threads so that one slow
    answer does not hold the others back."""

    def __init__(self, recorder, server, database, keys, rate, label=''):
        super().__init__(daemon=True)
        self.recorder = recorder
        self.server = server
        self.database = database
        self.keys = keys
        self.rate = rate
        self.label = label
        self.stop = threading.Event()
        self.local = threading.local()

    def one(self, target, key):
        http = getattr(self.local, 'http', None)
        if http is None:
            http = self.local.http = Http(self.recorder, self.server.root,
                self.database)
        try:
            if target == 'health':
                http.get('/health', endpoint='GET /health' + self.label)
            else:
                http.bearer = key
                http.get('/tokens/current',
                    endpoint='GET /tokens/current' + self.label)
                http.bearer = None
        except FlowError:
            http.bearer = None

    def run(self):
        from concurrent.futures import ThreadPoolExecutor
        interval = 1 / (2 * self.rate)
        with ThreadPoolExecutor(16) as pool:
            i, next_at = 0, time.monotonic()
            while not self.stop.is_set():
                pool.submit(self.one, 'health' if i % 2 else 'current',
                    self.keys[i % len(self.keys)])
                i += 1
                next_at += interval
                self.stop.wait(max(0, next_at - time.monotonic()))


class Waiter(threading.Thread):
    "A waiting room left open: long-polls as waiting.js does, for ever."

    def __init__(self, recorder, server, database, key, stop, wakes):
        super().__init__(daemon=True)
        self.http = Http(recorder, server.root, database)
        self.http.bearer = key
        self.stop = stop
        self.wakes = wakes
        self.polling = threading.Event()

    def run(self):
        version, cursor = None, ''
        while not self.stop.is_set():
            try:
                if version is None:
                    version = self.http.get('/tokens/current').json()[
                        'version']
                self.polling.set()
                r = self.http.get('/tokens/current/wait', params={
                        'version': version, 'cursor': cursor})
                status = r.json()
                if status['version'] != version:
                    self.wakes.append(time.monotonic())
                else:
                    self.http.recorder.event('wait answered, no change')
                version, cursor = status['version'], status['cursor'] or ''
            except FlowError:
                if not self.stop.is_set():
                    time.sleep(1)


def churn_queue(recorder, server, database, opd, keys, interval, until,
        events):
    """The queue changes every `interval` s: a patient takes a token, or
    cancels it (every waiting room of the OPD sees the line move)."""
    clients = []
    for key in keys:
        http = Http(recorder, server.root, database)
        http.bearer = key
        clients.append(http)
    i = 0
    while time.monotonic() < until:
        http = clients[(i // 2) % len(clients)]
        started = time.monotonic()
        # [sent, answered]: a waiting room may be told before the answer
        event = [started, None]
        events.append(event)
        try:
            if i % 2 == 0:
                http.post('/tokens', json={'opd': opd}, expect=(201,))
            else:
                http.post('/tokens/current/cancel')
            event[1] = time.monotonic()
        except FlowError:
            events.remove(event)
        i += 1
        time.sleep(max(0, started + interval - time.monotonic()))
    if i % 2:
        try:
            clients[(i // 2) % len(clients)].post('/tokens/current/cancel')
        except FlowError:
            pass
