"""The signed e-prescription: GNU Health's prescription order, frozen.

Design. GNU Health's order has its own `state` (draft, done, validated),
written by hand by its "Create prescription" button. SeHAT OPD does not
copy that: it gives the order a second, independent life cycle,
`sehat_state`, run by Tryton's Workflow (the order class becomes a
Workflow with `_transition_state = 'sehat_state'`):

    draft --sign--> issued --revoke--> revoked

Only orders created from an OPD token have a `sehat_state`; the others keep
GNU Health's behaviour untouched. "Sign and issue" checks the doctor, the
patient and every medicine against the Telemedicine Practice Guidelines,
freezes the canonical content (a JSON document with everything printed),
stores its SHA-256, draws the PDF once and stores it with its own SHA-256,
then lets GNU Health mark its order done, completes the token and notifies
the patient with a signed download link. From then on the content fields of
the order and its lines refuse every change, whoever asks (`write`,
`create`, `delete` check it); the life-cycle fields can only be written by
the transitions (field access denies them to every user). A revoked
prescription stays as it was, with the reason and who revoked it.
"""
import datetime as dt
import json
from zoneinfo import ZoneInfo

from sql import For

from trytond.i18n import gettext
from trytond.model import ModelView, Unique, Workflow, fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.rpc import RPC
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from . import rx_pdf, telemedicine, tools
from .exceptions import Gone, NotFound, PrescriptionError, TooManyRequests
from .evaluation import doctor_name
from .opd import at_read_committed

SEHAT_STATES = [
    (None, ''),
    ('draft', "Draft"),
    ('issued', "Issued"),
    ('revoked', "Revoked"),
    ]
FROZEN = {'issued', 'revoked'}
# what may still change on a signed order: the life cycles (GNU Health's
# and ours), never what was prescribed
LIFECYCLE_FIELDS = {
    'state', 'sehat_state', 'sehat_revoked_at', 'sehat_revoked_by',
    'sehat_revoke_reason'}
SEXES = {'m': "Male", 'f': "Female", 'nb': "Non-binary", 'other': "Other",
    'nd': "Not disclosed"}
CATEGORIES = {'serving': "Serving", 'ex_serviceman': "Ex-Serviceman",
    'dependant': "Dependant"}
SERVICES = {'army': "Army", 'navy': "Navy", 'air_force': "Air Force"}
UNLOCK_TRIES = 5


class PrescriptionOrder(Workflow, metaclass=PoolMeta):
    __name__ = 'gnuhealth.prescription.order'
    _transition_state = 'sehat_state'

    sehat_state = fields.Selection(SEHAT_STATES, "e-Prescription",
        readonly=True, sort=False,
        help="Draft, issued (signed) or revoked; only prescriptions of "
        "OPD tokens have one.")
    sehat_token = fields.Function(fields.Many2One(
            'sehat.opd.token', "OPD Token"),
        'get_sehat_token', searcher='search_sehat_token')
    sehat_code = fields.Char("Verification Code", readonly=True)
    sehat_hash = fields.Char("Content SHA-256", readonly=True)
    sehat_content = fields.Text("Signed Content", readonly=True)
    sehat_pdf = fields.Binary("PDF", readonly=True, file_id='sehat_pdf_id',
        filename='sehat_pdf_name')
    sehat_pdf_id = fields.Char("PDF ID", readonly=True)
    sehat_pdf_name = fields.Function(fields.Char("PDF Name"),
        'get_sehat_pdf_name')
    sehat_pdf_hash = fields.Char("PDF SHA-256", readonly=True)
    sehat_signed_by = fields.Many2One('gnuhealth.healthprofessional',
        "Signed By", readonly=True)
    sehat_signed_at = fields.DateTime("Signed At", readonly=True)
    sehat_revoked_at = fields.DateTime("Revoked At", readonly=True)
    sehat_revoked_by = fields.Many2One('res.user', "Revoked By",
        readonly=True)
    sehat_revoke_reason = fields.Text("Revocation Reason", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('sehat_code_uniq', Unique(t, t.sehat_code),
                'sehat_opd.msg_rx_code_unique'),
            ]
        cls._transitions |= {
            ('draft', 'issued'),
            ('issued', 'revoked'),
            }
        cls._buttons.update({
                'sehat_sign': {
                    'invisible': Eval('sehat_state') != 'draft',
                    'depends': ['sehat_state'],
                    },
                'sehat_revoke': {
                    'invisible': Eval('sehat_state') != 'issued',
                    'depends': ['sehat_state'],
                    },
                })
        # Signing completes the token: it frees the doctor and moves the
        # queue, whose rows every request of the OPD changes; at trytond's
        # REPEATABLE READ it failed on them under load ("could not
        # serialize access") once the retries were spent
        cls.__rpc__['sehat_sign'] = RPC(readonly=False, instantiate=0,
            decorator=at_read_committed)
        # "Sign and issue" replaces GNU Health's "Create prescription" for
        # the prescriptions of OPD tokens
        button = cls._buttons['create_prescription']
        button['invisible'] = button['invisible'] | Bool(
            Eval('sehat_state'))
        button.setdefault('depends', [])
        button['depends'] = list(button['depends']) + ['state', 'sehat_state']

    @classmethod
    def default_sehat_state(cls):
        return None

    @classmethod
    def copy(cls, orders, default=None):
        default = dict(default or {})
        for name in ['sehat_code', 'sehat_hash', 'sehat_content',
                'sehat_pdf', 'sehat_pdf_id', 'sehat_pdf_hash',
                'sehat_signed_by', 'sehat_signed_at', 'sehat_revoked_at',
                'sehat_revoked_by', 'sehat_revoke_reason']:
            default.setdefault(name, None)
        return super().copy(orders, default=default)

    @classmethod
    def get_sehat_token(cls, orders, name):
        Token = Pool().get('sehat.opd.token')
        result = {o.id: None for o in orders}
        for token in Token.search([
                    ('prescription', 'in', [o.id for o in orders])]):
            result[token.prescription.id] = token.id
        return result

    @classmethod
    def search_sehat_token(cls, name, clause):
        Token = Pool().get('sehat.opd.token')
        nested = clause[0][len(name) + 1:]
        tokens = Token.search([
                (nested or 'id',) + tuple(clause[1:]),
                ('prescription', '!=', None),
                ])
        return [('id', 'in', [t.prescription.id for t in tokens])]

    def get_sehat_pdf_name(self, name):
        return 'e-prescription-%s.pdf' % (
            (self.prescription_id or str(self.id)).replace('/', '-'))

    # Frozen once signed ------------------------------------------------

    @classmethod
    def check_sehat_frozen(cls, orders):
        for order in orders:
            if order.sehat_state in FROZEN:
                raise AccessError(gettext('sehat_opd.msg_rx_frozen',
                        prescription=order.rec_name))

    @classmethod
    def write(cls, *args):
        actions = iter(args)
        for orders, values in zip(actions, actions):
            if set(values) - LIFECYCLE_FIELDS:
                cls.check_sehat_frozen(orders)
        super().write(*args)

    @classmethod
    def delete(cls, orders):
        cls.check_sehat_frozen(orders)
        super().delete(orders)

    def check_prescription_warning(self):
        # GNU Health refuses to save an order until the doctor ticks
        # "Verified"; a draft e-prescription is written in several saves,
        # so the check is made when it is signed.
        if self.sehat_state != 'draft':
            super().check_prescription_warning()

    def check_sehat_safety(self):
        "GNU Health's safety acknowledgement (pregnancy, allergy, verified)."
        super().check_prescription_warning()

    # Sign and issue ----------------------------------------------------

    @classmethod
    @ModelView.button
    @Workflow.transition('issued')
    def sehat_sign(cls, orders):
        """Sign and issue: check, freeze, hash, draw the PDF, complete the
        token and send the patient the download link."""
        pool = Pool()
        Token = pool.get('sehat.opd.token')
        Notifier = pool.get('sehat.opd.notifier')
        HealthProfessional = pool.get('gnuhealth.healthprofessional')
        signer = HealthProfessional.of_user(Transaction().user)
        for order in cls._lock_unsigned(orders):
            token = order.sehat_token
            evaluation = token.evaluation if token else None
            order.check_signable(signer, token, evaluation)
            now = dt.datetime.now().replace(microsecond=0)
            code = cls._new_code()
            content = order.sehat_build_content(
                token, evaluation, signer, code, now)
            digest = telemedicine.content_hash(content)
            url = verification_url(code)
            pdf = rx_pdf.render(content, url, digest)
            cls.write([order], {
                    'sehat_code': code,
                    'sehat_content': telemedicine.canonical(content).decode(
                        'utf-8'),
                    'sehat_hash': digest,
                    'sehat_pdf': pdf,
                    'sehat_pdf_hash': telemedicine.bytes_hash(pdf),
                    'sehat_signed_by': signer.id,
                    'sehat_signed_at': now,
                    'prescription_date': now,
                    })
            if token.state == 'called':
                Token.start([token])
            cls.create_prescription([order])
            token = Token(token.id)
            if token.state == 'in_consultation':
                Token.complete([token])
            Notifier.notify('prescription_ready', patient=order.patient,
                values={
                    'prescription': order.prescription_id or order.id,
                    'link': order.sehat_download_url(),
                    })

    @classmethod
    def _lock_unsigned(cls, orders):
        """Lock the orders and their tokens; return the orders not signed
        yet. From the client, signing runs at READ COMMITTED: a second
        "Sign and issue" of an order waits for the first, then skips it."""
        Token = Pool().get('sehat.opd.token')
        transaction = Transaction()
        if not orders or not transaction.database.has_select_for():
            return orders
        table = cls.__table__()
        token = Token.__table__()
        cursor = transaction.connection.cursor()
        ids = [o.id for o in orders]
        cursor.execute(*table.select(table.id, table.sehat_state,
                where=table.id.in_(ids), for_=For('UPDATE')))
        unsigned = {id_ for id_, state in cursor if state == 'draft'}
        cursor.execute(*token.select(token.id,
                where=token.prescription.in_(ids), for_=For('UPDATE')))
        return [o for o in orders if o.id in unsigned]

    def check_signable(self, signer, token, evaluation):
        """Refuse to sign what the guidelines forbid; each refusal names
        what to fix."""
        if not signer:
            raise PrescriptionError(gettext('sehat_opd.msg_rx_not_doctor'))
        if self.healthprof and self.healthprof != signer:
            raise PrescriptionError(gettext('sehat_opd.msg_rx_not_yours',
                    doctor=self.healthprof.rec_name))
        if not (signer.code or '').strip() or not (
                signer.registration_council or '').strip():
            raise PrescriptionError(gettext(
                    'sehat_opd.msg_rx_doctor_registration',
                    doctor=signer.rec_name))
        if not token or not evaluation:
            raise PrescriptionError(gettext('sehat_opd.msg_rx_no_record'))
        if token.state not in {'called', 'in_consultation', 'completed',
                'expired'}:
            raise PrescriptionError(
                gettext('sehat_opd.msg_rx_token_not_seen'))
        if not evaluation.sehat_mode:
            raise PrescriptionError(gettext('sehat_opd.msg_rx_mode'))
        party = self.patient.party
        if telemedicine.is_minor(party.dob, dt.date.today()) and not (
                evaluation.accompanying_adult or '').strip():
            raise PrescriptionError(gettext('sehat_opd.msg_rx_minor_adult',
                    patient=party.rec_name))
        self.check_sehat_safety()
        for line in self.prescription_line:
            line.check_telemedicine(evaluation)

    @classmethod
    def _new_code(cls):
        while True:
            code = telemedicine.new_verification_code()
            if not cls.search([('sehat_code', '=', code)], limit=1):
                return code

    def sehat_build_content(self, token, evaluation, signer, code, now):
        """Everything the PDF prints, as plain values: the hashed, frozen
        content of the prescription."""
        opd = token.opd
        party = self.patient.party
        institution = opd.institution.party
        address = institution.addresses[0] if institution.addresses else None
        local = now.replace(tzinfo=dt.timezone.utc).astimezone(
            ZoneInfo(opd.timezone))
        specialty = signer.main_specialty
        vitals = []
        for label, value, unit in [
                ("Temperature", evaluation.temperature, '°C'),
                ("BP", '%s/%s' % (evaluation.systolic, evaluation.diastolic)
                    if evaluation.systolic and evaluation.diastolic
                    else None, 'mmHg'),
                ("Pulse", evaluation.bpm, '/min'),
                ("Respiratory rate", evaluation.respiratory_rate, '/min'),
                ("SpO2", evaluation.osat, '%'),
                ("Weight", evaluation.weight, 'kg'),
                ("Blood glucose", evaluation.glycemia, 'mg/dL'),
                ]:
            if value:
                vitals.append([label, '%s %s' % (telemedicine.format_number(value), unit)])
        diagnosis = [v for v in [
                evaluation.diagnosis.rec_name if evaluation.diagnosis
                else None, evaluation.info_diagnosis] if v]
        follow_up = evaluation.follow_up or ''
        if evaluation.follow_up_date:
            follow_up = ('%s (%s)' % (follow_up,
                    evaluation.follow_up_date.strftime('%d %b %Y'))
                if follow_up else evaluation.follow_up_date.strftime(
                    '%d %b %Y'))
        referral = None
        if evaluation.referral_opd:
            referral = evaluation.referral_opd.rec_name
            if evaluation.referral_note:
                referral += ': ' + evaluation.referral_note
        return {
            'version': telemedicine.CONTENT_VERSION,
            'number': self.prescription_id or str(self.id),
            'code': code,
            'issued_at': local.isoformat(timespec='seconds'),
            'institution': {
                'name': institution.rec_name,
                'address': ', '.join(v for v in [
                        address.street, address.city, address.postal_code]
                    if v) if address else None,
                },
            'opd': opd.rec_name,
            'token': token.rec_name,
            'mode': evaluation.sehat_mode,
            'visit': 'follow_up' if evaluation.visit_type == 'followup'
            else 'first',
            'doctor': {
                'name': doctor_name(signer),
                'qualification': signer.qualification,
                'registration': signer.code,
                'council': signer.registration_council,
                'specialty': specialty.specialty.name if specialty else None,
                },
            'patient': {
                'name': person_name(party),
                'initials': telemedicine.initials(person_name(party)),
                'age': tools.age_in_years(party.dob, local.date()),
                'sex': SEXES.get(party.gender),
                'patient_id': self.patient.patient_code,
                'service': service_details(self.patient),
                'accompanied_by': evaluation.accompanying_adult or None,
                },
            'complaint': evaluation.chief_complaint or token.complaint,
            'history': evaluation.present_illness,
            'vitals': vitals,
            'diagnosis': '\n'.join(diagnosis) or None,
            'investigations': evaluation.investigations,
            'medicines': [l.sehat_content() for l in self.prescription_line],
            'notes': self.notes,
            'advice': evaluation.directions,
            'follow_up': follow_up or None,
            'referral': referral,
            }

    # Revoke ------------------------------------------------------------

    @classmethod
    @ModelView.button_action('sehat_opd.wizard_prescription_revoke')
    def sehat_revoke(cls, orders):
        "Ask the reason, then revoke."

    @classmethod
    @Workflow.transition('revoked')
    def revoke(cls, orders, reason):
        """Revoke issued prescriptions: the pharmacist's verification says
        so; nothing else changes."""
        HealthProfessional = Pool().get('gnuhealth.healthprofessional')
        reason = (reason or '').strip()
        if not reason:
            raise PrescriptionError(gettext('sehat_opd.msg_rx_revoke_reason'))
        user = Transaction().user
        doctor = HealthProfessional.of_user(user)
        for order in orders:
            if doctor and order.sehat_signed_by and (
                    doctor != order.sehat_signed_by):
                raise PrescriptionError(gettext('sehat_opd.msg_rx_not_yours',
                        doctor=order.sehat_signed_by.rec_name))
        cls.write(orders, {
                'sehat_revoked_at': dt.datetime.now(),
                'sehat_revoked_by': user or None,
                'sehat_revoke_reason': reason,
                })

    # What the outside sees ---------------------------------------------

    def sehat_data(self):
        "The frozen content as a dictionary."
        return json.loads(self.sehat_content) if self.sehat_content else {}

    def sehat_download_url(self):
        "The signed SMS link (valid 7 days) of the PDF."
        return '%s/%s/opd/rx/%s' % (base_url(),
            Transaction().database.name,
            telemedicine.download_token(self.id))

    @classmethod
    def by_code(cls, code):
        "The signed prescription of a verification code, or None."
        if not telemedicine.is_code(code):
            return None
        orders = cls.search([
                ('sehat_code', '=', code),
                ('sehat_state', 'in', list(FROZEN)),
                ], limit=1)
        return orders[0] if orders else None

    @classmethod
    def for_patient(cls, order_id, patient_id):
        "The patient's own signed prescription; 404 for anyone else's."
        orders = cls.search([
                ('id', '=', order_id),
                ('patient', '=', patient_id),
                ('sehat_state', 'in', list(FROZEN)),
                ], limit=1)
        if not orders:
            raise NotFound(gettext('sehat_opd.msg_rx_not_found'))
        return orders[0]

    @classmethod
    def by_pdf(cls, data):
        """The prescription whose issued PDF is exactly `data`, and the
        code the file claims (from its QR link) when it is not."""
        digest = telemedicine.bytes_hash(data)
        orders = cls.search([
                ('sehat_pdf_hash', '=', digest),
                ('sehat_state', 'in', list(FROZEN)),
                ], limit=1)
        if orders:
            return orders[0], None
        return None, telemedicine.code_in_pdf(data)

    def verification(self):
        """What a pharmacist sees: the status, the doctor, the date, the
        medicines, the patient's initials and age, nothing else."""
        content = self.sehat_data()
        doctor = content.get('doctor', {})
        patient = content.get('patient', {})
        return {
            'status': self.sehat_state,
            'number': content.get('number'),
            'issued_at': content.get('issued_at'),
            'issued': rx_pdf.local_datetime(content['issued_at'])
            if content.get('issued_at') else None,
            'revoked_at': self.sehat_revoked_at,
            'doctor': {
                'name': doctor.get('name'),
                'qualification': doctor.get('qualification'),
                'registration': doctor.get('registration'),
                'council': doctor.get('council'),
                },
            'patient': {
                'initials': patient.get('initials'),
                'age': patient.get('age'),
                },
            'medicines': [{k: m.get(k) for k in [
                        'generic', 'strength', 'form', 'dose', 'frequency',
                        'duration', 'instructions']}
                for m in content.get('medicines', [])],
            }

    def pdf_for_download(self):
        "The PDF as issued; a revoked prescription is not served."
        if self.sehat_state == 'revoked':
            raise Gone(gettext('sehat_opd.msg_rx_revoked'))
        if self.sehat_state != 'issued' or not self.sehat_pdf:
            raise NotFound(gettext('sehat_opd.msg_rx_not_found'))
        return bytes(self.sehat_pdf)

    def unlock_by_birth_date(self, value):
        """Whether `value` (YYYY-MM-DD) is the patient's date of birth: the
        proof asked before the SMS link opens the PDF. Wrong answers are
        counted, UNLOCK_TRIES an hour per prescription; the caller commits
        them."""
        RateEvent = Pool().get('sehat.opd.rate_event')
        key = 'rx:%d' % self.id
        if RateEvent.count('rx_unlock', key) >= UNLOCK_TRIES:
            raise TooManyRequests(gettext('sehat_opd.msg_rate_limited'))
        try:
            born = dt.date.fromisoformat((value or '').strip())
        except ValueError:
            born = None
        if born and born == self.patient.party.dob:
            return True
        RateEvent.add('rx_unlock', key)
        return False

    def portal_summary(self):
        "The prescription as its patient sees it in the history."
        content = self.sehat_data()
        return {
            'id': self.id,
            'number': content.get('number') or self.prescription_id,
            'state': self.sehat_state,
            'issued_at': content.get('issued_at'),
            'revoked_at': self.sehat_revoked_at,
            'medicines': content.get('medicines', []),
            'pdf': self.sehat_state == 'issued',
            }


class RevokeStart(ModelView):
    "Revoke e-Prescription"
    __name__ = 'sehat.opd.prescription.revoke.start'
    reason = fields.Text("Reason", required=True,
        help="Why the prescription must not be dispensed; kept for ever.")


class Revoke(Wizard):
    "Revoke e-Prescription"
    __name__ = 'sehat.opd.prescription.revoke'
    start = StateView('sehat.opd.prescription.revoke.start',
        'sehat_opd.prescription_revoke_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Revoke", 'revoke', 'tryton-ok', default=True),
            ])
    revoke = StateTransition()

    def transition_revoke(self):
        self.model.revoke(list(self.records), self.start.reason)
        return 'end'


def base_url():
    return (tools.get_setting('sehat_opd', 'base_url') or '').rstrip('/')


def verification_url(code):
    return telemedicine.verification_url(
        base_url(), Transaction().database.name, code)


def person_name(party):
    return ' '.join(v for v in [party.name, party.lastname] if v)


def service_details(patient):
    "`Dependant (Spouse) - Army, IC-45678` as printed on the prescription."
    parts = []
    category = CATEGORIES.get(patient.beneficiary_category)
    if category:
        if patient.relation:
            category += ' (%s)' % patient.relation.replace('_', ' ').title()
        parts.append(category)
    service = ', '.join(v for v in [SERVICES.get(patient.service),
            patient.rank, patient.service_number] if v)
    if service:
        parts.append(service)
    if patient.echs_card:
        parts.append('ECHS %s' % patient.echs_card)
    return ' - '.join(parts) or None
