"""HTTP of SeHAT OPD notifications: the gateways' delivery receipts.

POST (or GET, as some gateways call back)
/<db>/opd/api/v1/sms/receipt/<provider>
with the shared secret in the X-Sehat-Secret header or the `secret` query
parameter (gateways that only take a URL). Answers 404 where the module is
not activated or no secret is configured (the webhook is then closed).
"""
import hmac
import json

from trytond.i18n import gettext
from trytond.modules.sehat_opd.exceptions import InvalidInput, Unauthorized
from trytond.modules.sehat_opd.web import api, error_response

from . import gateway, sending

SECRET_HEADER = 'X-Sehat-Secret'
# what the route takes, for the OpenAPI document: each gateway has its own
# report, as a JSON object or array (Gupshup) or a form
RECEIPT = {'type': ['object', 'array']}
SECRET = {'secret': {'type': 'string'}}
PROVIDER = {'provider': {'enum': [
            p for p in gateway.PROVIDERS if p != 'log']}}


def _payload(request):
    """The query, form and JSON body of a gateway's call.

    A body that says it is JSON must be an object or an array (Gupshup's
    events): anything else is refused rather than taken for "no report",
    so that a gateway sending garbage hears about it."""
    data = {'args': request.args.to_dict(), 'form': {}, 'json': None}
    if request.mimetype in {
            'application/x-www-form-urlencoded', 'multipart/form-data'}:
        data['form'] = request.form.to_dict()
    else:
        raw = request.get_data(cache=True)
        if raw:
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                value = None
            if isinstance(value, (dict, list)):
                data['json'] = value
            elif request.mimetype == 'application/json' or (
                    request.mimetype.endswith('+json')):
                raise InvalidInput(
                    gettext('sehat_opd_sms.msg_webhook_body'), field=None)
    return data


@api('/sms/receipt/<provider>', methods=['POST'], body=RECEIPT,
    query=SECRET, params=PROVIDER, security='webhookSecret')
@api('/sms/receipt/<provider>', methods=['GET'], query=SECRET,
    params=PROVIDER, security='webhookSecret')
def receipt(request, pool, session, provider):
    "A delivery report of the SMS gateway."
    try:
        Message = pool.get('sehat.sms.message')
    except KeyError:
        return error_response(404, 'not_found', 'Not Found')
    try:
        config = sending.settings()
    except gateway.GatewayConfigError:
        return error_response(404, 'not_found', 'Not Found')
    expected = config['webhook_secret']
    if not expected or provider not in gateway.PROVIDERS or provider == 'log':
        return error_response(404, 'not_found', 'Not Found')
    supplied = (request.headers.get(SECRET_HEADER)
        or request.args.get('secret') or '')
    if not hmac.compare_digest(
            supplied.encode('utf-8'), expected.encode('utf-8')):
        raise Unauthorized(gettext('sehat_opd_sms.msg_webhook_secret'))
    receipts = gateway.parse_receipts(config, provider, _payload(request))
    updated = Message.apply_receipts(receipts, provider)
    return {'received': len(receipts), 'updated': updated}
