"""Roles and record rules, the access log, the contact form, the settings
and the reports of sehat_opd."""
import datetime as dt
import io
import os
import unittest
from contextlib import contextmanager
from unittest.mock import patch

from PIL import Image

from trytond.model.exceptions import AccessError
from trytond.modules.sehat_opd import captcha
from trytond.modules.sehat_opd.configuration import mask_setting
from trytond.modules.sehat_opd.report import percentile
from trytond.pool import Pool
from trytond.tests.test_tryton import activate_module, drop_db
from trytond.transaction import Transaction, check_access

from .tools import (
    create_doctor, create_institution, create_opd, create_patient, with_sehat)


def _png():
    data = io.BytesIO()
    Image.new('RGB', (4, 4), 'white').save(data, 'PNG')
    return data.getvalue()


@contextmanager
def as_user(user_id):
    "Act as a back-office user over RPC: access rights and rules apply."
    with Transaction().set_user(user_id), check_access():
        yield


def add_groups(user, *xml_ids):
    pool = Pool()
    ModelData = pool.get('ir.model.data')
    User = pool.get('res.user')
    User.write([user], {'groups': [('add', [
                        ModelData.get_id('sehat_opd', x) for x in xml_ids])]})


def create_company(institution):
    pool = Pool()
    Currency = pool.get('currency.currency')
    Company = pool.get('company.company')
    currencies = Currency.search([('code', '=', 'INR')])
    if not currencies:
        currencies = Currency.create([{
                    'name': 'Indian Rupee', 'code': 'INR', 'symbol': 'Rs'}])
    company, = Company.create([{
                'party': institution.party.id, 'currency': currencies[0].id}])
    return company


def create_state(code='IN-MH', name='Maharashtra'):
    pool = Pool()
    Country = pool.get('country.country')
    Subdivision = pool.get('country.subdivision')
    countries = Country.search([('code', '=', 'IN')])
    if not countries:
        countries = Country.create([{'name': 'India', 'code': 'IN'}])
    state, = Subdivision.create([{
                'country': countries[0].id, 'code': code, 'name': name,
                'type': 'state'}])
    return state


class RolesTestCase(unittest.TestCase):
    "Who sees what in the back office, and what they are shown"

    @classmethod
    def setUpClass(cls):
        drop_db()
        activate_module(['sehat_opd'])
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        drop_db()

    def setUp(self):
        from trytond.modules.sehat_opd.access_log import forget_seen
        forget_seen()

    def _two_opds(self, env):
        """OPD A of institution A with doctor A, OPD B of institution B with
        doctor B, a token with a file in each, and staff of institution A."""
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        User = pool.get('res.user')
        inst_a = create_institution(env, 'INST-A')
        inst_b = create_institution(env, 'INST-B')
        opd_a = create_opd(env, 'OPDA', institution=inst_a.id)
        opd_b = create_opd(env, 'OPDB', institution=inst_b.id)
        doctor_a = create_doctor(env, 'dr.a', [opd_a])
        doctor_b = create_doctor(env, 'dr.b', [opd_b])
        for doctor in [doctor_a, doctor_b]:
            add_groups(doctor.party.internal_user, 'group_sehat_doctor')
        company = create_company(inst_a)
        staff, = User.create([{
                    'login': 'staff.a', 'name': 'Staff A',
                    'companies': [('add', [company.id])],
                    'company': company.id}])
        add_groups(staff, 'group_sehat_staff')
        patient_a = create_patient(env, '9811100001')
        patient_b = create_patient(env, '9811100002')
        token_a = Token.issue(patient_a, opd_a, "Fever", [('a.png', _png())])
        token_b = Token.issue(patient_b, opd_b, "Rash", [('b.png', _png())])
        return {
            'doctor_a': doctor_a.party.internal_user.id,
            'doctor_b': doctor_b.party.internal_user.id,
            'staff_a': staff.id,
            'token_a': token_a, 'token_b': token_b,
            'patient_a': patient_a, 'patient_b': patient_b,
            }

    @with_sehat
    def test_doctor_sees_only_own_opds(self, env):
        "A doctor of OPD A reads A's tokens, patients and files, not B's"
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        Patient = pool.get('gnuhealth.patient')
        Attachment = pool.get('ir.attachment')
        Message = pool.get('sehat.opd.message')
        Record = pool.get('sehat.opd.record')
        s = self._two_opds(env)
        file_a, = Record.list(s['token_a'])
        file_b, = Record.list(s['token_b'])
        Message.create([
                {'token': s['token_a'].id, 'sender': 'patient', 'text': 'a'},
                {'token': s['token_b'].id, 'sender': 'patient', 'text': 'b'},
                ])
        patients = [s['patient_a'].id, s['patient_b'].id]
        with as_user(s['doctor_a']):
            self.assertEqual(Token.search([]), [s['token_a']])
            self.assertEqual(Token.read([s['token_a'].id], ['number'])[0][
                    'number'], s['token_a'].number)
            with self.assertRaises(AccessError):
                Token.read([s['token_b'].id], ['number'])
            self.assertEqual(
                Patient.search([('id', 'in', patients)]), [s['patient_a']])
            with self.assertRaises(AccessError):
                Patient.read([s['patient_b'].id], ['patient_code'])
            self.assertEqual([m.text for m in Message.search([])], ['a'])
            self.assertEqual(Attachment.search([
                        ('id', 'in', [file_a.id, file_b.id])]), [file_a])
            Attachment.read([file_a.id], ['data'])
            with self.assertRaises(AccessError):
                # by id: Tryton alone checks only the model access here
                Attachment.read([file_b.id], ['data'])
        with as_user(s['doctor_b']):
            self.assertEqual(Token.search([]), [s['token_b']])

    @with_sehat
    def test_staff_see_their_institution(self, env):
        "Staff see the tokens of their institution's OPDs; admins all"
        Token = env.pool.get('sehat.opd.token')
        s = self._two_opds(env)
        with as_user(s['staff_a']):
            self.assertEqual(Token.search([]), [s['token_a']])
            with self.assertRaises(AccessError):
                Token.read([s['token_b'].id], ['number'])
        with as_user(1):
            self.assertEqual(set(Token.search([])),
                {s['token_a'], s['token_b']})

    @with_sehat
    def test_scope_follows_opd_membership(self, env):
        "Adding a doctor to an OPD opens its tokens to them at once"
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        OPD = pool.get('sehat.opd')
        s = self._two_opds(env)
        with as_user(s['doctor_a']):
            self.assertEqual(len(Token.search([])), 1)
        doctor_a = pool.get('gnuhealth.healthprofessional').of_user(
            s['doctor_a'])
        OPD.write([s['token_b'].opd], {'doctors': [('add', [doctor_a.id])]})
        with as_user(s['doctor_a']):
            self.assertEqual(len(Token.search([])), 2)

    @with_sehat
    def test_access_log(self, env):
        "Reading a token or a file in the back office is logged once"
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        Attachment = pool.get('ir.attachment')
        AccessLog = pool.get('sehat.opd.access_log')
        Record = pool.get('sehat.opd.record')
        s = self._two_opds(env)
        token = s['token_a']
        file_a, = Record.list(token)
        with as_user(s['doctor_a']):
            Token.read([token.id], ['number', 'patient.rec_name'])
            Token.read([token.id], ['number'])
            Attachment.read([file_a.id], ['name'])
            Attachment.read([file_a.id], ['name', 'data'])
            with self.assertRaises(AccessError):
                AccessLog.search([])
        logs = AccessLog.search([('user', '=', s['doctor_a'])],
            order=[('id', 'ASC')])
        self.assertEqual([(l.what, l.token, l.patient) for l in logs], [
                ('record', token, s['patient_a']),
                ('file', token, s['patient_a']),
                ])
        # root (the portal, the console's own reads) is not logged
        Token.read([token.id], ['number'])
        self.assertEqual(AccessLog.search_count([('user', '=', 0)]), 0)

    @with_sehat
    def test_access_log_keeps_the_transaction(self, env):
        "The console's read goes on when its access log row meets a "
        "concurrent change (the row is written after the commit instead)"
        from trytond import backend
        from trytond.modules.sehat_opd.access_log import _LogWriter
        if backend.name != 'postgresql':
            self.skipTest('row locks of PostgreSQL')
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        AccessLog = pool.get('sehat.opd.access_log')
        s = self._two_opds(env)
        token = s['token_a']
        transaction = Transaction()
        # the user row is locked and changed after this transaction began,
        # as the queue's routes do with tokens: at REPEATABLE READ the
        # foreign key check of the log row cannot lock it
        with transaction.new_transaction() as other:
            cursor = other.connection.cursor()
            cursor.execute('SELECT id FROM res_user WHERE id = 1 FOR UPDATE')
            cursor.execute(
                'UPDATE res_user SET write_date = write_date WHERE id = 1')
            other.commit()
        AccessLog.opened('console', 'sehat.opd.token', [token.id],
            user_id=1)
        self.assertEqual(Token.search([('id', '=', token.id)]), [token])
        writers = [d for d in transaction._datamanagers
            if isinstance(d, _LogWriter)]
        self.assertEqual([len(w.vlist) for w in writers], [1])

    @with_sehat
    def test_contact_needs_captcha(self, env):
        "The contact form is refused without a solved CAPTCHA, once only"
        pool = env.pool
        Contact = pool.get('sehat.opd.contact')
        from trytond.modules.sehat_opd.contact import captcha_secret
        create_state()
        form = {
            'first_name': 'Ravi', 'last_name': 'Kumar',
            'mobile': '98765 43210', 'email': 'ravi@example.com',
            'city': 'Pune', 'state': 'IN-MH',
            'message': 'The OTP does not arrive on my phone.',
            }
        contact, error = Contact.submit(dict(form), '10.0.0.1')
        self.assertIsNone(contact)
        self.assertEqual((error.status, error.field), (422, 'captcha'))

        token, code = captcha.new_challenge(captcha_secret(), 16)
        contact, error = Contact.submit(
            dict(form, captcha=token, captcha_answer='XXXXX'), '10.0.0.1')
        self.assertEqual(error.field, 'captcha')
        # a challenge is spent by its first use, even a wrong one
        contact, error = Contact.submit(
            dict(form, captcha=token, captcha_answer=code), '10.0.0.1')
        self.assertEqual(error.field, 'captcha')

        token, code = captcha.new_challenge(captcha_secret(), 16)
        contact, error = Contact.submit(
            dict(form, captcha=token, captcha_answer=code.lower()),
            '10.0.0.1')
        self.assertIsNone(error)
        self.assertRegex(contact.reference, r'^CR-[0-9A-Z]{8}$')
        self.assertEqual(contact.mobile, '+919876543210')
        self.assertEqual(contact.subdivision.code, 'IN-MH')
        self.assertEqual(contact.state, 'new')

        token, _ = captcha.new_challenge(captcha_secret(), 8)
        contact, error = Contact.submit(dict(form, message='short',
                captcha=token, captcha_nonce=captcha.solve_pow(token, 8)),
            '10.0.0.1')
        self.assertEqual(error.field, 'message')

    @with_sehat
    def test_contact_rate_limited(self, env):
        "An address cannot send more than the configured attempts per hour"
        Contact = env.pool.get('sehat.opd.contact')
        Configuration = env.pool.get('sehat.opd.configuration')
        from trytond.modules.sehat_opd.exceptions import TooManyRequests
        config = Configuration(1)
        config.contact_per_address_hour = 2
        config.save()
        for _ in range(2):
            Contact.submit({}, '10.0.0.2')
        with self.assertRaises(TooManyRequests):
            Contact.submit({}, '10.0.0.2')
        # another address is not affected
        _, error = Contact.submit({}, '10.0.0.3')
        self.assertEqual(error.field, 'captcha')

    @with_sehat
    def test_contact_answer(self, env):
        "Staff close a request by recording their answer"
        pool = env.pool
        Contact = pool.get('sehat.opd.contact')
        from trytond.model.exceptions import ValidationError
        state = create_state()
        contact, = Contact.create([{
                    'reference': 'CR-TEST0001', 'first_name': 'Asha',
                    'mobile': '+919876543211', 'city': 'Pune',
                    'subdivision': state.id, 'message': 'A question.'}])
        with self.assertRaises(ValidationError):
            Contact.mark_answered([contact])
        contact.answer = 'Called back, OTP issue solved.'
        contact.save()
        Contact.mark_answered([contact])
        self.assertEqual(contact.state, 'answered')
        self.assertEqual(contact.answered_by.id, 1)
        Contact.reopen([contact])
        self.assertEqual((contact.state, contact.answered_by),
            ('new', None))

    @with_sehat
    def test_settings_validation_and_gateways(self, env):
        "Settings refuse a resend delay past the OTP's life; secrets masked"
        Configuration = env.pool.get('sehat.opd.configuration')
        from trytond.model.exceptions import ValidationError
        config = Configuration(1)
        config.otp_validity = 1
        config.otp_resend_after = 60
        with self.assertRaises(ValidationError):
            config.save()
        config = Configuration(1)
        config.captcha_bits = 30
        with self.assertRaises(ValidationError):
            config.save()
        with patch.dict(os.environ, {
                    'TRYTOND_SEHAT_OPD__SECRET': 'do-not-show-me'}):
            text = Configuration(1).gateways
        self.assertIn('[sehat_opd]', text)
        self.assertIn('secret = (set, hidden)', text)
        self.assertNotIn('do-not-show-me', text)

    @with_sehat
    def test_report_figures(self, env):
        "Day and doctor figures equal those computed by hand"
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        OPDDay = pool.get('sehat.opd.report')
        DoctorDay = pool.get('sehat.opd.report.doctor')
        opd = create_opd(env, 'RPT')
        other = create_opd(env, 'OTHER')
        doc1 = create_doctor(env, 'dr.one', [opd])
        doc2 = create_doctor(env, 'dr.two', [opd])
        day = dt.date(2026, 1, 12)
        before = day - dt.timedelta(days=1)

        def at(hour, minute, date=day):
            return dt.datetime.combine(date, dt.time(hour, minute))
        # (state, date, doctor, created, called, started, ended, missed)
        fixture = [
            ('completed', day, doc1, at(10, 0), at(10, 10), at(10, 11),
                at(10, 21), 0),
            ('completed', day, doc1, at(10, 0), at(10, 20), at(10, 20),
                at(10, 50), 0),
            ('completed', day, doc2, at(10, 5), at(10, 45), at(10, 46),
                at(10, 51), 1),
            ('cancelled', day, None, at(11, 0), None, None, None, 1),
            ('expired', day, None, at(11, 30), None, None, None, 3),
            ('waiting', day, None, at(12, 0), None, None, None, 0),
            ('completed', before, doc1, at(9, 0, before), at(9, 4, before),
                at(9, 5, before), at(9, 11, before), 0),
            ]
        table = Token.__table__()
        cursor = Transaction().connection.cursor()
        for i, (state, date, doctor, created, called, started, ended,
                missed) in enumerate(fixture):
            token = Token.issue(
                create_patient(env, '98222000%02d' % i), opd, "x")
            cursor.execute(*table.update(
                    [table.state, table.date, table.healthprof,
                        table.create_date, table.called_at,
                        table.started_at, table.ended_at,
                        table.missed_calls],
                    [state, date, doctor.id if doctor else None, created,
                        called, started, ended, missed],
                    where=table.id == token.id))
        Token.issue(create_patient(env, '9822200099'), other, "x")

        def figures():
            with Transaction().set_context(
                    from_date=before, to_date=day, opd=opd.id):
                days = OPDDay.search([], order=[('date', 'ASC')])
                doctors = DoctorDay.search([], order=[('date', 'ASC')])
                return ([(d.date, d.issued, d.consulted, d.cancelled,
                            d.expired, d.in_progress, d.missed_calls,
                            d.wait_median, d.wait_p90,
                            d.consultation_median, d.consultation_p90)
                        for d in OPDDay.browse(days)],
                    sorted((d.date, d.healthprof.id, d.consultations,
                            d.consultation_median, d.consultation_p90)
                        for d in DoctorDay.browse(doctors)))
        # waits 10, 20, 40 min: median 20, p90 20 + 0.8 * 20 = 36
        # consultations 10, 30, 5 min: median 10, p90 10 + 0.8 * 20 = 26
        expected_days = [
            (before, 1, 1, 0, 0, 0, 0, 4.0, 4.0, 6.0, 6.0),
            (day, 6, 3, 1, 1, 1, 5, 20.0, 36.0, 10.0, 26.0),
            ]
        # dr.one: 10 and 30 min: median 20, p90 10 + 0.9 * 20 = 28
        expected_doctors = sorted([
                (before, doc1.id, 1, 6.0, 6.0),
                (day, doc1.id, 2, 20.0, 28.0),
                (day, doc2.id, 1, 5.0, 5.0),
                ])
        self.assertEqual(figures(), (expected_days, expected_doctors))
        # the same figures where the database has no percentile_cont
        for Model in [OPDDay, DoctorDay]:
            self.assertTrue(Model._percentile_in_sql())
        with patch.object(OPDDay, '_percentile_in_sql', return_value=False), \
                patch.object(DoctorDay, '_percentile_in_sql',
                    return_value=False):
            self.assertEqual(figures(), (expected_days, expected_doctors))


class PureTestCase(unittest.TestCase):
    "CAPTCHA, percentiles and masking, without a database"
    secret = b'test-secret'

    def test_captcha_image_answer(self):
        token, code = captcha.new_challenge(self.secret, 12, now=1000)
        nonce = captcha.verify(self.secret, token, answer=' ' + code.lower(),
            now=1001)
        self.assertEqual(nonce, token.split('.')[1])
        for answer, reason in [(None, 'missing'), ('', 'missing'),
                ('WRONG', 'wrong')]:
            with self.assertRaises(captcha.CaptchaError) as cm:
                captcha.verify(self.secret, token, answer=answer, now=1001)
            self.assertEqual(cm.exception.reason, reason)

    def test_captcha_refuses_forgery_and_age(self):
        token, code = captcha.new_challenge(self.secret, 12, now=1000)
        cases = [
            (b'other-secret', token, 1001, 'invalid'),
            (self.secret, token.replace('.12.', '.1.'), 1001, 'invalid'),
            (self.secret, token, 1000 + captcha.TTL + 1, 'expired'),
            (self.secret, 'garbage', 1001, 'invalid'),
            (self.secret, None, 1001, 'missing'),
            ]
        for secret, value, now, reason in cases:
            with self.assertRaises(captcha.CaptchaError) as cm:
                captcha.verify(secret, value, answer=code, now=now)
            self.assertEqual(cm.exception.reason, reason)

    def test_captcha_proof_of_work(self):
        token, _ = captcha.new_challenge(self.secret, 12)
        counter = captcha.solve_pow(token, 12)
        self.assertTrue(captcha.verify(self.secret, token, counter=counter))
        wrong = next(str(c) for c in range(10 ** 6)
            if not captcha.pow_ok(token, c, 12))
        with self.assertRaises(captcha.CaptchaError):
            captcha.verify(self.secret, token, counter=wrong)
        self.assertFalse(captcha.pow_ok(token, '-1', 0))
        self.assertEqual(captcha.leading_zero_bits(b'\x00\x1f'), 11)

    def test_captcha_image(self):
        png = captcha.render_png('ACDEF')
        image = Image.open(io.BytesIO(png))
        self.assertEqual((image.format, image.size), ('PNG', (200, 70)))
        self.assertTrue(captcha.data_uri(png).startswith(
                'data:image/png;base64,'))

    def test_percentile(self):
        self.assertIsNone(percentile([], 0.5))
        self.assertEqual(percentile([7], 0.9), 7)
        self.assertEqual(percentile([40, 10, 20], 0.5), 20)
        self.assertAlmostEqual(percentile([40, 10, 20], 0.9), 36)
        self.assertAlmostEqual(percentile([1, 2, 3, 4], 0.5), 2.5)

    def test_mask_setting(self):
        self.assertEqual(mask_setting(None, False), '(not set)')
        self.assertEqual(mask_setting('https://x.in', False), 'https://x.in')
        self.assertEqual(mask_setting('s3cr3t', True), '(set, hidden)')
        self.assertEqual(
            mask_setting('smtps://user:pa55@smtp.example.com:465', True),
            'smtps://user:********@smtp.example.com:465')
        self.assertEqual(
            mask_setting('https://api.sms.in/send?key=abc', True),
            'https://api.sms.in/send')
