"""WSGI middleware: refusals raised before a route runs become clean 4xx.

trytond refuses a request whose Origin is foreign (and a few others) by
raising an HTTP exception outside its dispatcher; servers then answer 500.
This middleware (enabled by `[wsgi middleware]` in trytond.conf) answers the
exception itself, as JSON under the API prefix.
"""
import json

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response


class HTTPErrors:
    "Answer HTTP exceptions that escape trytond's dispatcher."

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        try:
            return self.app(environ, start_response)
        except HTTPException as exception:
            response = exception.get_response(environ)
            if '/opd/api/' in environ.get('PATH_INFO', ''):
                status = response.status_code
                response = Response(json.dumps({'error': {
                                'code': 'forbidden' if status == 403
                                else 'bad_request',
                                'message': exception.description
                                or 'Refused'}}),
                    status=status, content_type='application/json')
            return response(environ, start_response)
