"""Helpers of the tests that talk to the server as the back office does
(trytond's JSON-RPC) or look into its database."""
import base64
import io
import threading
from contextlib import contextmanager

import requests
from PIL import Image

from conftest import _psql


class RpcError(Exception):
    "An error answered by trytond's JSON-RPC (access, validation...)."


class Rpc:
    """A back-office user of the server, through trytond's JSON-RPC as the
    web client: rpc('sehat.opd', 'write', ids, values) calls a model's
    method with the user's context; rpc.call(method, *params) sends any
    method as it is."""

    def __init__(self, server, login, password='sehat-demo'):
        self.url = '%s/%s/' % (server.base, server.database)
        self.http = requests.Session()
        self.user_id, session = self.call('common.db.login', login,
            {'password': password}, 'en')[:2]
        key = base64.b64encode(
            ('%s:%s:%s' % (login, self.user_id, session)).encode()).decode()
        self.http.headers['Authorization'] = 'Session ' + key
        self.context = self.call('model.res.user.get_preferences', True, {})

    def call(self, method, *params):
        r = self.http.post(self.url, json={
                'id': 1, 'method': method, 'params': list(params)},
            timeout=60)
        assert r.status_code == 200, r.text
        data = r.json()
        if data.get('error'):
            raise RpcError(str(data['error']))
        return data['result']

    def __call__(self, model, method, *args):
        return self.call('model.%s.%s' % (model, method), *args,
            self.context)

    def search(self, model, domain, limit=None):
        return self(model, 'search', domain, 0, limit, None)


@contextmanager
def settings(rpc, **values):
    "Change SeHAT OPD settings for the block, then put them back."
    old, = rpc('sehat.opd.configuration', 'read', [1], list(values))
    rpc('sehat.opd.configuration', 'write', [1], values)
    try:
        yield
    finally:
        rpc('sehat.opd.configuration', 'write', [1],
            {k: old[k] for k in values})


def request_otp(api, mobile, purpose='register', **kwargs):
    return api.post('/otp', json={'mobile': mobile, 'purpose': purpose},
        **kwargs)


def png_bytes(size=(8, 8)):
    data = io.BytesIO()
    Image.new('RGB', size, 'white').save(data, 'PNG')
    return data.getvalue()


PDF = (b'%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n'
    b'%%EOF\n')


def sql(server, statement):
    "Run SQL on the server's database (to age rows, count records)."
    return _psql(statement, server.database)


def count(server, table, where='true'):
    return int(sql(server, 'SELECT count(*) FROM %s WHERE %s' % (
                table, where)))


def e164(mobile):
    return '+91' + mobile[-10:]


def age_otps(server, mobile, seconds=31):
    "Move the OTPs of `mobile` into the past: the resend delay is over."
    sql(server, "UPDATE sehat_opd_otp SET create_date = create_date "
        "- interval '%d seconds' WHERE mobile = '%s'" % (
            seconds, e164(mobile)))


def race(count, call):
    """Run call(i) in `count` threads released at the same moment; return
    the results in order of i."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exception:  # noqa: BLE001 - reported below
            results[i] = exception
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results
