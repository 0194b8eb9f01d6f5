"""Unit tests of sehat_opd_sms's pure functions (no database): DLT
templates, SMS segments, each gateway's request and answers, receipts,
e-mail."""
import base64
import json
import unittest
import urllib.parse

from trytond.modules.sehat_opd_sms import dispatch, dlt, gateway, mailing


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
