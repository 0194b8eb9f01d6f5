"""Tests of sehat_opd_sms with a database: Tryton's checks, and the outbox
against a real HTTP gateway and SMTP server on 127.0.0.1 (the pure
functions are tested in test_functions.py)."""
import base64
import datetime as dt
import json
import os
import threading
import time
from unittest import mock

from trytond.modules.sehat_opd.tests.tools import create_patient, with_sehat
from trytond.modules.sehat_opd_sms import dlt, gateway
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, ModuleTestCase
from trytond.transaction import Transaction

from .fake_gateway import FakeGateway, FakeSMTP
from .test_functions import settings

VALUES = {
    'otp': {'otp': '482913', 'minutes': 10},
    'registered': {'name': 'Asha Verma', 'patient_id': 'SH-7K3M-Q9XD-R'},
    'recover': {'patient_id': 'SH-7K3M-Q9XD-R', 'token': 12},
    'token_issued': {'token': 12, 'opd': 'General OPD (GEN)',
        'patient_id': 'SH-7K3M-Q9XD-R'},
    'turn_near': {'token': 12, 'opd': 'General OPD (GEN)', 'position': 2},
    'called': {'doctor': 'Dr Anil Sharma', 'token': 12, 'seconds': 120,
        'opd': 'General OPD (GEN)'},
    'missed_call': {'token': 12, 'opd': 'General OPD (GEN)'},
    'token_cancelled': {'token': 12, 'opd': 'General OPD (GEN)'},
    'token_expired': {'token': 12, 'opd': 'General OPD (GEN)'},
    'prescription_ready': {'prescription': 'RX-2025-0042',
        'link': 'https://opd.example.in/sehat/opd/prescriptions/42.pdf'},
    'contact_received': {'reference': 'C-1042'},
    }


class SehatOpdSmsTestCase(ModuleTestCase):
    "Test SeHAT OPD notifications"
    module = 'sehat_opd_sms'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gateway = FakeGateway(hang=1.5).start()
        cls.smtp = FakeSMTP().start()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        cls.smtp.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.gateway.clear()
        self.configure()

    def configure(self, **values):
        "Gateway settings through the environment, as in production."
        env = {
            'TRYTOND_SEHAT_OPD_SMS__PROVIDER': 'generic',
            'TRYTOND_SEHAT_OPD_SMS__URL': self.gateway.url + '/sms',
            'TRYTOND_SEHAT_OPD_SMS__PARAMS': json.dumps({
                    'to': '{mobile}', 'text': '{text}', 'event': '{event}',
                    'reference': '{reference}'}),
            'TRYTOND_SEHAT_OPD_SMS__RESPONSE_ID': 'id',
            'TRYTOND_SEHAT_OPD_SMS__IDEMPOTENCY_HEADER': 'Idempotency-Key',
            'TRYTOND_SEHAT_OPD_SMS__TIMEOUT': '0.5',
            'TRYTOND_SEHAT_OPD_SMS__DISPATCH': 'inline',
            'TRYTOND_SEHAT_OPD_SMS__EMAIL': 'smtp',
            'TRYTOND_SEHAT_OPD_SMS__WEBHOOK_SECRET': 'hook-secret',
            'TRYTOND_EMAIL__URI': self.smtp.uri,
            'TRYTOND_EMAIL__FROM': 'SeHAT OPD <opd@example.in>',
            }
        env.update({'TRYTOND_SEHAT_OPD_SMS__%s' % k.upper(): v
                for k, v in values.items()})
        patcher = mock.patch.dict(os.environ, env)
        patcher.start()
        self.addCleanup(patcher.stop)

    def retry_settings(self, attempts=6, delay=1):
        Configuration = Pool().get('sehat.opd.configuration')
        configuration = Configuration(1)
        configuration.sms_max_attempts = attempts
        configuration.sms_retry_delay = delay
        configuration.save()

    def messages(self, mobile):
        Message = Pool().get('sehat.sms.message')
        return Message.search([('recipient', '=', mobile)],
            order=[('id', 'ASC')])

    @with_sehat
    def test_default_templates(self, env):
        "Every event has an English and a Hindi template that renders and fits"
        Template = env.pool.get('sehat.sms.template')
        from trytond.modules.sehat_opd.notifier import event_names
        for event in event_names():
            for language in ['en', 'hi']:
                template = Template.for_event(event, language)
                self.assertEqual(template.language, language)
                self.assertEqual(template.category, 'service_implicit')
                text, fills = template.render(VALUES[event])
                self.assertTrue(dlt.fits(template.text, text), text)
                coding, parts, _ = dlt.segments(text)
                self.assertEqual(coding,
                    'ucs2' if language == 'hi' else 'gsm7', text)
                self.assertLessEqual(parts, 3, text)
        otp_en = Template.for_event('otp', 'en').render(VALUES['otp'])[0]
        otp_hi = Template.for_event('otp', 'hi').render(VALUES['otp'])[0]
        self.assertEqual(dlt.segments(otp_en)[:2], ('gsm7', 1))
        self.assertEqual(dlt.segments(otp_hi)[:2], ('ucs2', 2))
        self.assertIn('482913 आपका SeHAT OPD ओटीपी है।', otp_hi)

    @with_sehat
    def test_template_validation(self, env):
        "Templates must agree with DLT's rules before they are saved"
        Template = env.pool.get('sehat.sms.template')
        from trytond.model.exceptions import SQLConstraintError
        from trytond.modules.sehat_opd_sms.exceptions import (
            TemplateValidationError)
        template = Template.for_event('otp', 'en')
        bad = [
            {'variables': 'otp'},
            {'variables': 'otp, hours'},
            {'category': 'promotional'},
            {'category': 'service_explicit'},
            {'dlt_template_id': '1107-16'},
            ]
        cursor = Transaction().connection.cursor()
        for values in bad:
            # a failed write leaves its row written: roll it back
            cursor.execute('SAVEPOINT bad_template')
            with self.assertRaises(TemplateValidationError, msg=values):
                Template.write([template], values)
            cursor.execute('ROLLBACK TO SAVEPOINT bad_template')
        template = Template(template.id)
        self.assertEqual((template.encoding, template.max_segments),
            ('gsm7', 1))
        hindi = Template.for_event('otp', 'hi')
        self.assertEqual((hindi.encoding, hindi.max_segments), ('ucs2', 3))
        Template.write([template], {'active': False})
        Template.create([{'event': 'otp', 'language': 'en',
                    'text': template.text, 'variables': 'otp, minutes',
                    'dlt_template_id': '1107161234567890123'}])
        with self.assertRaises(SQLConstraintError):
            Template.create([{'event': 'otp', 'language': 'en',
                        'text': template.text, 'variables': 'otp, minutes'}])

    @with_sehat
    def test_sent_only_after_commit(self, env):
        "A message is a queued record until commit, then reaches the gateway"
        Notifier = env.pool.get('sehat.opd.notifier')
        patient = create_patient(env, '9810000001')
        Notifier.notify('token_issued', patient=patient,
            values=VALUES['token_issued'])
        message, = self.messages('+919810000001')
        self.assertEqual((message.state, message.channel), ('queued', 'sms'))
        self.assertEqual(message.text, 'SeHAT OPD: token 12 issued for '
            'General OPD (GEN). Patient ID SH-7K3M-Q9XD-R. Wait in the online'
            ' waiting room.')
        self.assertEqual(self.gateway.requests, [])
        Transaction().commit()
        received, = self.gateway.sent_to('to', '+919810000001')
        self.assertEqual(received.params['text'], message.text)
        self.assertEqual(received.params['event'], 'token_issued')
        self.assertEqual(received['key'], message.reference)
        message, = self.messages('+919810000001')
        self.assertEqual((message.state, message.attempts, message.gateway_id),
            ('sent', 1, received['gateway_id']))

    @with_sehat
    def test_thread_dispatch(self, env):
        "In production a thread sends after commit; the request does not wait"
        Notifier = env.pool.get('sehat.opd.notifier')
        self.configure(dispatch='thread')
        patient = create_patient(env, '9810000600')
        Notifier.notify('registered', patient=patient,
            values=VALUES['registered'])
        Transaction().commit()
        self.assertTrue(self.gateway.wait_for(
                lambda g: g.sent_to('to', '+919810000600')))
        deadline = time.monotonic() + 5
        while self.messages('+919810000600')[0].state != 'sent':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
            Transaction().commit()  # a new snapshot

    @with_sehat
    def test_rollback_sends_nothing(self, env):
        "A rolled-back transaction leaves no message and texts nobody"
        Notifier = env.pool.get('sehat.opd.notifier')
        Message = env.pool.get('sehat.sms.message')
        patient = create_patient(env, '9810000002')
        Transaction().commit()
        Notifier.notify('token_issued', patient=patient,
            values=VALUES['token_issued'])
        self.assertEqual(len(self.messages('+919810000002')), 1)
        Transaction().rollback()
        Message.dispatch(now=dt.datetime.now() + dt.timedelta(days=1))
        self.assertEqual(self.messages('+919810000002'), [])
        self.assertEqual(self.gateway.requests, [])

    @with_sehat
    def test_hindi_is_sent_as_unicode(self, env):
        "A Hindi-speaking patient gets the Hindi template, flagged Unicode"
        Notifier = env.pool.get('sehat.opd.notifier')
        self.configure(params=json.dumps({'to': '{mobile}', 'text': '{text}',
                    'coding': '{encoding}'}))
        patient = create_patient(env, '9810000003')
        patient.portal_language = 'hi'
        patient.save()
        Notifier.notify('otp', patient=patient, values=VALUES['otp'])
        Transaction().commit()
        received, = self.gateway.sent_to('to', '+919810000003')
        self.assertEqual(received.params['coding'], 'unicode')
        self.assertTrue(received.params['text'].startswith(
                '482913 आपका SeHAT OPD ओटीपी'))
        message, = self.messages('+919810000003')
        self.assertEqual((message.encoding, message.segments, message.state),
            ('ucs2', 2, 'sent'))
        self.assertNotIn('482913', message.text)  # masked once sent

    @with_sehat
    def test_email_text_and_html(self, env):
        "A patient with an e-mail address also gets it by SMTP"
        Notifier = env.pool.get('sehat.opd.notifier')
        ContactMechanism = env.pool.get('party.contact_mechanism')
        patient = create_patient(env, '9810000004')
        ContactMechanism.create([{'party': patient.party.id, 'type': 'email',
                    'value': 'asha.verma@example.in'}])
        before = len(self.smtp.messages)
        Notifier.notify('prescription_ready', patient=patient,
            values=VALUES['prescription_ready'])
        Notifier.notify('otp', patient=patient, values=VALUES['otp'])
        Transaction().commit()
        mails = self.smtp.wait_for(before + 1)
        self.assertEqual(len(mails), before + 1)  # no OTP by e-mail
        mail = mails[-1]
        self.assertEqual(mail['to'], ['asha.verma@example.in'])
        message = mail['message']
        self.assertEqual(message['Subject'],
            'SeHAT OPD: your e-prescription is ready')
        text, html = [p.get_payload(decode=True).decode()
            for p in message.walk() if not p.is_multipart()]
        self.assertIn(VALUES['prescription_ready']['link'], text)
        self.assertIn('<a href="%s">' % VALUES['prescription_ready']['link'],
            html)
        Message = env.pool.get('sehat.sms.message')
        email, = Message.search([('recipient', '=', 'asha.verma@example.in')])
        self.assertEqual(email.state, 'sent')

    @with_sehat
    def test_4xx_not_retried(self, env):
        "A refusal (HTTP 400) fails the message at once, with the reason"
        Notifier = env.pool.get('sehat.opd.notifier')
        Message = env.pool.get('sehat.sms.message')
        patient = create_patient(env, '9810000005')
        self.gateway.set_mode('reject')
        Notifier.notify('token_cancelled', patient=patient,
            values=VALUES['token_cancelled'])
        Transaction().commit()
        message, = self.messages('+919810000005')
        self.assertEqual((message.state, message.attempts), ('failed', 1))
        self.assertIn('HTTP 400', message.reason)
        Message.dispatch(now=dt.datetime.now() + dt.timedelta(days=1))
        self.assertEqual(len(self.gateway.requests), 1)
        Transaction().commit()
        self.gateway.set_mode('ok')
        Message.resend([message])
        Transaction().commit()
        message, = self.messages('+919810000005')
        self.assertEqual((message.state, message.attempts), ('sent', 1))
        self.assertEqual(len(self.gateway.accepted), 1)

    @with_sehat
    def test_otp_not_retried_after_expiry(self, env):
        "An OTP that could not leave in time is failed, never sent late"
        Notifier = env.pool.get('sehat.opd.notifier')
        Message = env.pool.get('sehat.sms.message')
        from trytond.modules.sehat_opd_sms.exceptions import OutboxError
        self.retry_settings(delay=5)
        patient = create_patient(env, '9810000006')
        self.gateway.set_mode('error')
        Notifier.notify('otp', patient=patient,
            values={'otp': '771234', 'minutes': 1})
        Transaction().commit()
        message, = self.messages('+919810000006')
        self.assertEqual((message.state, message.attempts), ('queued', 1))
        self.assertEqual(message.priority, 0)
        self.gateway.set_mode('ok')
        Message.dispatch(now=dt.datetime.now() + dt.timedelta(minutes=2))
        Transaction().commit()  # a new snapshot
        message, = self.messages('+919810000006')
        self.assertEqual(message.state, 'failed')
        self.assertIn('Expired', message.reason)
        self.assertNotIn('771234', message.text)
        self.assertEqual(len(self.gateway.requests), 1)
        self.assertEqual(self.gateway.accepted, [])
        with self.assertRaises(OutboxError):
            Message.resend([message])

    @with_sehat
    def test_gateway_down_nothing_lost_nothing_twice(self, env):
        "With the gateway down, refusing, hanging, then back: each once"
        Notifier = env.pool.get('sehat.opd.notifier')
        Message = env.pool.get('sehat.sms.message')
        self.retry_settings(attempts=20, delay=1)
        mobiles = ['+9198100001%02d' % i for i in range(8)]
        patients = [create_patient(env, m[3:]) for m in mobiles]
        Transaction().commit()
        self.gateway.set_mode('close')
        for patient in patients:
            Notifier.notify('turn_near', patient=patient,
                values=VALUES['turn_near'])
            Transaction().commit()
        self.assertEqual(self.gateway.accepted, [])
        references = {m.reference for mobile in mobiles
            for m in self.messages(mobile)}
        self.assertEqual(len(references), len(mobiles))

        # Two cron workers, as on two machines, while the gateway recovers.
        stop = threading.Event()
        errors = []

        def worker():
            try:
                while not stop.is_set():
                    with Transaction().start(DB_NAME, 0):
                        Pool().get('sehat.sms.message').dispatch()
                    time.sleep(0.05)
            except Exception as exception:  # pragma: no cover
                errors.append(exception)
        workers = [threading.Thread(target=worker) for _ in range(2)]
        for thread in workers:
            thread.start()
        try:
            time.sleep(1.5)
            self.gateway.set_mode('error')
            time.sleep(1.5)
            # back, but the first request is taken and answered too late:
            # the sender retries it
            self.gateway.set_mode('ok', first=['hang'])
            done = self.gateway.wait_for(lambda g: {
                    r.params['reference'] for r in g.accepted} >= references,
                timeout=30)
        finally:
            stop.set()
            for thread in workers:
                thread.join()
        self.assertFalse(errors)
        self.assertTrue(done, 'messages lost')
        # The message whose answer never came is still due for a retry:
        # the gateway sees it again and drops it by its idempotency key.
        self.gateway.wait_for(lambda g: not g.in_flight)
        Transaction().commit()  # a new snapshot, to see the workers' work
        # past its backoff, before "turn near" expires (an hour)
        Message.dispatch(now=dt.datetime.now() + dt.timedelta(minutes=30))
        accepted = [r.params['reference'] for r in self.gateway.accepted]
        self.assertEqual(sorted(accepted), sorted(references))  # once each
        self.assertEqual(len(self.gateway.duplicates), 1)
        modes = {r['mode'] for r in self.gateway.requests}
        self.assertTrue({'close', 'error', 'hang', 'ok'} <= modes, modes)
        Transaction().commit()
        for mobile in mobiles:
            message, = self.messages(mobile)
            self.assertEqual(message.state, 'sent', message.reason)
            self.assertGreater(message.attempts, 1)

    @with_sehat
    def test_delivery_receipts(self, env):
        "The gateway's receipt marks a message delivered, or failed"
        Notifier = env.pool.get('sehat.opd.notifier')
        Message = env.pool.get('sehat.sms.message')
        config = settings(provider='generic')
        patients = [create_patient(env, '98100002%02d' % i) for i in range(2)]
        for patient in patients:
            Notifier.notify('missed_call', patient=patient,
                values=VALUES['missed_call'])
        Transaction().commit()
        first, = self.messages('+919810000200')
        second, = self.messages('+919810000201')
        receipts = gateway.parse_receipts(config, 'generic', {'json': [
                    {'id': first.gateway_id, 'status': 'delivered'},
                    {'id': second.gateway_id, 'status': 'undelivered'},
                    {'id': 'unknown', 'status': 'delivered'}]})
        self.assertEqual(Message.apply_receipts(receipts, 'generic'), 2)
        first, = self.messages('+919810000200')
        second, = self.messages('+919810000201')
        self.assertEqual(first.state, 'delivered')
        self.assertTrue(first.delivered_at)
        self.assertEqual(second.state, 'failed')
        self.assertIn('undelivered', second.reason)

    @with_sehat
    def test_presets_send_documented_parameters(self, env):
        "Gupshup, Exotel and MSG91 get the parameters their APIs document"
        Notifier = env.pool.get('sehat.opd.notifier')
        Template = env.pool.get('sehat.sms.template')
        template = Template.for_event('token_issued', 'en')
        template.dlt_template_id = '1107161234567890001'
        template.provider_template_id = '65f0c0ffee'
        template.save()
        replies = {
            'gupshup': lambda r, i: (200, 'success | %s | %s-77' % (
                    r.params.get('send_to'), i)),
            'exotel': lambda r, i: (200, json.dumps({'SMSMessage': {
                            'Sid': 'sid-' + i, 'Status': 'queued'}})),
            'msg91': lambda r, i: (200, json.dumps({'type': 'success',
                        'message': 'req-' + i})),
            }
        configs = {
            'gupshup': dict(url=self.gateway.url + '/GatewayAPI/rest',
                user='2000123456', password='pw', sender='SEHATO',
                dlt_entity_id='1101000000001'),
            'exotel': dict(url=self.gateway.url
                + '/v1/Accounts/{account_sid}/Sms/send.json',
                account_sid='sehat1', api_key='key', api_token='tok',
                sender='SEHATO', dlt_entity_id='1101000000001'),
            'msg91': dict(url=self.gateway.url + '/api/v5/flow/',
                api_key='authk', sender='SEHATO'),
            }
        for index, provider in enumerate(['gupshup', 'exotel', 'msg91']):
            self.configure(provider=provider, idempotency_header='',
                **configs[provider])
            self.gateway.clear()
            self.gateway.reply = replies[provider]
            patient = create_patient(env, '98100003%02d' % index)
            Notifier.notify('token_issued', patient=patient,
                values=VALUES['token_issued'])
            Transaction().commit()
            received, = self.gateway.accepted
            params = received.params
            message, = self.messages(patient.portal_mobile)
            self.assertEqual(message.state, 'sent', message.reason)
            if provider == 'gupshup':
                self.assertEqual(received['path'], '/GatewayAPI/rest')
                self.assertEqual(params['dltTemplateId'],
                    '1107161234567890001')
                self.assertEqual(params['principalEntityId'], '1101000000001')
                self.assertEqual(params['send_to'], '919810000300')
                self.assertEqual((params['userid'], params['password'],
                        params['method'], params['msg_type'],
                        params['mask']),
                    ('2000123456', 'pw', 'SendMessage', 'TEXT', 'SEHATO'))
                self.assertEqual(params['msg'], message.text)
                self.assertEqual(message.gateway_id,
                    '%s-77' % received['gateway_id'])
            elif provider == 'exotel':
                self.assertEqual(received['path'],
                    '/v1/Accounts/sehat1/Sms/send.json')
                self.assertEqual(received['headers']['authorization'],
                    'Basic ' + base64.b64encode(b'key:tok').decode())
                self.assertEqual((params['From'], params['To'],
                        params['DltTemplateId'], params['DltEntityId'],
                        params['CustomField']),
                    ('SEHATO', '+919810000301', '1107161234567890001',
                        '1101000000001', message.reference))
                self.assertEqual(params['Body'], message.text)
                self.assertEqual(message.gateway_id,
                    'sid-' + received['gateway_id'])
            else:
                self.assertEqual(received['headers']['authkey'], 'authk')
                self.assertEqual(params['template_id'], '65f0c0ffee')
                recipient, = params['recipients']
                self.assertEqual(recipient, {'mobiles': '919810000302',
                        'VAR1': '12', 'VAR2': 'General OPD (GEN)',
                        'VAR3': 'SH-7K3M-Q9XD-R'})
                self.assertEqual(message.gateway_id,
                    'req-' + received['gateway_id'])

    @with_sehat
    def test_missing_template_is_visible(self, env):
        "No template for the event: the message is failed with the reason"
        Notifier = env.pool.get('sehat.opd.notifier')
        Template = env.pool.get('sehat.sms.template')
        Template.write(Template.search([('event', '=', 'contact_received')]),
            {'active': False})
        Notifier.notify('contact_received', mobile='+919810000400',
            values=VALUES['contact_received'])
        Transaction().commit()
        message, = self.messages('+919810000400')
        self.assertEqual(message.state, 'failed')
        self.assertIn('No active SMS template', message.reason)
        self.assertIn('C-1042', message.text)
        self.assertEqual(self.gateway.requests, [])

    @with_sehat
    def test_log_provider_keeps_the_core_line(self, env):
        "Development: the log provider writes the line the demo reads"
        Notifier = env.pool.get('sehat.opd.notifier')
        self.configure(provider='log')
        with mock.patch.dict(os.environ,
                {'TRYTOND_SEHAT_OPD__MODE': 'development'}), \
                self.assertLogs('trytond.modules.sehat_opd_sms.sending',
                    'WARNING') as logs:
            Notifier.notify('otp', mobile='+919810000500',
                values=VALUES['otp'])
            Transaction().commit()
        self.assertIn('SMS to +919810000500 [otp]: 482913 is your SeHAT OPD '
            'OTP. It is valid for 10 minutes. Do not share it with anyone.',
            logs.output[0])
        message, = self.messages('+919810000500')
        self.assertEqual(message.state, 'sent')

    @with_sehat
    def test_broken_settings_keep_messages(self, env):
        "A broken gateway setting fails no event and loses no message"
        Notifier = env.pool.get('sehat.opd.notifier')
        Message = env.pool.get('sehat.sms.message')
        self.configure(params='{not json')
        patient = create_patient(env, '9810000700')
        Notifier.notify('token_expired', patient=patient,
            values=VALUES['token_expired'])
        Transaction().commit()
        message, = self.messages('+919810000700')
        self.assertEqual(message.state, 'queued')
        self.assertIn('params must be a JSON object', message.reason)
        self.configure()
        Message.dispatch(now=dt.datetime.now() + dt.timedelta(hours=1))
        Transaction().commit()
        message, = self.messages('+919810000700')
        self.assertEqual(message.state, 'sent')
        self.assertEqual(len(self.gateway.sent_to('to', '+919810000700')), 1)

    @with_sehat
    def test_gateway_settings_listed(self, env):
        "Administrators see the gateway settings, secrets flagged"
        Configuration = env.pool.get('sehat.opd.configuration')
        settings = {(s, o): (v, secret)
            for s, o, v, secret in Configuration.gateway_settings()}
        self.assertEqual(settings['sehat_opd_sms', 'provider'],
            ('generic', False))
        self.assertEqual(settings['sehat_opd_sms', 'webhook_secret'],
            ('hook-secret', True))
        self.assertTrue(settings['sehat_opd_sms', 'password'][1])


del ModuleTestCase
