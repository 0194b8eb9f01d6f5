"""Public API v1 routes of the contact form (see doc/design.rst).

GET /contact/captcha hands out a challenge; POST /contact sends the form
with the challenge solved, either by the image's characters
(`captcha_answer`) or by the proof of work (`captcha_nonce`).
"""
from . import web
from .web import api, json_response, read_json


@api('/contact/captcha')
def contact_captcha(request, pool, session):
    Contact = pool.get('sehat.opd.contact')
    return Contact.challenge()


@api('/contact', methods=['POST'])
def send_contact(request, pool, session):
    Contact = pool.get('sehat.opd.contact')
    contact, error = Contact.submit(read_json(request),
        web.client_address(request), web.request_language(request))
    if error:
        return error
    return json_response({'reference': contact.reference}, status=201)
