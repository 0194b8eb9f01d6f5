"""Issue 9, bad input: property-based fuzzing of every operation of the
OpenAPI document the server serves, with schemathesis (all but the
document itself, which schemathesis leaves out).

Each operation gets SEHAT_FUZZ_EXAMPLES generated requests (20 here, the
same ones at every run; bench/fuzz.py runs many more) plus schemathesis'
boundary cases, valid and invalid by the document, with the sessions it
needs: a patient whose token is in consultation with a doctor of the fuzz's
own OPD, that doctor, and the SMS webhook's secret. Every answer must be
documented (status and content type), 4xx answers must be the API's error
JSON, invalid input must be refused, nothing may be a 5xx, and no answer
(nor the server's log) may show a Python traceback or SQL.
"""
import collections
import io
import itertools
import json
import os
import re
import time

import psycopg2
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, negative_data_rejection,
    response_schema_conformance, status_code_conformance)

import queue_data
from conftest import SMS_WEBHOOK_SECRET, VAR

# Hypothesis' caches (no example database: the examples are fixed) go to
# var/, not into the checkout
set_hypothesis_home_dir(str(VAR / 'hypothesis'))

EXAMPLES = int(os.environ.get('SEHAT_FUZZ_EXAMPLES', '20'))
# What an answer must never show: Python's traceback or the database's
# words. A marker the request itself carried (a chat text echoed back) does
# not count.
LEAKS = re.compile(r'Traceback \(most recent call last\)|File "[^"]*", line'
    r'|psycopg2|SELECT |INSERT INTO|UPDATE "|DELETE FROM|ProgrammingError'
    r'|IntegrityError|DataError|syntax error at|trytond\.')
ACTIVE = ('waiting', 'called', 'in_consultation')


def png():
    data = io.BytesIO()
    Image.new('RGB', (4, 4), 'white').save(data, 'PNG')
    return data.getvalue()


class World:
    """What the fuzzed requests act on: an OPD of the fuzz, its doctor
    online, a patient with a token in consultation with that doctor, an
    uploaded file; spare sessions for the logout operations."""

    def __init__(self, server):
        self.server = server
        db = server.database
        queue_data.configure(server.env)
        self.opd = queue_data.make_opd(db, 'FZ%s' % (os.getpid() % 10 ** 6))
        self.doctor, self.spare_doctor = queue_data.make_doctors(
            db, 2, self.opd, 'fz')
        self.patient, self.spare_patient = queue_data.make_patients(
            db, 2, '97')
        self.connection = None
        self.token_id = self.file_id = None
        self.tokens = 0
        # operation -> status -> how many answers (bench/fuzz.py prints it)
        self.seen = collections.defaultdict(collections.Counter)
        self.log_start = len(server.log())

    def sql(self, query, *args):
        "Run SQL on the server's database (reconnecting after a restart)."
        for attempt in range(20):
            try:
                if self.connection is None or self.connection.closed:
                    self.connection = psycopg2.connect(
                        dbname=self.server.database)
                    self.connection.autocommit = True
                with self.connection.cursor() as cursor:
                    cursor.execute(query, args)
                    return cursor.fetchall() if cursor.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if attempt == 19:
                    raise
                self.connection = None
                time.sleep(0.5)

    def close(self):
        if self.connection is not None:
            self.connection.close()

    def forget_limits(self):
        """The fuzz sends hundreds of OTP, login and contact requests from
        one address: forget the counts, or every answer would be 429."""
        self.sql('DELETE FROM sehat_opd_rate_event; '
            'DELETE FROM res_user_login_attempt')

    def http(self, who, method, path, **kwargs):
        session = (self.patient if who == 'patient' else self.doctor)[
            'session']
        r = requests.request(method, self.server.api + path, timeout=30,
            headers={'Authorization': 'Bearer ' + session}, **kwargs)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        return r

    def token(self):
        rows = self.sql('SELECT id, state FROM sehat_opd_token WHERE '
            'patient = %s AND state IN %s ORDER BY id DESC LIMIT 1',
            self.patient['id'], ACTIVE)
        return rows[0] if rows else (None, None)

    def ensure(self):
        """Put the patient back in consultation with the doctor when a
        fuzzed request ended it (complete, cancel, offline...)."""
        token_id, state = self.token()
        if state == 'in_consultation' and token_id == self.token_id:
            return
        for _ in range(8):
            if state is None:
                self.http('patient', 'POST', '/tokens',
                    json={'opd': self.opd, 'complaint': 'Fever'})
            elif state == 'waiting':
                self.http('doctor', 'POST', '/doctor/online',
                    json={'opd': self.opd})
                if self.token()[1] == 'waiting':
                    self.http('doctor', 'POST', '/doctor/call-next')
            elif state == 'called':
                self.http('patient', 'POST', '/tokens/current/call')
                self.http('doctor', 'POST',
                    '/doctor/tokens/%s/start' % token_id)
            else:
                break
            token_id, state = self.token()
        assert state == 'in_consultation', state
        self.token_id = token_id
        self.tokens += 1
        r = self.http('patient', 'POST', '/tokens/current/files',
            files=[('file', ('scan.png', png(), 'image/png'))])
        self.file_id = r.json()['files'][0]['id']
        self.http('doctor', 'POST', '/doctor/tokens/%s/messages' % token_id,
            data={'text': 'Please see the report'},
            files=[('file', ('advice.png', png(), 'image/png'))])

    def headers(self, case):
        "The credentials of the operation (spare ones for the logouts)."
        security = str(case.operation.definition.raw.get('security'))
        path, method = case.operation.path, case.operation.method.upper()
        if 'webhookSecret' in security:
            return {'X-Sehat-Secret': SMS_WEBHOOK_SECRET}
        if 'staffCookie' in security:
            who = self.spare_doctor if (
                path, method) == ('/doctor/session', 'DELETE') else self.doctor
        elif 'patientCookie' in security:
            who = self.spare_patient if (
                path, method) == ('/session', 'DELETE') else self.patient
        else:
            return {}
        return {'Authorization': 'Bearer ' + who['session']}

    def real_ids(self, case, turn):
        """Every other valid example names the world's own token, file and
        OPD, so that the fuzz reaches past 'not found'."""
        parameters = case.path_parameters or {}
        if turn % 2 or negated(case):
            return
        if 'token_id' in parameters:
            parameters['token_id'] = self.token_id
        if 'file_id' in parameters:
            parameters['file_id'] = self.file_id
        if isinstance(case.body, dict) and 'opd' in case.body:
            case.body['opd'] = self.opd


def negated(case):
    "The parts of the request generated invalid on purpose."
    if case.meta is None or case.meta.generation.mode.is_positive:
        return set()
    return {location.value for location, component in
        case.meta.components.items() if not component.mode.is_positive}


@schemathesis.check
def refuses_invalid(ctx, response, case):
    """Invalid input by the document is refused (schemathesis'
    negative_data_rejection), except where the request that left is not
    the invalid one: credentials are replaced by the world's, and in a
    multipart form every value is text (null goes as "null")."""
    parts = negated(case)
    if not parts or parts & {'header', 'cookie'} or (
            case.media_type == 'multipart/form-data'):
        return None
    return negative_data_rejection(ctx, response, case)


@schemathesis.check
def no_leak(ctx, response, case):
    "No traceback or SQL in an answer (unless the request carried it)."
    kind = response.headers.get('content-type', [''])[0]
    if not kind.startswith(('application/json', 'text/')):
        return None
    sent = ' '.join(str(part) for part in (
            case.body, case.query, case.path_parameters) if part)
    for match in LEAKS.finditer(response.text):
        if match.group(0) not in sent:
            raise AssertionError('The answer shows %r: %s' % (
                    match.group(0), response.text[:300]))
    return None


@schemathesis.check
def error_shape(ctx, response, case):
    "Every refusal is the API's error JSON, naming the problem."
    if response.status_code < 400:
        return None
    body = response.json()
    error = body.get('error') if isinstance(body, dict) else None
    assert isinstance(error, dict) and error.get('code') and error.get(
        'message'), 'not the error JSON: %s' % response.text[:300]
    return None


CHECKS = [not_a_server_error, status_code_conformance,
    content_type_conformance, response_schema_conformance,
    refuses_invalid, no_leak, error_shape]


@pytest.fixture(scope='module')
def world(server):
    world = World(server)
    world.forget_limits()
    yield world
    # the next modules meet the limits fresh
    world.forget_limits()
    world.close()
    if os.environ.get('SEHAT_FUZZ_REPORT'):
        with open(os.environ['SEHAT_FUZZ_REPORT'], 'w') as report:
            json.dump({'examples': EXAMPLES, 'tokens': world.tokens,
                    'answers': world.seen}, report, indent=1)


@pytest.fixture(scope='module')
def fuzz_schema(server, world):
    return schemathesis.openapi.from_url(server.api + '/openapi.json')


schema = schemathesis.pytest.from_fixture('fuzz_schema')
if os.environ.get('SEHAT_FUZZ_ONLY'):
    # bench/fuzz.py --only: the operations whose path matches
    schema = schema.include(path_regex=os.environ['SEHAT_FUZZ_ONLY'])
_turns = itertools.count()


@pytest.fixture(autouse=True)
def node_id(request):
    """schemathesis 4.32 names each operation's subtest through the
    `_nodeid` attribute pytest 9 no longer has."""
    if not hasattr(request.node, '_nodeid'):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None,
    derandomize=not os.environ.get('SEHAT_FUZZ_RANDOM'),
    suppress_health_check=list(HealthCheck), print_blob=True)
def test_fuzz(case, world):
    "Generated requests to every operation: documented, clean answers"
    world.forget_limits()
    world.ensure()
    world.real_ids(case, next(_turns))
    response = case.call(headers=world.headers(case), timeout=60)
    world.seen[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


def test_no_traceback_in_server_log(server, world):
    "Nothing the fuzz sent made the server log a traceback"
    log = server.log()[world.log_start:]
    assert 'Traceback' not in log, log[
        max(0, log.index('Traceback') - 500):][:3000]


def test_document_lists_every_route(server, world):
    "Every route under the API prefix is in the OpenAPI document (the "
    "routes of the three modules, as the server's process has them), each "
    "operation with its own id"
    from trytond.wsgi import app
    document = requests.get(server.api + '/openapi.json', timeout=30).json()
    documented = {(path, method.upper())
        for path, operations in document['paths'].items()
        for method in operations}
    prefix = '/<database_name>/opd/api/v1'
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix + '/'):
            path = re.sub(r'<(?:\w+:)?(\w+)>', r'{\1}',
                rule.rule[len(prefix):])
            served |= {(path, m) for m in rule.methods
                if m not in {'HEAD', 'OPTIONS'}}
    assert served and served == documented, (
        served - documented, documented - served)
    ids = [operation['operationId'] for operations in (
            document['paths'].values()) for operation in operations.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
