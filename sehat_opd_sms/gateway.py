"""SMS gateways as pure functions: settings and one message in, the HTTP
request out; the gateway's answer in, the outcome out.

Nothing here touches the network or the database, so every provider is
tested without either (tests/test_module.py) and reused by the outbox, the
webhook and the tests' fake gateway.

Providers:

- ``log``: development; the outbox writes "SMS to <mobile> [<event>]: <text>"
  to the server log (the demo reads OTPs there).
- ``generic``: any HTTP gateway; method, URL, body kind (json, form or
  query), parameter names and headers come from the settings.
- ``gupshup``, ``exotel``, ``msg91``: presets of the documented HTTP APIs of
  three Indian gateways (sources cited on each builder).
"""
import base64
import json
import string
import urllib.parse
from collections import namedtuple

Request = namedtuple('Request', 'method url headers body')
# status: 'sent' (accepted by the gateway), 'retry' (may succeed later:
# timeout, refused connection, 5xx, 429) or 'fatal' (cannot succeed: other
# 4xx, refusal in the answer, incomplete settings).
Outcome = namedtuple('Outcome', 'status gateway_id reason')
# state: 'delivered', 'failed' or None (an intermediate report).
Receipt = namedtuple('Receipt', 'gateway_id reference state reason')

PROVIDERS = ['log', 'generic', 'gupshup', 'exotel', 'msg91']

# (option of [sehat_opd_sms], default, secret)
OPTIONS = [
    ('provider', 'log', False),
    ('url', '', False),
    ('method', 'POST', False),
    ('body', 'json', False),
    ('params', '', False),
    ('headers', '', False),
    ('response_id', '', False),
    ('idempotency_header', '', False),
    ('api_key', '', True),
    ('api_token', '', True),
    ('account_sid', '', False),
    ('user', '', False),
    ('password', '', True),
    ('sender', '', False),
    ('dlt_entity_id', '', False),
    ('timeout', '5', False),
    ('webhook_secret', '', True),
    ('receipt_id', 'id', False),
    ('receipt_reference', 'reference', False),
    ('receipt_status', 'status', False),
    ('receipt_delivered', 'delivered,success', False),
    ('receipt_failed', 'failed,undelivered,rejected,expired,failure', False),
    ('dispatch', 'thread', False),
    ('email', '', False),
    ]
SECRETS = {o for o, _, s in OPTIONS if s}

GENERIC_PARAMS = {
    'to': '{mobile}',
    'text': '{text}',
    'sender': '{sender}',
    'dlt_template_id': '{dlt_template_id}',
    'dlt_entity_id': '{dlt_entity_id}',
    'reference': '{reference}',
    }
GUPSHUP_URL = 'https://enterprise.smsgupshup.com/GatewayAPI/rest'
EXOTEL_URL = 'https://api.exotel.com/v1/Accounts/{account_sid}/Sms/send.json'
MSG91_URL = 'https://control.msg91.com/api/v5/flow/'

RETRY_STATUSES = {408, 425, 429}


class GatewayConfigError(ValueError):
    "The settings or the message lack what the provider needs."


def load_settings(get):
    """The gateway settings, typed, from `get(option, default)` (in the
    module: tools.get_setting on section sehat_opd_sms, environment first).
    """
    settings = {o: (get(o, d) or d or '') for o, d, _ in OPTIONS}
    settings['provider'] = settings['provider'].strip().lower() or 'log'
    settings['method'] = settings['method'].strip().upper() or 'POST'
    settings['body'] = settings['body'].strip().lower() or 'json'
    try:
        settings['timeout'] = max(0.1, float(settings['timeout']))
    except ValueError:
        settings['timeout'] = 5.0
    for name in ['params', 'headers']:
        settings[name] = _json_object(settings[name], name)
    return settings


def _json_object(text, name):
    if not text:
        return None
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        raise GatewayConfigError('%s must be a JSON object' % name)
    if not isinstance(value, dict):
        raise GatewayConfigError('%s must be a JSON object' % name)
    return value


def check_settings(settings):
    "Raise GatewayConfigError when the provider cannot work as configured."
    provider = settings['provider']
    if provider not in PROVIDERS:
        raise GatewayConfigError('unknown provider %r (one of %s)'
            % (provider, ', '.join(PROVIDERS)))
    needs = {
        'generic': ['url'],
        'gupshup': ['user', 'password', 'dlt_entity_id'],
        'exotel': ['account_sid', 'api_key', 'api_token', 'sender',
            'dlt_entity_id'],
        'msg91': ['api_key'],
        }.get(provider, [])
    missing = [n for n in needs if not settings.get(n)]
    if missing:
        raise GatewayConfigError('%s needs [sehat_opd_sms] %s'
            % (provider, ', '.join(missing)))
    if settings['body'] not in {'json', 'form', 'query'}:
        raise GatewayConfigError('body must be json, form or query')


def values_of(settings, sms):
    "The {placeholders} a generic request may use, for one message."
    digits = sms['mobile'].lstrip('+')
    return {
        'mobile': sms['mobile'],
        'mobile_digits': digits,
        'mobile_national': digits[-10:],
        'text': sms['text'],
        'unicode': '1' if sms.get('unicode') else '0',
        'encoding': 'unicode' if sms.get('unicode') else 'text',
        'event': sms.get('event') or '',
        'category': sms.get('category') or '',
        'reference': sms.get('reference') or '',
        'dlt_template_id': sms.get('dlt_template_id') or '',
        'template_id': sms.get('template_id') or '',
        'callback_url': sms.get('callback_url') or '',
        'dlt_entity_id': settings['dlt_entity_id'],
        'sender': settings['sender'],
        'api_key': settings['api_key'],
        'api_token': settings['api_token'],
        'account_sid': settings['account_sid'],
        'user': settings['user'],
        'password': settings['password'],
        }


def _fill(template, values):
    "Format `template` (str, dict or list) with `values`; unknown names fail."
    if isinstance(template, str):
        try:
            return string.Formatter().vformat(template, (), values)
        except (KeyError, IndexError, ValueError) as exception:
            raise GatewayConfigError(
                'bad placeholder in %r: %s' % (template, exception))
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def _drop_empty(params):
    "Gateways refuse empty optional parameters; leave them out."
    return {k: v for k, v in params.items() if v not in ('', None)}


def _encode(method, url, headers, params, body):
    headers = dict(headers)
    if body == 'query':
        query = urllib.parse.urlencode(params)
        separator = '&' if '?' in url else '?'
        return Request(method, url + separator + query if query else url,
            headers, None)
    if body == 'form':
        headers.setdefault(
            'Content-Type', 'application/x-www-form-urlencoded; charset=utf-8')
        return Request(method, url, headers,
            urllib.parse.urlencode(params).encode('utf-8'))
    headers.setdefault('Content-Type', 'application/json; charset=utf-8')
    return Request(method, url, headers,
        json.dumps(params, ensure_ascii=False).encode('utf-8'))


def build_request(settings, sms):
    """The HTTP request that sends `sms` through the configured provider.

    `sms` holds: mobile (E.164), text, unicode, event, category, reference
    (our idempotency key), dlt_template_id, template_id (the gateway's own
    template id when it has one), fills (the {#var#} values in order),
    callback_url (delivery receipts) and priority (0 = OTP).
    """
    check_settings(settings)
    builder = {
        'generic': _generic,
        'gupshup': _gupshup,
        'exotel': _exotel,
        'msg91': _msg91,
        }.get(settings['provider'])
    if builder is None:
        raise GatewayConfigError(
            '%s sends no HTTP request' % settings['provider'])
    request = builder(settings, sms)
    if settings['idempotency_header'] and sms.get('reference'):
        request.headers[settings['idempotency_header']] = sms['reference']
    return request


def _generic(settings, sms):
    values = values_of(settings, sms)
    params = _drop_empty(_fill(settings['params'] or GENERIC_PARAMS, values))
    headers = settings['headers']
    if headers is None:
        headers = ({'Authorization': 'Bearer {api_key}'}
            if settings['api_key'] else {})
    headers = _drop_empty(_fill(headers, values))
    url = _fill(settings['url'], values)
    return _encode(settings['method'], url, headers, params, settings['body'])


def _require(sms, name, provider):
    if not sms.get(name):
        raise GatewayConfigError('%s needs the template\'s %s'
            % (provider, name.replace('_', ' ')))


def _gupshup(settings, sms):
    # Gupshup Enterprise SMS API, "Send Messages to Single Number":
    # https://docs.gupshup.io/docs/send-message-to-single-number
    # DLT terms (principalEntityId, dltTemplateId):
    # https://docs.gupshup.io/docs/sms-api-doc-overview
    # POST form to /GatewayAPI/rest keeps the password out of proxy logs.
    _require(sms, 'dlt_template_id', 'gupshup')
    params = _drop_empty({
            'method': 'SendMessage',
            'userid': settings['user'],
            'password': settings['password'],
            'auth_scheme': 'plain',
            'v': '1.1',
            'format': 'text',
            'send_to': sms['mobile'].lstrip('+'),
            'msg': sms['text'],
            'msg_type': 'Unicode_text' if sms.get('unicode') else 'TEXT',
            'mask': settings['sender'],
            'principalEntityId': settings['dlt_entity_id'],
            'dltTemplateId': sms['dlt_template_id'],
            })
    return _encode('POST', settings['url'] or GUPSHUP_URL, {}, params, 'form')


def _exotel(settings, sms):
    # Exotel SMS API, "Send SMS":
    # https://developer.exotel.com/docs/sms-api/api-reference/send-sms
    # (From, To, Body, EncodingType, DltEntityId, DltTemplateId, SmsType,
    # CustomField, StatusCallback, Priority; HTTP basic auth with the API
    # key and token; ".json" for a JSON answer:
    # https://developer.exotel.com/api/sms)
    _require(sms, 'dlt_template_id', 'exotel')
    credentials = base64.b64encode(('%s:%s' % (
                settings['api_key'], settings['api_token'])).encode()).decode()
    url = _fill(settings['url'] or EXOTEL_URL, values_of(settings, sms))
    params = _drop_empty({
            'From': settings['sender'],
            'To': sms['mobile'],
            'Body': sms['text'],
            'EncodingType': 'unicode' if sms.get('unicode') else 'plain',
            'DltEntityId': settings['dlt_entity_id'],
            'DltTemplateId': sms['dlt_template_id'],
            'SmsType': 'transactional',
            'CustomField': sms.get('reference'),
            'StatusCallback': sms.get('callback_url'),
            'Priority': 'high' if sms.get('priority') == 0 else 'normal',
            })
    return _encode('POST', url, {'Authorization': 'Basic ' + credentials},
        params, 'form')


def _msg91(settings, sms):
    # MSG91 "Send SMS via Flow" (OneAPI):
    # https://control.msg91.com/apidoc/textsms/send-sms-flow.php
    # The DLT template id and entity id are mapped to the MSG91 template in
    # its panel, so the request names the MSG91 template and gives the
    # {#var#} values as VAR1, VAR2, ... in the order of the DLT template:
    # https://msg91.com/help/dlt-registration-in-india/map-sms-content-template-on-msg91-api-panel  # noqa: E501
    _require(sms, 'template_id', 'msg91')
    recipient = {'mobiles': sms['mobile'].lstrip('+')}
    for index, fill in enumerate(sms.get('fills') or [], 1):
        recipient['VAR%d' % index] = fill
    params = _drop_empty({
            'template_id': sms['template_id'],
            'sender': settings['sender'],
            'short_url': '0',
            'unicode': 1 if sms.get('unicode') else 0,
            })
    params['recipients'] = [recipient]
    return _encode('POST', settings['url'] or MSG91_URL, {
            'authkey': settings['api_key'],
            'accept': 'application/json',
            }, params, 'json')


# Answers -------------------------------------------------------------------

def snippet(body, size=300):
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    return ' '.join((body or '').split())[:size]


def _json(body):
    try:
        return json.loads(body)
    except (TypeError, ValueError):
        return None


def _path(value, path):
    "Follow a dotted path ('data.0.id') into a JSON value."
    for key in path.split('.'):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return None
    return None if value is None else str(value)


def classify(settings, status, body):
    """The outcome of an HTTP answer (`status` None: no answer at all)."""
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    if status is None:
        return Outcome('retry', None, body or 'no answer')
    reason = 'HTTP %s: %s' % (status, snippet(body))
    if 200 <= status < 300:
        parser = {
            'gupshup': _gupshup_answer,
            'exotel': _exotel_answer,
            'msg91': _msg91_answer,
            }.get(settings['provider'], _generic_answer)
        return parser(settings, body)
    if status in RETRY_STATUSES or status >= 500:
        return Outcome('retry', None, reason)
    return Outcome('fatal', None, reason)


def _generic_answer(settings, body):
    gateway_id = None
    if settings.get('response_id'):
        gateway_id = _path(_json(body), settings['response_id'])
    return Outcome('sent', gateway_id, snippet(body))


def _gupshup_answer(settings, body):
    # "success | 919xxxxxxxxx | 3562707498794989059-328736121207676738" or
    # "error | 105 | <description>", with HTTP 200 in both cases.
    parts = [p.strip() for p in (body or '').split('|')]
    if parts and parts[0].lower() == 'success':
        return Outcome('sent', parts[2] if len(parts) > 2 else None,
            snippet(body))
    return Outcome('fatal', None, 'gupshup: ' + snippet(body))


def _exotel_answer(settings, body):
    data = _json(body) or {}
    sid = _path(data, 'SMSMessage.Sid')
    if sid:
        return Outcome('sent', sid, snippet(body))
    return Outcome('fatal', None, 'exotel: ' + snippet(body))


def _msg91_answer(settings, body):
    # {"type": "success", "message": "<request id>"}; errors may come with
    # HTTP 200 as {"type": "error", "message": "..."}.
    data = _json(body) or {}
    if isinstance(data, dict) and data.get('type') == 'success':
        return Outcome('sent', _path(data, 'message'), snippet(body))
    return Outcome('fatal', None, 'msg91: ' + snippet(body))


# Delivery receipts ---------------------------------------------------------

def _items(data, *keys):
    "The report objects of a receipt: a JSON list, a JSON object or a form."
    value = data.get('json')
    if value is None:
        for key in keys:
            raw = (data.get('form') or {}).get(key)
            if raw:
                value = _json(raw)
                if value is not None:
                    break
    if value is None:
        value = dict(data.get('args') or {})
        value.update(data.get('form') or {})
    if isinstance(value, dict):
        value = [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(
        value, list) else []


def _text(value):
    return '' if value is None else str(value).strip()


def parse_receipts(settings, provider, data):
    """The delivery reports in a webhook call.

    `data` holds the request's 'args' (query), 'form' and 'json' (parsed
    body or None). Unknown providers give no receipt.
    """
    parser = {
        'generic': _generic_receipts,
        'gupshup': _gupshup_receipts,
        'exotel': _exotel_receipts,
        'msg91': _msg91_receipts,
        }.get(provider)
    return parser(settings, data) if parser else []


def _generic_receipts(settings, data):
    delivered = {s.strip().lower()
        for s in settings['receipt_delivered'].split(',') if s.strip()}
    failed = {s.strip().lower()
        for s in settings['receipt_failed'].split(',') if s.strip()}
    receipts = []
    for item in _items(data):
        status = _text(_path(item, settings['receipt_status'])).lower()
        state = ('delivered' if status in delivered
            else 'failed' if status in failed else None)
        receipts.append(Receipt(
                _text(_path(item, settings['receipt_id'])) or None,
                _text(_path(item, settings['receipt_reference'])) or None,
                state, status))
    return receipts


def _gupshup_receipts(settings, data):
    # https://docs.gupshup.io/docs/real-time-delivery-reports: GET with
    # externalId, status (SUCCESS, FAILURE, UNKNOWN), cause; or POST of a
    # JSON array of events with externalId, eventType (DELIVERED, FAILED).
    receipts = []
    for item in _items(data, 'response'):
        status = _text(item.get('status') or item.get('eventType')).upper()
        state = {'SUCCESS': 'delivered', 'DELIVERED': 'delivered',
            'FAILURE': 'failed', 'FAILED': 'failed'}.get(status)
        receipts.append(Receipt(_text(item.get('externalId')) or None, None,
                state, _text(item.get('cause')) or status))
    return receipts


def _exotel_receipts(settings, data):
    # https://developer.exotel.com/api-console/send-sms-api-console: a form
    # POST with SmsSid, To, Status, DetailedStatus, CustomField. Older
    # accounts call back only at the terminal states "sent", "failed" and
    # "failed_dnd", where "sent" is their delivery confirmation.
    receipts = []
    for item in _items(data):
        status = _text(item.get('Status')).lower()
        state = ('delivered' if status in {'delivered', 'sent'}
            else 'failed' if status in {
                'failed', 'failed_dnd', 'failed-dnd', 'undelivered',
                'expired'}
            else None)
        receipts.append(Receipt(_text(item.get('SmsSid')) or None,
                _text(item.get('CustomField')) or None, state,
                _text(item.get('DetailedStatus')) or status))
    return receipts


def _msg91_receipts(settings, data):
    # https://msg91.com/help/how-can-i-get-the-delivery-reports-on-my-webhook-url  # noqa: E501
    # v2: form field "data", a JSON string of [{requestId, report: [{number,
    # status, desc}]}]; v3: one JSON object {requestId, number, status, desc}.
    # Status 1 is delivered; 2, 9, 16, 17, 25 are failures.
    receipts = []
    for item in _items(data, 'data'):
        reports = item.get('report') if isinstance(
            item.get('report'), list) else [item]
        for report in reports:
            status = _text(report.get('status'))
            state = ('delivered' if status == '1'
                else 'failed' if status in {'2', '9', '16', '17', '25'}
                else None)
            receipts.append(Receipt(_text(item.get('requestId')) or None,
                    None, state, _text(report.get('desc')) or status))
    return receipts
