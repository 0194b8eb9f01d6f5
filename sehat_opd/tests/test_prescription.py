"""Consultation record and e-prescription: the guidelines' rules, the PDF,
signing, freezing, revoking, verifying, referring."""
import datetime as dt
import io
import json
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from trytond.model.exceptions import AccessError
from trytond.modules.sehat_opd import rx_pdf, telemedicine
from trytond.modules.sehat_opd.exceptions import Gone, PrescriptionError
from trytond.tests.test_tryton import _DBTestCase
from trytond.transaction import Transaction

from .rx_sample import sample_content
from .tools import (
    create_doctor, create_opd, create_patient, set_opd_open, with_sehat)

VIDEO, AUDIO, TEXT = 'video', 'audio', 'text'
FIRST, FOLLOW_UP = False, True
# Every list x mode x first/follow-up case, written out as the guidelines
# read (TPG 2020, 3.7.4): None = may be prescribed, else the rule refusing.
# For a follow-up, List A is given without "refill" and List B without
# "treated in person" (the flags have their own cases below).
MATRIX = {
    (None, VIDEO, FIRST): 'unlisted',
    (None, AUDIO, FIRST): 'unlisted',
    (None, TEXT, FIRST): 'unlisted',
    (None, VIDEO, FOLLOW_UP): 'unlisted',
    (None, AUDIO, FOLLOW_UP): 'unlisted',
    (None, TEXT, FOLLOW_UP): 'unlisted',
    ('prohibited', VIDEO, FIRST): 'prohibited',
    ('prohibited', AUDIO, FIRST): 'prohibited',
    ('prohibited', TEXT, FIRST): 'prohibited',
    ('prohibited', VIDEO, FOLLOW_UP): 'prohibited',
    ('prohibited', AUDIO, FOLLOW_UP): 'prohibited',
    ('prohibited', TEXT, FOLLOW_UP): 'prohibited',
    ('O', VIDEO, FIRST): None,
    ('O', AUDIO, FIRST): None,
    ('O', TEXT, FIRST): None,
    ('O', VIDEO, FOLLOW_UP): None,
    ('O', AUDIO, FOLLOW_UP): None,
    ('O', TEXT, FOLLOW_UP): None,
    ('A', VIDEO, FIRST): None,
    ('A', AUDIO, FIRST): 'first_audio_text',
    ('A', TEXT, FIRST): 'first_audio_text',
    ('A', VIDEO, FOLLOW_UP): 'list_a',
    ('A', AUDIO, FOLLOW_UP): 'list_a',
    ('A', TEXT, FOLLOW_UP): 'list_a',
    ('B', VIDEO, FIRST): 'list_b',
    ('B', AUDIO, FIRST): 'first_audio_text',
    ('B', TEXT, FIRST): 'first_audio_text',
    ('B', VIDEO, FOLLOW_UP): 'list_b',
    ('B', AUDIO, FOLLOW_UP): 'list_b',
    ('B', TEXT, FOLLOW_UP): 'list_b',
    }
# (list, mode, follow-up, treated in person, refill): rule
FLAGGED = {
    ('A', VIDEO, FOLLOW_UP, False, True): None,
    ('A', AUDIO, FOLLOW_UP, False, True): None,
    ('A', TEXT, FOLLOW_UP, False, True): None,
    ('A', AUDIO, FIRST, False, True): 'first_audio_text',
    ('B', VIDEO, FOLLOW_UP, True, False): None,
    ('B', AUDIO, FOLLOW_UP, True, False): None,
    ('B', TEXT, FOLLOW_UP, True, False): None,
    ('B', VIDEO, FIRST, True, False): 'list_b',
    ('B', TEXT, FIRST, True, False): 'first_audio_text',
    ('prohibited', VIDEO, FOLLOW_UP, True, True): 'prohibited',
    (None, VIDEO, FOLLOW_UP, True, True): 'unlisted',
    }


class RulesTestCase(unittest.TestCase):
    "Telemedicine Practice Guidelines 2020, without a database"

    def test_matrix(self):
        self.assertEqual(len(MATRIX), 5 * 3 * 2)
        for (list_, mode, follow_up), expected in MATRIX.items():
            with self.subTest(list=list_, mode=mode, follow_up=follow_up):
                self.assertEqual(
                    telemedicine.refusal(list_, mode, follow_up), expected)

    def test_flags(self):
        for (list_, mode, follow_up, treated, refill), expected in (
                FLAGGED.items()):
            with self.subTest(list=list_, mode=mode, follow_up=follow_up,
                    treated=treated, refill=refill):
                self.assertEqual(telemedicine.refusal(list_, mode, follow_up,
                        treated_in_person=treated, refill=refill), expected)

    def test_hash_covers_every_value(self):
        content = sample_content()
        digest = telemedicine.content_hash(content)
        self.assertRegex(digest, r'^[0-9a-f]{64}$')
        self.assertEqual(digest, telemedicine.content_hash(
                json.loads(telemedicine.canonical(content))))
        changed = sample_content()
        changed['medicines'][0]['dose'] = '2 tablet'
        self.assertNotEqual(digest, telemedicine.content_hash(changed))

    def test_download_token(self):
        now = dt.datetime(2026, 11, 29, 10, 0)
        token = telemedicine.download_token(42, now=now)
        self.assertEqual(telemedicine.check_download_token(token, now=now),
            (42, False))
        later = now + dt.timedelta(days=7, minutes=1)
        self.assertEqual(
            telemedicine.check_download_token(token, now=later), (42, True))
        id_, expiry, signature = token.split('.')
        for forged in ['43.%s.%s' % (expiry, signature),
                '42.%d.%s' % (int(expiry) + 86400, signature),
                '42.%s.%s' % (expiry, '0' * 32), 'junk', '', None]:
            self.assertIsNone(
                telemedicine.check_download_token(forged, now=now), forged)

    def test_initials(self):
        self.assertEqual(telemedicine.initials('ramesh kumar Yadav'),
            'R. K. Y.')
        self.assertEqual(telemedicine.initials(''), '')


URL = 'http://127.0.0.1:8000/sehat/opd/verify/Zk3v9QpW2mXc7LrT1yHbNa'


def render(content=None):
    content = content or sample_content()
    digest = telemedicine.content_hash(content)
    return rx_pdf.render(content, URL, digest), digest


def pdf_text(data):
    reader = PdfReader(io.BytesIO(data))
    return '\n'.join(page.extract_text() for page in reader.pages)


def decode_qr(data, page=1):
    "The QR codes zbarimg reads on a page rendered by pdftoppm."
    for tool in ['pdftoppm', 'zbarimg']:
        if not shutil.which(tool):
            raise AssertionError('%s is missing: apt-get install '
                'poppler-utils zbar-tools (make chromium does)' % tool)
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / 'rx.pdf'
        pdf.write_bytes(data)
        subprocess.run(['pdftoppm', '-png', '-r', '150', '-f', str(page),
                '-l', str(page), str(pdf), str(Path(tmp) / 'page')],
            check=True)
        png, = Path(tmp).glob('page*.png')
        result = subprocess.run(['zbarimg', '-q', '--raw', str(png)],
            capture_output=True, text=True)
        return result.stdout.split()


class PDFTestCase(unittest.TestCase):
    "The drawn prescription, read back as a pharmacist's tools read it"

    def test_mandatory_fields(self):
        data, digest = render()
        text = ' '.join(pdf_text(data).split())
        self.assertTrue(data.startswith(b'%PDF'))
        for value in [
                'Command Hospital (Demo) - SeHAT OPD Hub', 'General OPD',
                'TELECONSULTATION', 'Mode: Video', 'First consultation',
                '29 Nov 2026, 15:45 IST', 'RX-2026-000042',
                'Dr. Anil Sharma', 'MBBS, MD (Medicine)',
                'DMC-48213 (Delhi Medical Council)', 'Priya Sharma',
                '41 years / Female', 'SH-7K3M-Q9XD-R',
                'Dependant (Spouse) - Army, IC-45678',
                'Fever and sore throat for 3 days', 'Acute pharyngitis',
                'Complete blood count if fever persists',
                'PARACETAMOL', '500 mg, Tablet, Oral', 'CETIRIZINE',
                'AMOXICILLIN', '1 capsule', '3 times per day', '5 days',
                'Complete the course', 'Warm saline gargles',
                'After 5 days (04 Dec 2026)', 'Digitally signed by',
                'Signed at 29 Nov 2026, 15:45 IST', digest[:32], digest[32:],
                URL, 'Page 1 of 1']:
            self.assertIn(value, text)
        # generic names are printed in capitals, never as typed
        self.assertNotIn('Paracetamol 500 mg, Tablet', text)

    def test_a4_and_metadata(self):
        data, digest = render()
        reader = PdfReader(io.BytesIO(data))
        box = reader.pages[0].mediabox
        self.assertAlmostEqual(float(box.width), 595.28, places=1)
        self.assertAlmostEqual(float(box.height), 841.89, places=1)
        self.assertIn(digest, reader.metadata['/Keywords'])
        self.assertIn(URL, reader.metadata['/Keywords'])
        self.assertEqual(telemedicine.code_in_pdf(data),
            'Zk3v9QpW2mXc7LrT1yHbNa')

    def test_qr_code_holds_verification_url(self):
        data, _ = render()
        self.assertEqual(decode_qr(data), [URL])

    def test_many_medicines_flow_onto_pages(self):
        data, _ = render(sample_content(medicines=40))
        reader = PdfReader(io.BytesIO(data))
        self.assertGreater(len(reader.pages), 1)
        last = reader.pages[-1].extract_text()
        self.assertIn('Page %d of %d' % (len(reader.pages),
                len(reader.pages)), last)
        # the table header is repeated on the next page
        self.assertIn('Frequency', reader.pages[1].extract_text())
        self.assertEqual(decode_qr(data, page=len(reader.pages)), [URL])

    def test_devanagari_name(self):
        "A Hindi name is drawn with the Devanagari font, shaped"
        self.assertTrue(rx_pdf.register_fonts(),
            'fonts-noto-core is missing (Noto Sans Devanagari)')
        content = sample_content(name='प्रिया शर्मा')
        data, _ = render(content)
        reader = PdfReader(io.BytesIO(data))
        fonts = set()
        for font in reader.pages[0]['/Resources']['/Font'].values():
            fonts.add(str(font.get_object()['/BaseFont']))
        self.assertTrue(any('NotoSansDevanagari' in f for f in fonts), fonts)

    def test_edited_copy_differs(self):
        "An edited copy of the PDF does not hash as the one issued"
        data, _ = render()
        edited = edit_pdf(data)
        self.assertNotEqual(telemedicine.bytes_hash(data),
            telemedicine.bytes_hash(edited))
        # it still claims to be the prescription (QR link kept)
        self.assertEqual(telemedicine.code_in_pdf(edited),
            'Zk3v9QpW2mXc7LrT1yHbNa')


def edit_pdf(data):
    """What a forger does with a PDF editor: white out a duration and write
    another one over it, keeping everything else (QR code included)."""
    from reportlab.pdfgen.canvas import Canvas
    overlay = io.BytesIO()
    canvas = Canvas(overlay, pagesize=(595.28, 841.89))
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(400, 480, 60, 12, stroke=0, fill=1)
    canvas.setFillColorRGB(0, 0, 0)
    canvas.setFont('Helvetica', 9)
    canvas.drawString(402, 482, '30 days')
    canvas.save()
    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter(clone_from=reader)
    writer.pages[0].merge_page(PdfReader(overlay).pages[0])
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


# Models --------------------------------------------------------------------

def create_medicament(env, code, list_):
    pool = env.pool
    Template = pool.get('product.template')
    Product = pool.get('product.product')
    Medicament = pool.get('gnuhealth.medicament')
    Uom = pool.get('product.uom')
    DoseUnit = pool.get('gnuhealth.dose.unit')
    Form = pool.get('gnuhealth.drug.form')
    Route = pool.get('gnuhealth.drug.route')
    unit, = Uom.search([('symbol', '=', 'u')], limit=1)
    template, = Template.create([{
                'name': 'Drug %s 10 mg tablet' % code, 'code': code,
                'type': 'goods', 'default_uom': unit.id}])
    product, = Product.create([{
                'template': template.id, 'is_medicament': True}])
    medicament, = Medicament.create([{
                'product': product.id, 'active_component': 'Drug %s' % code,
                'strength': 10.0,
                'unit': DoseUnit.search([('name', '=', 'mg')])[0].id,
                'form': Form.search([('code', '=', 'TAB')])[0].id,
                'route': Route.search([('code', '=', 'PO')])[0].id,
                'telemedicine_list': list_}])
    return medicament


class Consultation:
    "A patient seen by a doctor in an OPD: the token in consultation."

    def __init__(self, env, mobile='9811100000', doctor='dr.rx'):
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        Presence = pool.get('sehat.opd.presence')
        self.pool = pool
        self.opd = create_opd(env, 'GEN%s' % mobile[-3:])
        self.doctor = create_doctor(env, doctor + mobile[-3:], [self.opd])
        self.user = self.doctor.party.internal_user
        self.patient = create_patient(env, mobile, name='Priya Sharma')
        token = Token.issue(self.patient, self.opd, "Fever for 3 days")
        Presence.of(self.doctor).go_online(self.opd)
        token = Token(token.id)
        token.answer()
        self.token = Token(token.id)

    def as_doctor(self):
        return Transaction().set_user(self.user.id)

    def prescription(self, mode=VIDEO, follow_up=False, treated=False):
        Evaluation = self.pool.get('gnuhealth.patient.evaluation')
        with self.as_doctor():
            evaluation = self.token.get_evaluation()
            Evaluation.write([evaluation], {
                    'sehat_mode': mode,
                    'visit_type': 'followup' if follow_up else 'new',
                    'treated_in_person': treated,
                    'info_diagnosis': 'Acute pharyngitis',
                    'directions': 'Rest and fluids',
                    })
            order = self.token.get_prescription()
        self.order = order
        return order

    def add_line(self, medicament, refill=False):
        Line = self.pool.get('gnuhealth.prescription.line')
        line, = Line.create([{
                    'presc_order': self.order.id,
                    'medicament': medicament.id,
                    'qty': 1, 'duration': 5, 'duration_period': 'days',
                    'short_comment': 'After food',
                    'sehat_refill': refill}])
        return line

    def sign(self):
        Order = self.pool.get('gnuhealth.prescription.order')
        Order.write([self.order], {'prescription_warning_ack': True})
        with self.as_doctor():
            Order.sehat_sign([Order(self.order.id)])
        return Order(self.order.id)


class PrescriptionTestCase(_DBTestCase):
    "Consultation record and e-prescription on GNU Health's models"
    module = 'sehat_opd'

    @with_sehat
    def test_rules_on_lines(self, env):
        "Each list x mode x visit case is enforced when a line is added"
        medicaments = {list_: create_medicament(env, 'M%s' % (
                    list_ or 'none'), list_)
            for list_ in [None, 'prohibited', 'O', 'A', 'B']}
        for index, ((list_, mode, follow_up), expected) in enumerate(
                MATRIX.items()):
            with self.subTest(list=list_, mode=mode, follow_up=follow_up):
                case = Consultation(env, mobile='98111%05d' % index)
                case.prescription(mode, follow_up)
                medicament = medicaments[list_]
                if expected is None:
                    case.add_line(medicament)
                else:
                    with self.assertRaises(PrescriptionError) as cm:
                        case.add_line(medicament)
                    self.assertIn(medicament.rec_name, cm.exception.message)

    @with_sehat
    def test_flags_allow_a_refill_and_b_add_on(self, env):
        "A refill of List A and a List B add-on pass at a follow-up"
        list_a = create_medicament(env, 'RA', 'A')
        list_b = create_medicament(env, 'RB', 'B')
        case = Consultation(env)
        case.prescription(AUDIO, follow_up=True, treated=True)
        case.add_line(list_a, refill=True)
        case.add_line(list_b)
        order = case.sign()
        self.assertEqual(order.sehat_state, 'issued')
        lines = order.sehat_data()['medicines']
        self.assertEqual(lines[0]['instructions'], 'Refill. After food')

    @with_sehat
    def test_sign_freezes_and_completes(self, env):
        "Signing stores the hash and the PDF, completes the token"
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        Order = pool.get('gnuhealth.prescription.order')
        Line = pool.get('gnuhealth.prescription.line')
        drug = create_medicament(env, 'P1', 'O')
        case = Consultation(env)
        self.assertEqual(case.token.state, 'in_consultation')
        with case.as_doctor():
            evaluation = case.token.get_evaluation()
        self.assertEqual(evaluation.chief_complaint, 'Fever for 3 days')
        self.assertEqual(evaluation.evaluation_type, 'telemedicine')
        self.assertEqual(Token(case.token.id).evaluation, evaluation)
        case.prescription()
        line = case.add_line(drug)
        order = case.sign()

        self.assertEqual(order.sehat_state, 'issued')
        self.assertEqual(order.state, 'done')
        self.assertEqual(order.sehat_signed_by, case.doctor)
        content = json.loads(order.sehat_content)
        self.assertEqual(order.sehat_hash,
            telemedicine.content_hash(content))
        self.assertEqual(order.sehat_pdf_hash,
            telemedicine.bytes_hash(bytes(order.sehat_pdf)))
        self.assertEqual(content['medicines'][0]['generic'], 'Drug P1')
        self.assertEqual(content['doctor']['registration'],
            case.doctor.code)
        self.assertEqual(content['patient']['patient_id'],
            case.patient.patient_code)
        self.assertIn('Acute pharyngitis', pdf_text(bytes(order.sehat_pdf)))
        token = Token(case.token.id)
        self.assertEqual(token.state, 'completed')
        self.assertEqual(token.prescription, order)
        self.assertEqual(token.evaluation.state, 'done')
        self.assertEqual(token.appointment.state, 'done')
        self.assertTrue(telemedicine.is_code(order.sehat_code))

        # nobody edits a signed prescription, not even the administrator
        for attempt in [
                lambda: Order.write([order], {'notes': 'changed'}),
                lambda: Order.delete([order]),
                lambda: Line.write([Line(line.id)], {'qty': 3}),
                lambda: Line.delete([Line(line.id)]),
                lambda: case.add_line(drug),
                ]:
            with self.assertRaises(AccessError):
                attempt()
        with case.as_doctor(), self.assertRaises(AccessError):
            Order.write([order], {'notes': 'changed'})

    @with_sehat
    def test_sign_checks_doctor_and_minor(self, env):
        "The registration is needed to sign; a minor needs an adult"
        pool = env.pool
        HealthProf = pool.get('gnuhealth.healthprofessional')
        Party = pool.get('party.party')
        Evaluation = pool.get('gnuhealth.patient.evaluation')
        drug = create_medicament(env, 'P2', 'O')
        case = Consultation(env)
        case.prescription()
        case.add_line(drug)
        HealthProf.write([case.doctor], {'registration_council': None})
        with self.assertRaises(PrescriptionError) as cm:
            case.sign()
        self.assertIn('registration number', cm.exception.message)
        HealthProf.write([case.doctor], {
                'registration_council': 'Delhi Medical Council'})
        Party.write([case.patient.party], {
                'dob': dt.date.today() - dt.timedelta(days=365 * 10)})
        with self.assertRaises(PrescriptionError) as cm:
            case.sign()
        self.assertIn('under 18', cm.exception.message)
        Evaluation.write([case.token.evaluation], {
                'accompanying_adult': 'Ramesh Sharma (father)'})
        order = case.sign()
        self.assertEqual(order.sehat_data()['patient']['accompanied_by'],
            'Ramesh Sharma (father)')

    @with_sehat
    def test_rule_rechecked_when_signing(self, env):
        "A mode changed after the lines were written is checked at signing"
        Evaluation = env.pool.get('gnuhealth.patient.evaluation')
        case = Consultation(env)
        case.prescription(VIDEO)
        case.add_line(create_medicament(env, 'A1', 'A'))
        Evaluation.write([case.token.evaluation], {'sehat_mode': 'audio'})
        with self.assertRaises(PrescriptionError) as cm:
            case.sign()
        self.assertIn('first consultation by audio', cm.exception.message)

    @with_sehat
    def test_revoke_and_verify(self, env):
        "A revoked prescription says so and is no longer served"
        Order = env.pool.get('gnuhealth.prescription.order')
        case = Consultation(env)
        case.prescription()
        case.add_line(create_medicament(env, 'P3', 'O'))
        order = case.sign()
        self.assertEqual(Order.by_code(order.sehat_code), order)
        self.assertIsNone(Order.by_code('x' * 22))
        shown = order.verification()
        self.assertEqual(shown['status'], 'issued')
        self.assertEqual(shown['patient'], {'initials': 'P. S.', 'age':
                order.sehat_data()['patient']['age']})
        self.assertNotIn('patient_id', json.dumps(shown, default=str))
        pdf = bytes(order.sehat_pdf)
        self.assertEqual(Order.by_pdf(pdf), (order, None))
        self.assertEqual(Order.by_pdf(edit_pdf(pdf)),
            (None, order.sehat_code))
        with case.as_doctor(), self.assertRaises(PrescriptionError):
            Order.revoke([order], '  ')
        with case.as_doctor():
            Order.revoke([order], 'Wrong patient')
        order = Order(order.id)
        self.assertEqual(order.sehat_state, 'revoked')
        self.assertEqual(order.sehat_revoke_reason, 'Wrong patient')
        self.assertEqual(order.verification()['status'], 'revoked')
        with self.assertRaises(Gone):
            order.pdf_for_download()
        # revoked is final, and still frozen
        with self.assertRaises(AccessError):
            Order.write([order], {'notes': 'x'})

    @with_sehat
    def test_referral_waits_for_completion_and_opening(self, env):
        "The referral token is issued at the head once the consultation " \
            "completes and the specialty OPD is open"
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        Evaluation = pool.get('gnuhealth.patient.evaluation')
        specialty, = pool.get('gnuhealth.specialty').search([], limit=1)
        ortho = create_opd(env, 'ORTHO', kind='specialty', always=False,
            specialty=specialty.id)
        set_opd_open(ortho, False)
        case = Consultation(env)
        case.prescription()
        case.add_line(create_medicament(env, 'P4', 'O'))
        Evaluation.write([case.token.evaluation], {
                'referral_opd': ortho.id, 'referral_note': 'Knee pain'})
        case.sign()
        evaluation = Evaluation(case.token.evaluation.id)
        self.assertEqual(evaluation.referral_status, 'pending')
        self.assertFalse(evaluation.referral_token)

        set_opd_open(ortho, True)
        issued = Evaluation.cron_refer()
        self.assertEqual(len(issued), 1)
        evaluation = Evaluation(evaluation.id)
        referral = evaluation.referral_token
        self.assertEqual(evaluation.referral_status, 'issued')
        self.assertEqual(referral.opd, ortho)
        self.assertEqual(referral.patient, case.patient)
        self.assertEqual(referral.referred_from, case.token)
        self.assertIn('Knee pain', referral.complaint)
        self.assertEqual(Token.status(case.patient.id)['position'], 1)
        self.assertEqual(Evaluation.cron_refer(), [])

    @with_sehat
    def test_history_is_the_owners(self, env):
        "The patient's history lists their consultations; others get 404"
        from trytond.modules.sehat_opd.exceptions import NotFound
        pool = env.pool
        Token = pool.get('sehat.opd.token')
        Order = pool.get('gnuhealth.prescription.order')
        case = Consultation(env)
        case.prescription()
        case.add_line(create_medicament(env, 'P5', 'O'))
        order = case.sign()
        other = create_patient(env, '9811188888')
        history = Token.portal_history(case.patient.id)
        self.assertEqual([h['id'] for h in history], [case.token.id])
        self.assertEqual(history[0]['diagnosis'], 'Acute pharyngitis')
        self.assertEqual(history[0]['prescription']['id'], order.id)
        self.assertEqual(Token.portal_history(other.id), [])
        with self.assertRaises(NotFound):
            Token.portal_get(case.token.id, other.id)
        with self.assertRaises(NotFound):
            Order.for_patient(order.id, other.id)
        self.assertEqual(Order.for_patient(order.id, case.patient.id),
            order)

    @with_sehat
    def test_download_unlock_by_birth_date(self, env):
        "The SMS link opens with the date of birth; guesses are limited"
        from trytond.modules.sehat_opd.exceptions import TooManyRequests
        case = Consultation(env)
        case.prescription()
        case.add_line(create_medicament(env, 'P6', 'O'))
        order = case.sign()
        link = order.sehat_download_url()
        token = link.rsplit('/', 1)[1]
        self.assertEqual(telemedicine.check_download_token(token),
            (order.id, False))
        self.assertTrue(order.unlock_by_birth_date('1985-01-01'))
        for guess in ['1985-01-02', 'junk', '', None, '1990-01-01']:
            self.assertFalse(order.unlock_by_birth_date(guess))
        with self.assertRaises(TooManyRequests):
            order.unlock_by_birth_date('1985-01-01')

