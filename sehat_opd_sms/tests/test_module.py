"""Tests of sehat_opd_sms: Tryton's checks, the pure DLT/gateway functions,
and the outbox against a real HTTP gateway and SMTP server on 127.0.0.1."""
import base64
import datetime as dt
import json
import os
import threading
import time
import unittest
import urllib.parse
from unittest import mock

from trytond.modules.sehat_opd.tests.tools import create_patient, with_sehat
from trytond.modules.sehat_opd_sms import dispatch, dlt, gateway, mailing
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, ModuleTestCase
from trytond.transaction import Transaction

from .fake_gateway import FakeGateway, FakeSMTP

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


def settings(**values):
    "Gateway settings as the module reads them, from plain values."
    return gateway.load_settings(lambda option, default: values.get(
            option, default))


SMS = {
    'mobile': '+919876543210', 'text': 'Hello', 'unicode': False,
    'event': 'otp', 'category': 'service_implicit', 'reference': 'ref-1',
    'dlt_template_id': '1107161234567890123', 'template_id': 'tpl-1',
    'fills': ['482913', '10'], 'callback_url': None, 'priority': 0,
    }


class SegmentTestCase(unittest.TestCase):
    "GSM-7 and UCS-2 segment rules"

    def test_gsm_limits(self):
        "160 GSM characters in one SMS, then parts of 153"
        self.assertEqual(dlt.segments('a' * 160), ('gsm7', 1, 160))
        self.assertEqual(dlt.segments('a' * 161)[1], 2)
        self.assertEqual(dlt.segments('a' * 306)[1], 2)
        self.assertEqual(dlt.segments('a' * 307)[1], 3)

    def test_gsm_extension_counts_twice(self):
        "Extension characters (€, [, ]) take two septets and stay whole"
        self.assertEqual(dlt.segments('€' * 80), ('gsm7', 1, 160))
        self.assertEqual(dlt.segments('€' * 81)[1], 2)
        # 152 septets then an escaped character: it moves to part 2
        self.assertEqual(dlt.segments('a' * 152 + '€' + 'a' * 10)[1], 2)
        self.assertEqual(dlt.segments('a' * 152 + '€' + 'a' * 152)[1], 3)

    def test_ucs2_limits(self):
        "Hindi is Unicode: 70 characters, then parts of 67"
        self.assertEqual(dlt.encoding('नमस्ते'), 'ucs2')
        self.assertEqual(dlt.segments('क' * 70), ('ucs2', 1, 70))
        self.assertEqual(dlt.segments('क' * 71)[1], 2)
        self.assertEqual(dlt.segments('क' * 134)[1], 2)
        self.assertEqual(dlt.segments('क' * 135)[1], 3)

    def test_one_foreign_letter_makes_unicode(self):
        "A single character outside GSM-7 switches the whole SMS to UCS-2"
        self.assertEqual(dlt.encoding('Cafe'), 'gsm7')
        self.assertEqual(dlt.encoding('Café'), 'gsm7')  # é is in GSM-7
        self.assertEqual(dlt.encoding('Façade'), 'ucs2')  # ç is not
        self.assertEqual(dlt.segments('a' * 100 + 'ç'), ('ucs2', 2, 101))

    def test_surrogate_pairs_not_split(self):
        "An emoji takes two UCS-2 units and is never cut in half"
        self.assertEqual(dlt.segments('😀' * 35), ('ucs2', 1, 70))
        # 134 units would fill two parts of 67, but the pair cannot
        # straddle them
        self.assertEqual(dlt.segments('a' * 66 + '😀' + 'a' * 66),
            ('ucs2', 3, 134))


class TemplateFunctionTestCase(unittest.TestCase):
    "Rendering and checking DLT templates"

    OTP = ('{#var#} is your SeHAT OPD OTP. It is valid for {#var#} minutes.'
        ' Do not share it with anyone.')

    def test_render_fits(self):
        text, fills = dlt.render(self.OTP, ['otp', 'minutes'],
            {'otp': '482913', 'minutes': 10})
        self.assertTrue(text.startswith('482913 is your SeHAT OPD OTP.'))
        self.assertEqual(fills, ['482913', '10'])
        self.assertTrue(dlt.fits(self.OTP, text))

    def test_altered_message_does_not_fit(self):
        "The scrubber's rule: literal text exact, each variable <= 30"
        self.assertFalse(dlt.fits(self.OTP,
                '482913 is your OTP. It is valid for 10 minutes.'))
        self.assertFalse(dlt.fits(self.OTP, self.OTP.replace(
                    '{#var#}', 'x' * 31, 1).replace('{#var#}', '10')))

    def test_long_values(self):
        "Long names are cut, long codes or links refused, runs hold more"
        template = 'Hello {#var#}, token {#var#}.'
        text, _ = dlt.render(template, ['name', 'token'],
            {'name': 'N' * 40, 'token': 7}, truncate={'name'})
        self.assertEqual(text, 'Hello %s, token 7.' % ('N' * 30))
        with self.assertRaises(dlt.TemplateError):
            dlt.render(template, ['name', 'token'],
                {'name': 'Asha', 'token': '9' * 31})
        link = 'https://opd.example.in/sehat/opd/prescriptions/42.pdf'
        template = 'Download: {#var#}{#var#}'
        text, fills = dlt.render(template, ['link', 'link'], {'link': link})
        self.assertEqual(text, 'Download: ' + link)
        self.assertEqual(''.join(fills), link)
        self.assertTrue(dlt.fits(template, text))
        self.assertEqual(dlt.expand(template, ['link', 'link'],
                {'link': link}), 'Download: ' + link)

    def test_check_template(self):
        with self.assertRaises(dlt.TemplateError):
            dlt.check_template(self.OTP, ['otp'])
        with self.assertRaises(dlt.TemplateError):
            dlt.check_template(self.OTP, ['otp', 'hours'], {'otp', 'minutes'})
        dlt.check_template(self.OTP, ['otp', 'minutes'], {'otp', 'minutes'})

    def test_values_on_one_line(self):
        text, _ = dlt.render('Hi {#var#}.', ['name'], {'name': ' A\n B '})
        self.assertEqual(text, 'Hi A B.')


class GatewayFunctionTestCase(unittest.TestCase):
    "Building each provider's request and reading its answers"

    def test_generic_json(self):
        config = settings(provider='generic', url='https://gw.example/sms',
            api_key='k3y', idempotency_header='Idempotency-Key',
            params=json.dumps({'to': '{mobile_digits}', 'message': '{text}',
                    'tid': '{dlt_template_id}', 'pe': '{dlt_entity_id}'}),
            dlt_entity_id='1101')
        request = gateway.build_request(config, SMS)
        self.assertEqual((request.method, request.url),
            ('POST', 'https://gw.example/sms'))
        self.assertEqual(json.loads(request.body), {'to': '919876543210',
                'message': 'Hello', 'tid': '1107161234567890123',
                'pe': '1101'})
        self.assertEqual(request.headers['Authorization'], 'Bearer k3y')
        self.assertEqual(request.headers['Idempotency-Key'], 'ref-1')

    def test_generic_query_and_form(self):
        config = settings(provider='generic', method='GET', body='query',
            url='https://gw.example/send?account=7',
            params='{"to": "{mobile_national}", "msg": "{text}"}')
        request = gateway.build_request(config, dict(SMS, text='a b&c'))
        self.assertEqual(request.url,
            'https://gw.example/send?account=7&to=9876543210&msg=a+b%26c')
        self.assertIsNone(request.body)
        config = settings(provider='generic', body='form',
            url='https://gw.example/send')
        request = gateway.build_request(config, SMS)
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        self.assertEqual(form['to'], '+919876543210')
        self.assertNotIn('sender', form)  # empty options are left out

    def test_generic_bad_placeholder(self):
        config = settings(provider='generic', url='https://gw.example',
            params='{"to": "{phone}"}')
        with self.assertRaises(gateway.GatewayConfigError):
            gateway.build_request(config, SMS)

    def test_gupshup(self):
        "Gupshup: userid/password, send_to, msg_type, DLT ids"
        config = settings(provider='gupshup', user='2000123456',
            password='secret', sender='SEHATO', dlt_entity_id='1101')
        request = gateway.build_request(config, dict(SMS, unicode=True))
        self.assertEqual(request.url,
            'https://enterprise.smsgupshup.com/GatewayAPI/rest')
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        self.assertEqual(form, {
                'method': 'SendMessage', 'userid': '2000123456',
                'password': 'secret', 'auth_scheme': 'plain', 'v': '1.1',
                'format': 'text', 'send_to': '919876543210', 'msg': 'Hello',
                'msg_type': 'Unicode_text', 'mask': 'SEHATO',
                'principalEntityId': '1101',
                'dltTemplateId': '1107161234567890123'})
        answer = gateway.classify(config, 200,
            'success | 919876543210 | 3562707498794989059-3287')
        self.assertEqual(answer, ('sent', '3562707498794989059-3287',
                'success | 919876543210 | 3562707498794989059-3287'))
        self.assertEqual(gateway.classify(config, 200,
                'error | 105 | Invalid password').status, 'fatal')

    def test_exotel(self):
        "Exotel: basic auth, From/To/Body, DltEntityId/DltTemplateId"
        config = settings(provider='exotel', account_sid='sehat1',
            api_key='key', api_token='tok', sender='SEHATO',
            dlt_entity_id='1101')
        request = gateway.build_request(config,
            dict(SMS, callback_url='https://opd/cb'))
        self.assertEqual(request.url,
            'https://api.exotel.com/v1/Accounts/sehat1/Sms/send.json')
        self.assertEqual(request.headers['Authorization'],
            'Basic ' + base64.b64encode(b'key:tok').decode())
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        self.assertEqual(form['DltTemplateId'], '1107161234567890123')
        self.assertEqual(form['DltEntityId'], '1101')
        self.assertEqual(form['EncodingType'], 'plain')
        self.assertEqual(form['CustomField'], 'ref-1')
        self.assertEqual(form['StatusCallback'], 'https://opd/cb')
        self.assertEqual(form['Priority'], 'high')
        answer = gateway.classify(config, 200,
            '{"SMSMessage": {"Sid": "b6f0e1", "Status": "queued"}}')
        self.assertEqual(answer[:2], ('sent', 'b6f0e1'))
        self.assertEqual(gateway.classify(config, 400, 'Invalid').status,
            'fatal')

    def test_msg91(self):
        "MSG91: authkey header, template_id, recipients with VAR1..n"
        config = settings(provider='msg91', api_key='authk', sender='SEHATO')
        request = gateway.build_request(config, SMS)
        self.assertEqual(request.headers['authkey'], 'authk')
        body = json.loads(request.body)
        self.assertEqual(body['template_id'], 'tpl-1')
        self.assertEqual(body['recipients'], [{'mobiles': '919876543210',
                    'VAR1': '482913', 'VAR2': '10'}])
        self.assertEqual(gateway.classify(config, 200,
                '{"type": "success", "message": "3661"}')[:2],
            ('sent', '3661'))
        self.assertEqual(gateway.classify(config, 200,
                '{"type": "error", "message": "no"}').status, 'fatal')
        with self.assertRaises(gateway.GatewayConfigError):
            gateway.build_request(config, dict(SMS, template_id=None))

    def test_settings_checked(self):
        with self.assertRaises(gateway.GatewayConfigError):
            gateway.check_settings(settings(provider='gupshup'))
        with self.assertRaises(gateway.GatewayConfigError):
            gateway.check_settings(settings(provider='twilio'))
        with self.assertRaises(gateway.GatewayConfigError):
            settings(provider='generic', params='[1]')

    def test_classify_statuses(self):
        "5xx, 429, timeouts are retried; other 4xx are not"
        config = settings(provider='generic', url='x', response_id='data.id')
        self.assertEqual(gateway.classify(config, 200,
                '{"data": {"id": 9}}')[:2], ('sent', '9'))
        for status in [500, 502, 503, 429, 408]:
            self.assertEqual(
                gateway.classify(config, status, '').status, 'retry')
        for status in [400, 401, 403, 404, 422]:
            self.assertEqual(
                gateway.classify(config, status, '').status, 'fatal')
        self.assertEqual(gateway.classify(config, None, 'timeout').status,
            'retry')

    def test_receipts(self):
        "Each provider's delivery report is read"
        config = settings(provider='generic')
        self.assertEqual(gateway.parse_receipts(config, 'generic',
                {'json': {'id': 'gw-1', 'status': 'DELIVERED'}}),
            [('gw-1', None, 'delivered', 'delivered')])
        self.assertEqual(gateway.parse_receipts(config, 'gupshup',
                {'args': {'externalId': '35-32', 'status': 'FAILURE',
                        'cause': 'ABSENT_SUBSCRIBER'}})[0][:3],
            ('35-32', None, 'failed'))
        self.assertEqual(gateway.parse_receipts(config, 'gupshup',
                {'json': [{'externalId': '1', 'eventType': 'DELIVERED'},
                        {'externalId': '2', 'eventType': 'FAILED'}]}),
            [('1', None, 'delivered', 'DELIVERED'),
                ('2', None, 'failed', 'FAILED')])
        self.assertEqual(gateway.parse_receipts(config, 'exotel',
                {'form': {'SmsSid': 'b6f0e1', 'Status': 'failed_dnd',
                        'CustomField': 'ref-1', 'DetailedStatus': 'DND'}}),
            [('b6f0e1', 'ref-1', 'failed', 'DND')])
        report = json.dumps([{'requestId': '3661', 'report': [
                        {'number': '919876543210', 'status': '1',
                            'desc': 'DELIVERED'}]}])
        self.assertEqual(gateway.parse_receipts(config, 'msg91',
                {'form': {'data': report}}),
            [('3661', None, 'delivered', 'DELIVERED')])
        self.assertEqual(gateway.parse_receipts(config, 'unknown', {}), [])


class MailFunctionTestCase(unittest.TestCase):

    def test_email_parts(self):
        "Text and HTML parts; links clickable; markup escaped"
        message = mailing.build_email('SeHAT OPD <opd@example.in>',
            'asha@example.in', 'Ready', 'Rx <b> at https://x.in/a?b=1&c=2',
            'en', 'ref-9')
        text, html = [p.get_content() for p in message.iter_parts()]
        self.assertIn('Rx <b> at https://x.in/a?b=1&c=2', text)
        self.assertIn('Rx &lt;b&gt;', html)
        self.assertIn('<a href="https://x.in/a?b=1&amp;c=2">', html)
        self.assertIn('ref-9', message['Message-ID'])

    def test_backoff(self):
        self.assertEqual([dispatch.backoff(30, n) for n in range(1, 5)],
            [30, 60, 120, 240])
        self.assertEqual(dispatch.backoff(30, 20), dispatch.MAX_DELAY)


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
            self.gateway.set_mode('ok')
            # one request taken but answered too late: the sender retries
            self.gateway.fail_next(1, 'hang')
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
        Message.dispatch(now=dt.datetime.now() + dt.timedelta(hours=2))
        accepted = [r.params['reference'] for r in self.gateway.accepted]
        self.assertEqual(sorted(accepted), sorted(references))  # once each
        self.assertEqual(len(self.gateway.duplicates), 1)
        modes = {r['mode'] for r in self.gateway.requests}
        self.assertTrue({'close', 'error', 'hang', 'ok'} <= modes, modes)
        Transaction().commit()  # a new snapshot, to read the workers' work
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
