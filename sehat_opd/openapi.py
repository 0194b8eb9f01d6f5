"""The OpenAPI 3.1 document of the patient API v1, built from the routes.

Every @api route registers itself (web.ROUTES) with its body schema and
success status; this turns the registry into the document served at
/<database>/opd/api/v1/openapi.json, so the document cannot forget a route.
"""
import collections
import re

ERROR = {
    'type': 'object',
    'required': ['error'],
    'properties': {
        'error': {
            'type': 'object',
            'required': ['code', 'message'],
            'properties': {
                'code': {'type': 'string'},
                'message': {'type': 'string'},
                'field': {'type': 'string'},
                },
            },
        },
    }
_MOBILE = {'type': 'string', 'maxLength': 20,
    'description': 'Indian mobile: 10 digits starting 6-9, +91 allowed',
    'examples': ['9876543210', '+91 98765 43210']}
_FILE = {'type': 'string', 'format': 'binary'}
# Request bodies and success statuses of the core routes, by (path, method)
# (routes may also declare them in @api).
BODIES = {
    ('/otp', 'post'): ({'type': 'object', 'required': ['mobile'],
            'properties': {'mobile': _MOBILE, 'purpose': {
                    'enum': ['register', 'login', 'recover'],
                    'default': 'register'}}}, 202),
    ('/otp/verify', 'post'): ({'type': 'object',
            'required': ['otp_id', 'code'], 'properties': {
                'otp_id': {'type': 'integer'},
                'code': {'type': 'string', 'maxLength': 10}}}, 200),
    ('/patients', 'post'): ({'type': 'object', 'required': [
                'verification', 'name', 'gender', 'birth_date', 'mobile',
                'address', 'pincode', 'state', 'district', 'city',
                'beneficiary_category', 'service', 'service_number'],
            'properties': {
                'verification': {'type': 'string'},
                'name': {'type': 'string', 'maxLength': 100},
                'gender': {'enum': ['m', 'f', 'nb', 'other', 'nd']},
                'birth_date': {'type': 'string', 'format': 'date'},
                'email': {'type': 'string', 'maxLength': 254},
                'mobile': _MOBILE,
                'address': {'type': 'string', 'maxLength': 300},
                'pincode': {'type': 'string', 'pattern': '^[1-9][0-9]{5}$'},
                'state': {'type': 'string'},
                'district': {'type': 'string'},
                'city': {'type': 'string', 'maxLength': 100},
                'beneficiary_category': {
                    'enum': ['serving', 'ex_serviceman', 'dependant']},
                'service': {'enum': ['army', 'navy', 'air_force']},
                'service_number': {'type': 'string', 'maxLength': 30},
                'rank': {'type': 'string', 'maxLength': 50},
                'relation': {'type': 'string'},
                'echs_card': {'type': 'string', 'maxLength': 30},
                }}, 201),
    ('/session', 'post'): ({'type': 'object', 'properties': {
                'mobile': _MOBILE,
                'token_number': {'type': 'integer'},
                'verification': {'type': 'string'}}}, 200),
    ('/session', 'delete'): (None, 204),
    ('/recover', 'post'): ({'type': 'object', 'required': ['mobile'],
            'properties': {'mobile': _MOBILE}}, 202),
    ('/tokens', 'post'): ({'type': 'object', 'required': ['opd'],
            'properties': {
                'opd': {'type': 'integer'},
                'complaint': {'type': 'string', 'maxLength': 2000},
                'files': {'type': 'array', 'maxItems': 3, 'items': _FILE},
                }}, 201),
    ('/tokens/current/cancel', 'post'): (None, 200),
    ('/tokens/current/call', 'post'): (None, 200),
    ('/tokens/current/files', 'post'): ({'type': 'object',
            'required': ['file'], 'properties': {'file': _FILE}}, 201),
    ('/tokens/current/messages', 'post'): ({'type': 'object',
            'properties': {'text': {'type': 'string', 'maxLength': 2000},
                'file': _FILE}}, 201),
    ('/contact', 'post'): ({'type': 'object', 'required': [
                'first_name', 'mobile', 'city', 'state', 'message',
                'captcha'], 'properties': {
                'first_name': {'type': 'string', 'maxLength': 60},
                'last_name': {'type': 'string', 'maxLength': 60},
                'mobile': _MOBILE,
                'email': {'type': 'string', 'maxLength': 254},
                'city': {'type': 'string', 'maxLength': 100},
                'state': {'type': 'string'},
                'message': {'type': 'string', 'maxLength': 2000},
                'captcha': {'type': 'string'},
                'captcha_answer': {'type': 'string'},
                'captcha_nonce': {'type': 'string'},
                }}, 201),
    ('/doctor/session', 'post'): ({'type': 'object',
            'required': ['login', 'password'], 'properties': {
                'login': {'type': 'string'},
                'password': {'type': 'string'}}}, 200),
    ('/doctor/session', 'delete'): (None, 204),
    ('/doctor/online', 'post'): ({'type': 'object', 'required': ['opd'],
            'properties': {'opd': {'type': 'integer'}}}, 200),
    ('/doctor/offline', 'post'): (None, 200),
    ('/doctor/heartbeat', 'post'): (None, 200),
    ('/doctor/call-next', 'post'): (None, 200),
    ('/doctor/tokens/<int:token_id>/complete', 'post'): (None, 200),
    ('/doctor/tokens/<int:token_id>/messages', 'post'): ({'type': 'object',
            'properties': {'text': {'type': 'string', 'maxLength': 2000},
                'file': _FILE}}, 201),
    }
_PARAM = re.compile(r'<(?:(?P<conv>\w+):)?(?P<name>\w+)>')


def _path(path):
    return _PARAM.sub(lambda m: '{%s}' % m.group('name'), path)


def _parameters(path, schemas=None):
    params = []
    for match in _PARAM.finditer(path):
        kind = {'int': 'integer'}.get(match.group('conv'), 'string')
        schema = {'type': kind}
        if kind == 'integer':
            schema['minimum'] = 0
        schema = (schemas or {}).get(match.group('name'), schema)
        params.append({
                'name': match.group('name'), 'in': 'path', 'required': True,
                'schema': schema})
    return params


def _has_binary(schema):
    if not isinstance(schema, dict):
        return False
    if schema.get('format') == 'binary' or schema.get(
            'contentMediaType') == 'application/octet-stream':
        return True
    return any(_has_binary(v) for v in schema.get('properties', {}).values()
        ) or _has_binary(schema.get('items'))


def document(routes, server_url):
    "The OpenAPI 3.1 document of `routes` (web.ROUTES)."
    paths = {}
    # operation ids are unique: the doctor's and the patient's login,
    # messages, files... are told apart by their tag
    names = collections.Counter(
        (route['name'], route['method']) for route in routes)
    for route in routes:
        known = BODIES.get((route['path'], route['method']))
        if known and route['body'] is None:
            route = dict(route, body=known[0], success=known[1])
        operation_id = '%s_%s' % (route['name'], route['method'])
        if names[route['name'], route['method']] > 1:
            operation_id = '%s_%s' % (route['tag'], operation_id)
        operation = {
            'operationId': operation_id,
            'summary': route['doc'].strip().splitlines()[0],
            'tags': [route['tag']],
            'responses': {
                str(route['success']): {'description': 'Success'},
                '4XX': {
                    'description': 'The request was refused; the error '
                    'names the problem and, for input, the field.',
                    'content': {'application/json': {
                            'schema': {'$ref': '#/components/schemas/Error'}}},
                    },
                '503': {
                    'description': 'The database is briefly unavailable '
                    '(a restart, a failover): error code "unavailable"; '
                    'try again after Retry-After seconds.',
                    'headers': {'Retry-After': {
                            'schema': {'type': 'integer'}}},
                    'content': {'application/json': {
                            'schema': {'$ref': '#/components/schemas/Error'}}},
                    },
                },
            }
        produces = route.get('produces')
        if produces and route['success'] != 204:
            if isinstance(produces, str):
                produces = [produces]
            operation['responses'][str(route['success'])]['content'] = {
                media: {} for media in produces}
        # an empty query parameter counts as one not given
        parameters = _parameters(route['path'], route.get('params')) + [{
                'name': name, 'in': 'query', 'required': False,
                'allowEmptyValue': True, 'schema': schema}
            for name, schema in (route.get('query') or {}).items()]
        if parameters:
            operation['parameters'] = parameters
        if route['auth'] == 'patient':
            operation['security'] = [
                {'patientCookie': [], 'csrfHeader': []}, {'bearer': []}]
        elif route['auth'] == 'user':
            operation['security'] = [
                {'staffCookie': [], 'csrfHeader': []}, {'bearer': []}]
        if route.get('security'):
            operation['security'] = [{route['security']: []}]
        if route['body'] is not None:
            media = ('multipart/form-data' if _has_binary(route['body'])
                else 'application/json')
            content = {media: {'schema': route['body']}}
            files = {k for k, v in route['body'].get(
                    'properties', {}).items() if _has_binary(v)}
            if media == 'multipart/form-data' and not (
                    files & set(route['body'].get('required', []))):
                # uploads accept JSON too when they need not carry a file
                plain = dict(route['body'])
                plain['properties'] = {k: v for k, v in
                    route['body'].get('properties', {}).items()
                    if k not in files}
                content['application/json'] = {'schema': plain}
            # a body without required fields may be left out
            operation['requestBody'] = {
                'required': bool(route['body'].get('required')),
                'content': content}
        paths.setdefault(_path(route['path']), {})[route['method']] = (
            operation)
    return {
        'openapi': '3.1.0',
        'info': {
            'title': 'SeHAT OPD patient API',
            'version': '1',
            'description': 'The API of the SeHAT OPD portal: OTP, '
            'registration, sessions, tokens and the waiting room, '
            'consultations and prescriptions. Errors are '
            '{"error": {"code", "message", "field"}} with a 4xx status.',
            },
        'servers': [{'url': server_url}],
        'paths': paths,
        'components': {
            'schemas': {'Error': ERROR},
            'securitySchemes': {
                'patientCookie': {
                    'type': 'apiKey', 'in': 'cookie', 'name': 'sehat_session'},
                'staffCookie': {
                    'type': 'apiKey', 'in': 'cookie', 'name': 'sehat_staff'},
                'csrfHeader': {
                    'type': 'apiKey', 'in': 'header', 'name': 'X-CSRF-Token',
                    'description': 'Required on writes with cookie sessions.'},
                'bearer': {'type': 'http', 'scheme': 'bearer'},
                'webhookSecret': {
                    'type': 'apiKey', 'in': 'header', 'name': 'X-Sehat-Secret',
                    'description': 'The shared secret of the SMS gateway\'s '
                    'delivery receipts (or the `secret` query parameter).'},
                },
            },
        }
