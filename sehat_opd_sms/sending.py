"""The side effects of the outbox: HTTP to the SMS gateway, SMTP, the log,
and starting them once the transaction that queued the messages commits.

The outbox model decides (claim, record); this module only talks to the
outside world and never holds a database transaction while it waits.
"""
import logging
import smtplib
import socket
import threading
import urllib.parse

import requests

from trytond.sendmail import get_smtp_server, sendmail
from trytond.transaction import Transaction
from trytond.modules.sehat_opd import tools

from . import gateway, mailing

logger = logging.getLogger(__name__)
SECTION = 'sehat_opd_sms'
DISPATCH_MODES = {'thread', 'inline', 'cron'}
EMAIL_MODES = {'smtp', 'log', 'off'}


def settings():
    """The gateway settings of [sehat_opd_sms], environment first.

    Raises gateway.GatewayConfigError when they cannot be read.
    """
    values = gateway.load_settings(
        lambda option, default: tools.get_setting(SECTION, option, default))
    if values['dispatch'] not in DISPATCH_MODES:
        values['dispatch'] = 'thread'
    values['email'] = values['email'].strip().lower() or (
        'log' if tools.is_development() else 'smtp')
    if values['email'] not in EMAIL_MODES:
        values['email'] = 'smtp'
    return values


def queue_settings():
    """The provider and e-mail mode, for queueing: never raises, so that a
    broken gateway setting cannot fail the event (a token, an OTP) that
    queues a message; dispatch reports the problem on the messages."""
    try:
        return settings()
    except gateway.GatewayConfigError:
        development = tools.is_development()
        return {
            'provider': tools.get_setting(SECTION, 'provider', 'log'),
            'email': tools.get_setting(SECTION, 'email', '') or (
                'log' if development else 'smtp'),
            }


# Sending -------------------------------------------------------------------

def http_send(request, timeout):
    "Send a gateway.Request; return (status or None, body or error text)."
    try:
        response = requests.request(request.method, request.url,
            headers=request.headers, data=request.body, timeout=timeout,
            allow_redirects=False)
    except requests.Timeout:
        return None, 'timeout after %ss' % timeout
    except requests.RequestException as exception:
        return None, 'connection failed: %s' % type(exception).__name__
    return response.status_code, response.text


def send_sms(payload, config):
    "Send one SMS payload; return its gateway.Outcome."
    if config['provider'] == 'log':
        if tools.is_development():
            # The demo and the tests read OTPs here; keep this exact format.
            logger.warning('SMS to %s [%s]: %s', payload['mobile'],
                payload['event'], ' '.join(payload['text'].split()))
        else:
            logger.info('SMS to %s [%s]', tools.mask_mobile(payload['mobile']),
                payload['event'])
        return gateway.Outcome('sent', None, 'written to the log')
    try:
        request = gateway.build_request(config, payload)
    except gateway.GatewayConfigError as exception:
        return gateway.Outcome('fatal', None, str(exception))
    status, body = http_send(request, config['timeout'])
    return gateway.classify(config, status, body)


def _smtp_uri(timeout):
    uri = tools.get_setting('email', 'uri', 'smtp://localhost:25')
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qs(parts.query)
    if 'timeout' not in query:
        # smtplib waits forever by default: a hung server would hold the
        # worker; trytond reads `timeout` from the URI's query.
        query['timeout'] = [str(max(1, int(timeout)))]
        uri = urllib.parse.urlunsplit(parts._replace(
                query=urllib.parse.urlencode(query, doseq=True)))
    return uri


def send_email(payload, config):
    "Send one e-mail payload over SMTP; return its gateway.Outcome."
    if config['email'] == 'log':
        logger.warning('E-mail to %s [%s]: %s', payload['recipient'],
            payload['event'], payload['subject'])
        return gateway.Outcome('sent', None, 'written to the log')
    sender = tools.get_setting('email', 'from') or 'sehat-opd@localhost'
    message = mailing.build_email(sender, payload['recipient'],
        payload['subject'], payload['text'], payload['language'],
        payload['reference'])
    try:
        server = get_smtp_server(_smtp_uri(config['timeout']), strict=True)
        try:
            sendmail(sender, [payload['recipient']], message, server=server,
                strict=True)
        finally:
            try:
                server.quit()
            except (smtplib.SMTPException, OSError):
                pass
    except smtplib.SMTPRecipientsRefused as exception:
        codes = [code for code, _ in exception.recipients.values()]
        status = 'retry' if all(400 <= c < 500 for c in codes) else 'fatal'
        return gateway.Outcome(status, None, 'SMTP refused: %s' % (
                exception.recipients,))
    except smtplib.SMTPResponseException as exception:
        status = 'retry' if 400 <= exception.smtp_code < 500 else 'fatal'
        return gateway.Outcome(status, None, 'SMTP %s: %s' % (
                exception.smtp_code, gateway.snippet(exception.smtp_error)))
    except (smtplib.SMTPException, OSError, socket.timeout) as exception:
        return gateway.Outcome('retry', None, 'SMTP: %s' % (
                str(exception) or type(exception).__name__))
    return gateway.Outcome('sent', None, 'accepted by the SMTP server')


def deliver(payloads, config):
    """Send each payload; return {message id: gateway.Outcome}.

    Once a channel's gateway fails for a reason that may pass (down, slow),
    the remaining messages of that channel are not tried in this run
    (outcome 'untried'): they would only wait for the same timeout.
    """
    outcomes = {}
    down = set()
    for payload in payloads:
        channel = payload['channel']
        if channel in down:
            outcomes[payload['id']] = gateway.Outcome(
                'untried', None, 'not tried: gateway unavailable')
            continue
        try:
            if channel == 'email':
                outcome = send_email(payload, config)
            else:
                outcome = send_sms(payload, config)
        except Exception as exception:
            logger.exception('sending message %s failed', payload['id'])
            outcome = gateway.Outcome('retry', None,
                'error: %s' % type(exception).__name__)
        if outcome.status == 'retry':
            down.add(channel)
        outcomes[payload['id']] = outcome
    return outcomes


# After commit --------------------------------------------------------------

def run(database_name, ids):
    """Send the messages `ids` (from a thread, or inline after commit):
    each step in a transaction of its own, none held around another."""
    from trytond.pool import Pool
    try:
        Pool(database_name).get('sehat.sms.message').dispatch(
            ids, database_name=database_name)
    except Exception:
        # Nothing is lost: the messages stay queued and the cron sends them.
        logger.exception('sending messages %s after commit failed', ids)


class DispatchDataManager:
    """Send the messages queued by a transaction once it has committed.

    Joined to the transaction like trytond.sendmail's SMTPDataManager: a
    rollback forgets them (their records are rolled back too), a commit
    starts sending in a thread so the request is not kept waiting for the
    gateway. Whatever is not sent then is left to the cron.
    """

    def __init__(self, database_name):
        self.database_name = database_name
        self.ids = []

    def __eq__(self, other):
        if not isinstance(other, DispatchDataManager):
            return NotImplemented
        return self.database_name == other.database_name

    def __hash__(self):
        return hash((DispatchDataManager, self.database_name))

    def put(self, ids):
        self.ids.extend(ids)

    def abort(self, trans):
        self.ids = []

    def tpc_begin(self, trans):
        pass

    def commit(self, trans):
        pass

    def tpc_vote(self, trans):
        pass

    def tpc_finish(self, trans):
        ids, self.ids = self.ids, []
        if ids:
            # once the transaction has given its connection back: sending
            # needs a connection of its own, and holding two per request
            # would exhaust the pool under a burst of requests
            trans.atexit(self.dispatch, ids)

    def dispatch(self, ids):
        mode = tools.get_setting(SECTION, 'dispatch', 'thread')
        if mode == 'cron':
            return
        if mode == 'inline':
            run(self.database_name, ids)
            return
        # Not a daemon: a short-lived process (a script, trytond-admin)
        # finishes sending before it exits; each send is bounded by the
        # gateway timeout.
        threading.Thread(target=run, args=(self.database_name, ids),
            name='sehat-sms-%s' % ids[0]).start()

    def tpc_abort(self, trans):
        self.ids = []
