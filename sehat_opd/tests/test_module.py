"Tests of the sehat_opd module: Tryton's checks, pure helpers, workflows."
import datetime as dt
import io
import unittest
import zlib

from PIL import Image

from trytond.modules.sehat_opd import tools, upload
from trytond.tests.test_tryton import ModuleTestCase

from .tools import (
    create_doctor, create_opd, create_patient, set_opd_open, with_sehat)


class SehatOpdTestCase(ModuleTestCase):
    "Test SeHAT OPD module"
    module = 'sehat_opd'

    @with_sehat
    def test_issue_numbers_and_positions(self, env):
        "Tokens are numbered per OPD and day; positions follow the queue"
        Token = env.pool.get('sehat.opd.token')
        opd = create_opd(env, 'GEN')
        other = create_opd(env, 'MED')
        patients = [create_patient(env, '98000000%02d' % i) for i in range(3)]
        first = Token.issue(patients[0], opd, "Fever")
        second = Token.issue(patients[1], opd, "Cough")
        third = Token.issue(patients[2], other, "Rash")
        self.assertEqual((first.number, second.number, third.number),
            (1, 2, 1))
        self.assertEqual(Token.status(patients[1].id)['position'], 2)
        self.assertEqual(first.appointment.appointment_type, 'telemedicine')
        self.assertEqual(first.appointment.patient, patients[0])

    @with_sehat
    def test_one_active_token(self, env):
        "A patient holds one active token at a time, whatever the OPD"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import Conflict
        opd = create_opd(env, 'GEN')
        other = create_opd(env, 'MED')
        patient = create_patient(env, '9800000100')
        token = Token.issue(patient, opd, "Fever")
        with self.assertRaises(Conflict):
            Token.issue(patient, other, "Again")
        Token.cancel([token])
        self.assertEqual(Token.issue(patient, other, "Again").number, 1)

    @with_sehat
    def test_closed_opd_names_next_opening(self, env):
        "A closed OPD refuses tokens and says when it opens"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import OPDClosed
        opd = create_opd(env, 'GEN', always=False)
        set_opd_open(opd, False)
        patient = create_patient(env, '9800000101')
        with self.assertRaises(OPDClosed) as cm:
            Token.issue(patient, opd, "Fever")
        self.assertIn('opens next on', cm.exception.message)

    @with_sehat
    def test_holiday_refused(self, env):
        "No token on a holiday, even within the hours"
        Token = env.pool.get('sehat.opd.token')
        Holiday = env.pool.get('sehat.opd.holiday')
        from trytond.modules.sehat_opd.exceptions import OPDClosed
        opd = create_opd(env, 'GEN')
        Holiday.create([{'opd': opd.id, 'date': opd.today(),
                    'name': 'Republic Day'}])
        patient = create_patient(env, '9800000102')
        with self.assertRaises(OPDClosed) as cm:
            Token.issue(patient, opd, "Fever")
        self.assertIn('holiday', cm.exception.message)

    @with_sehat
    def test_daily_cap(self, env):
        "The day's token cap is enforced"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import QueueFull
        opd = create_opd(env, 'GEN', daily_token_cap=2)
        for i in range(2):
            Token.issue(create_patient(env, '98000002%02d' % i), opd, "x")
        with self.assertRaises(QueueFull):
            Token.issue(create_patient(env, '9800000299'), opd, "x")

    @with_sehat
    def test_doctor_online_gets_next_patient(self, env):
        "A free online doctor is given the head of the queue at once"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.a', [opd])
        first = Token.issue(create_patient(env, '9800000300'), opd, "a")
        second = Token.issue(create_patient(env, '9800000301'), opd, "b")
        presence = Presence.of(doctor)
        presence.go_online(opd)
        self.assertEqual(Token(first.id).state, 'called')
        self.assertEqual(Token(first.id).healthprof, doctor)
        self.assertEqual(Token(second.id).state, 'waiting')
        self.assertEqual(Token.status(second.patient.id)['position'], 1)
        self.assertEqual(Presence(presence.id).current_token, Token(first.id))

    @with_sehat
    def test_missed_call_requeues_then_expires(self, env):
        "A missed Call Now sends the token to the back; the third expires it"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.b', [opd])
        late = Token.issue(create_patient(env, '9800000400'), opd, "a")
        other = Token.issue(create_patient(env, '9800000401'), opd, "b")
        Presence.of(doctor).go_online(opd)
        self.assertEqual(Token(late.id).state, 'called')
        self._pass_deadline(Token, late)
        Token.requeue_missed()
        late, other = Token(late.id), Token(other.id)
        self.assertEqual(late.state, 'waiting')
        self.assertEqual(late.missed_calls, 1)
        # the doctor was freed and given the next patient
        self.assertEqual(other.state, 'called')
        self.assertEqual(Token.status(late.patient.id)['position'], 1)
        Token.cancel([other])
        # just missed: not called again on its own (see test_queue.py)
        self.assertEqual(Token(late.id).state, 'waiting')
        for _ in range(2):
            Presence.of(doctor).call_next()
            self.assertEqual(Token(late.id).state, 'called')
            self._pass_deadline(Token, Token(late.id))
            Token.requeue_missed()
        self.assertEqual(Token(late.id).state, 'expired')
        self.assertEqual(Token(late.id).appointment.state, 'no_show')

    @staticmethod
    def _pass_deadline(Token, token):
        Token.write([token], {
                'call_deadline': dt.datetime.now() - dt.timedelta(seconds=1)})

    @with_sehat
    def test_answer_starts_and_complete_frees(self, env):
        "Call Now answered starts the consultation; completion frees"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.c', [opd])
        token = Token.issue(create_patient(env, '9800000500'), opd, "a")
        Presence.of(doctor).go_online(opd)
        token = Token(token.id)
        token.answer()
        self.assertEqual(Token(token.id).state, 'in_consultation')
        Token.complete([Token(token.id)])
        self.assertEqual(Token(token.id).state, 'completed')
        self.assertEqual(Token(token.id).appointment.state, 'done')
        self.assertFalse(Presence.of(doctor).current_token)

    @with_sehat
    def test_end_of_day_expiry(self, env):
        "Tokens of a day that has ended are expired by the cron job"
        Token = env.pool.get('sehat.opd.token')
        opd = create_opd(env, 'GEN')
        token = Token.issue(create_patient(env, '9800000600'), opd, "a")
        Token.write([token], {'date': token.date - dt.timedelta(days=1)})
        Token.cron_expire()
        self.assertEqual(Token(token.id).state, 'expired')

    @with_sehat
    def test_stale_doctor_dropped(self, env):
        "A doctor without heartbeat goes offline; their called patient is "
        "back at the head of the line"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.d', [opd])
        called = Token.issue(create_patient(env, '9800000700'), opd, "a")
        Token.issue(create_patient(env, '9800000701'), opd, "b")
        presence = Presence.of(doctor)
        presence.go_online(opd)
        Presence.write([presence], {
                'last_heartbeat': dt.datetime.now() - dt.timedelta(hours=1)})
        Presence.cron_drop_stale()
        self.assertFalse(Presence(presence.id).online)
        self.assertEqual(Token(called.id).state, 'waiting')
        self.assertEqual(Token.status(called.patient.id)['position'], 1)

    @with_sehat
    def test_settings_bounds(self, env):
        "Settings refuse values outside the safe bounds"
        Configuration = env.pool.get('sehat.opd.configuration')
        from trytond.model.exceptions import ValidationError
        config = Configuration(1)
        config.otp_validity = 16
        with self.assertRaises(ValidationError):
            config.save()


class ToolsTestCase(unittest.TestCase):
    "Pure helpers, without a database"

    def test_patient_id_roundtrip(self):
        for _ in range(200):
            code = tools.new_patient_id()
            self.assertRegex(code, r'^SH-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]$')
            self.assertEqual(tools.normalize_patient_id(code), code)
            self.assertEqual(tools.normalize_patient_id(
                    code.lower().replace('-', ' ')), code)

    def test_patient_id_catches_typos(self):
        "Every single-character change and neighbour swap is detected"
        code = tools.new_patient_id()
        compact = code.replace('-', '')[2:]
        for i in range(len(compact)):
            for char in tools.CROCKFORD:
                if char == compact[i]:
                    continue
                typo = compact[:i] + char + compact[i + 1:]
                self.assertIsNone(tools.normalize_patient_id(typo), typo)
        for i in range(len(compact) - 1):
            if compact[i] == compact[i + 1]:
                continue
            swapped = (compact[:i] + compact[i + 1] + compact[i]
                + compact[i + 2:])
            self.assertIsNone(tools.normalize_patient_id(swapped), swapped)

    def test_mobile(self):
        for text in ['9876543210', '+91 98765 43210', '09876543210',
                '919876543210', '98765-43210']:
            self.assertEqual(tools.normalize_mobile(text), '+919876543210')
        for text in ['5876543210', '987654321', '+14155552671',
                '01123456789', 'abc', '', None, 9876543210, '9' * 30]:
            self.assertIsNone(tools.normalize_mobile(text), text)

    def test_otp_hash(self):
        code = tools.new_otp_code()
        self.assertRegex(code, r'^\d{6}$')
        digest = tools.hash_secret(code, 'salt')
        self.assertNotIn(code, digest)
        self.assertTrue(tools.check_secret(code, 'salt', digest))
        self.assertFalse(tools.check_secret(code, 'other', digest))
        self.assertFalse(tools.check_secret('000000' if code != '000000'
                else '111111', 'salt', digest))

    def test_opening_hours(self):
        hours = [(d, dt.time(9), dt.time(17)) for d in range(6)]
        monday_10 = dt.datetime(2026, 11, 30, 10, 0)
        monday_8 = dt.datetime(2026, 11, 30, 8, 0)
        saturday_17 = dt.datetime(2026, 12, 5, 17, 0)
        self.assertTrue(tools.is_open(hours, set(), monday_10))
        self.assertFalse(tools.is_open(hours, set(), monday_8))
        self.assertFalse(tools.is_open(hours, {monday_10.date()}, monday_10))
        self.assertEqual(tools.next_opening(hours, set(), monday_8),
            dt.datetime(2026, 11, 30, 9, 0))
        # Saturday evening: Sunday is closed, next is Monday 09:00
        self.assertEqual(tools.next_opening(hours, set(), saturday_17),
            dt.datetime(2026, 12, 7, 9, 0))
        self.assertTrue(tools.is_open([], set(), monday_8, True))

    def test_eta(self):
        self.assertIsNone(tools.eta_seconds(3, 0, 600))
        self.assertEqual(tools.eta_seconds(1, 1, 600), 600)
        self.assertEqual(tools.eta_seconds(3, 2, 600), 1200)


def _png(width=4, height=4):
    data = io.BytesIO()
    Image.new('RGB', (width, height), 'white').save(data, 'PNG')
    return data.getvalue()


def _pdf(body):
    return b'%PDF-1.5\n' + body + b'trailer<</Root 1 0 R>>\n%%EOF\n'


class UploadTestCase(unittest.TestCase):
    "What an uploaded file is, decided by its content"
    limit = 5 * 1024 * 1024

    def check(self, data):
        return upload.check_file(data, self.limit)

    def refused(self, data):
        with self.assertRaises(upload.UploadRefused) as cm:
            self.check(data)
        return cm.exception.reason

    def test_accepts_documents(self):
        self.assertEqual(self.check(_png())[0], 'png')
        pdf = b'%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n'
        self.assertEqual(self.check(pdf), ('pdf', 'application/pdf'))
        for fmt, ext in [('JPEG', 'jpg'), ('GIF', 'gif'), ('BMP', 'bmp')]:
            data = io.BytesIO()
            Image.new('RGB', (4, 4)).save(data, fmt)
            self.assertEqual(self.check(data.getvalue())[0], ext)

    def test_refuses_executable_named_pdf(self):
        self.assertEqual(self.refused(b'MZ\x90\x00' + b'\x00' * 100), 'type')

    def test_refuses_oversize(self):
        big = _png() + b'\x00' * self.limit
        self.assertEqual(self.refused(big), 'too_big')

    def test_refuses_empty_truncated_active(self):
        self.assertEqual(self.refused(b''), 'empty')
        self.assertEqual(self.refused(_png(64, 64)[:60]), 'damaged')
        js = (b'%PDF-1.4\n1 0 obj<</OpenAction<</S/JavaScript/JS(app.alert(1))'
            b'>>>>endobj\n%%EOF\n')
        self.assertEqual(self.refused(js), 'active')
        polyglot = b'GIF89a<script>alert(1)</script>' + b'\x00' * 30
        self.assertEqual(self.refused(polyglot), 'active')

    def test_refuses_disguised_pdf_scripts(self):
        "Scripts written with name escapes, inside compressed object "
        "streams, or behind a string that looks like stream data"
        escaped = _pdf(b'1 0 obj<</Type/Catalog/OpenAction 2 0 R>>endobj\n'
            b'2 0 obj<</S/J#61vaScript/J#53(app.alert(1))>>endobj\n')
        self.assertEqual(self.refused(escaped), 'active')
        script = zlib.compress(b'2 0 <</S/JavaScript/JS(app.alert(1))>>')
        for dictionary in [b'/Type/ObjStm/N 1/First 4', b'/N 1/First 4']:
            packed = _pdf(b'4 0 obj<<%s/Filter/FlateDecode>>stream\n%s\n'
                b'endstream\nendobj\n' % (dictionary, script))
            self.assertEqual(self.refused(packed), 'active')
        hidden = _pdf(b'5 0 obj<</A (>>stream\n) /S/Launch/F(calc.exe) '
            b'/B (\nendstream)>>endobj\n')
        self.assertEqual(self.refused(hidden), 'active')
        self.assertEqual(self.refused(
                b'%PDF-1.4\n<html><script>alert(1)</script>\n%%EOF\n'),
            'active')

    def test_refuses_unreadable_object_streams(self):
        "An object stream that cannot be read could hide anything"
        for dictionary, data in [
                (b'/Filter/LZWDecode', b'\x80\x0b\x60\x50'),
                (b'/Filter/FlateDecode/DecodeParms<</Predictor 12>>',
                    zlib.compress(b'2 0 <<>>')),
                (b'/Filter/FlateDecode', b'not deflate'),
                (b'/Filter/FlateDecode', zlib.compress(
                        b' ' * (upload.PDF_INFLATE_LIMIT + 1)))]:
            pdf = _pdf(b'4 0 obj<</Type/ObjStm/N 1/First 4%s>>stream\n%s\n'
                b'endstream\nendobj\n' % (dictionary, data))
            self.assertEqual(self.refused(pdf), 'unchecked', dictionary)

    def test_accepts_ordinary_pdf_and_pictures(self):
        "Opening on the first page, a clean object stream, and compressed "
        "data that happens to hold '/JS' or '<svg' are no scripts"
        first_page = _pdf(b'1 0 obj<</Type/Catalog/OpenAction[3 0 R/Fit]>>'
            b'endobj\n4 0 obj<</Type/ObjStm/N 1/First 4/Filter/FlateDecode>>'
            b'stream\n%s\nendstream\nendobj\n5 0 obj<</Length 30/Filter'
            b'/DCTDecode>>stream\n\xff\xd8/JS /AA<svg \x00\nendstream\n'
            b'endobj\n' % zlib.compress(b'2 0 <</Type/Page>>'))
        self.assertEqual(self.check(first_page)[0], 'pdf')
        comment = b'\x93<svgZ\x00<imgs'
        jpeg = io.BytesIO()
        Image.new('RGB', (8, 8)).save(jpeg, 'JPEG')
        jpeg = jpeg.getvalue()
        jpeg = jpeg[:2] + b'\xff\xfe' + (len(comment) + 2).to_bytes(2, 'big'
            ) + comment + jpeg[2:]
        self.assertEqual(self.check(jpeg)[0], 'jpg')
        self.assertEqual(self.refused(jpeg.replace(b'<imgs', b'<img ')),
            'active')


class IdentityTestCase(unittest.TestCase):
    "Pure parts of registration, login and the portal's sessions"

    def registration(self, **values):
        data = {
            'name': 'Test Patient', 'gender': 'f', 'birth_date': '1985-04-12',
            'email': '', 'mobile': '9876543210', 'address': '12 Mall Road',
            'pincode': '411001', 'state': 'IN-MH', 'district': 'IN-MH-PUN',
            'city': 'Pune', 'beneficiary_category': 'serving',
            'service': 'army', 'service_number': 'IC-45678', 'rank': 'Major',
            }
        data.update(values)
        return data

    def test_registration_errors(self):
        from trytond.modules.sehat_opd.patient import registration_errors
        self.assertEqual(registration_errors(self.registration()), {})
        self.assertEqual(registration_errors(self.registration(
                    name='सुनीता देवी')), {})
        for field, value in [
                ('name', 'R2D2'), ('name', ''), ('gender', 'male'),
                ('birth_date', '1985-13-01'), ('email', 'a@b'),
                ('mobile', '+14155552671'), ('pincode', '4110011'),
                ('beneficiary_category', ''), ('service', 'marines'),
                ('service_number', 'x'), ('rank', ' ')]:
            errors = registration_errors(self.registration(**{field: value}))
            self.assertIn(field, errors, (field, value))
        dependant = self.registration(
            beneficiary_category='dependant', rank='', relation='son')
        self.assertEqual(registration_errors(dependant), {})
        veteran = self.registration(beneficiary_category='ex_serviceman')
        self.assertIn('echs_card', registration_errors(veteran))

    def test_token_number(self):
        from trytond.modules.sehat_opd.session import parse_token_number
        for value, number in [('7', 7), (' 12 ', 12), (99999, 99999),
                ('१२', 12)]:
            self.assertEqual(parse_token_number(value), number)
        for value in [None, '', '0', 0, -3, '1e3', 1.0, True, '²',
                '123456', [1]]:
            self.assertIsNone(parse_token_number(value), value)

    def test_lock_key_and_signature(self):
        key = tools.lock_key('otp', '+919876543210')
        self.assertEqual(key, tools.lock_key('otp', '+919876543210'))
        self.assertNotEqual(key, tools.lock_key('otp', '+919876543211'))
        self.assertTrue(-2 ** 63 <= key < 2 ** 63)
        self.assertTrue(tools.check_signature('abc', tools.sign('abc')))
        self.assertFalse(tools.check_signature('abd', tools.sign('abc')))
        self.assertFalse(tools.check_signature('abc', None))

    def request(self, url, cookies=None):
        from werkzeug.test import EnvironBuilder
        from trytond.protocols.wrappers import Request
        builder = EnvironBuilder(base_url=url.split('/db/')[0],
            path='/db/' + url.split('/db/')[1])
        for name, value in (cookies or {}).items():
            builder.headers.add('Cookie', '%s=%s' % (name, value))
        request = Request(builder.get_environ())
        request.view_args = {'database_name': 'db'}
        return request

    def test_session_cookie_secure_over_https(self):
        "HttpOnly, SameSite=Lax, portal path; Secure when served over HTTPS"
        from trytond.modules.sehat_opd import web
        from trytond.protocols.wrappers import Response
        for url, secure in [('https://opd.example/db/opd/api/v1/session', True),
                ('http://127.0.0.1/db/opd/api/v1/session', False)]:
            response = Response()
            web.session_cookie(response, self.request(url),
                web.PATIENT_COOKIE, 'key')
            cookie = response.headers['Set-Cookie']
            self.assertIn('HttpOnly', cookie)
            self.assertIn('SameSite=Lax', cookie)
            self.assertIn('Path=/db/opd', cookie)
            self.assertEqual('Secure' in cookie, secure, url)

    def test_flow_cookie(self):
        "The steps of registration survive a reload, and cannot be forged"
        from trytond.modules.sehat_opd import pages
        from trytond.protocols.wrappers import Response
        url = 'http://127.0.0.1/db/opd/register'
        response = Response()
        pages.write_flow(response, self.request(url), 'register',
            step='otp', otp_id=7, mobile='+919876543210')
        value = response.headers['Set-Cookie'].split(';')[0].split('=', 1)[1]
        request = self.request(url, {pages.FLOW_COOKIE: value})
        flow = pages.read_flow(request, 'register')
        self.assertEqual((flow['step'], flow['otp_id']), ('otp', 7))
        self.assertIsNone(pages.read_flow(request, 'login'))
        payload, signature = value.rsplit('.', 1)
        forged = self.request(url, {pages.FLOW_COOKIE: payload + '.' + (
                    '0' * len(signature))})
        self.assertIsNone(pages.read_flow(forged, 'register'))

    def test_safe_next(self):
        "Login only sends back to a page of the portal"
        from trytond.modules.sehat_opd.pages import safe_next
        request = self.request('http://127.0.0.1/db/opd/login')
        self.assertEqual(safe_next(request, '/db/opd/waiting'),
            '/db/opd/waiting')
        for target in [None, 'https://evil.example/', '//evil.example/x',
                '/other/opd/x', '/db/opd//evil', '/db/opd/x y', '/db/opdx']:
            self.assertEqual(safe_next(request, target), '/db/opd/profile',
                target)

    def test_display_mobile(self):
        from trytond.modules.sehat_opd.pages import display_mobile
        self.assertEqual(display_mobile('+919876543210'), '+91 98765 43210')
        self.assertEqual(display_mobile(None), '')


del ModuleTestCase
