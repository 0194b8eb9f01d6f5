"""The consultation record of a teleconsultation, written from the token.

It is GNU Health's own evaluation (gnuhealth.patient.evaluation), so the
consultation lands in the patient's electronic health record; SeHAT OPD
adds what a teleconsultation needs: its mode, whether it is a first
consultation or a follow-up (GNU Health's `visit_type`), the accompanying
adult of a minor, investigations, follow-up and a referral to a specialty
OPD. The token links to its evaluation and its prescription order.
"""
import datetime as dt

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval, PYSONEncoder
from trytond.transaction import Transaction, without_check_access

from .exceptions import NotFound, PortalError, PrescriptionError
from .telemedicine import MODES

REFERRAL_DAYS = 7


class Evaluation(metaclass=PoolMeta):
    __name__ = 'gnuhealth.patient.evaluation'

    sehat_mode = fields.Selection([(None, '')] + MODES, "Consultation Mode",
        states={'readonly': Eval('state') == 'signed'},
        help="How the doctor saw the patient: it decides which medicines "
        "may be prescribed (Telemedicine Practice Guidelines, 2020).")
    treated_in_person = fields.Boolean("Condition Treated in Person",
        states={
            'readonly': Eval('state') == 'signed',
            'invisible': Eval('visit_type') != 'followup',
            },
        help="The condition of this follow-up was diagnosed and treated at "
        "an in-person consultation (needed to add List B medicines).")
    accompanying_adult = fields.Char("Accompanying Adult",
        states={'readonly': Eval('state') == 'signed'},
        help="Name and relation of the adult with a patient under 18.")
    investigations = fields.Text("Investigations Advised",
        states={'readonly': Eval('state') == 'signed'})
    follow_up = fields.Char("Follow-up",
        states={'readonly': Eval('state') == 'signed'},
        help="When and why to consult again, e.g. after 5 days or earlier "
        "if the fever persists.")
    follow_up_date = fields.Date("Follow-up Date",
        states={'readonly': Eval('state') == 'signed'})
    referral_opd = fields.Many2One('sehat.opd', "Refer to OPD",
        domain=[('kind', '=', 'specialty')],
        states={'readonly': Bool(Eval('referral_token'))},
        help="The patient gets a token at the head of this OPD's queue when "
        "this consultation completes (or when the OPD next opens).")
    referral_note = fields.Text("Referral Note",
        states={
            'readonly': Bool(Eval('referral_token')),
            'invisible': ~Eval('referral_opd'),
            })
    referral_token = fields.Many2One('sehat.opd.token', "Referral Token",
        readonly=True, ondelete='SET NULL')
    referral_status = fields.Function(fields.Selection([
                (None, ''),
                ('pending', "Pending"),
                ('issued', "Issued"),
                ], "Referral"), 'get_referral_status')
    sehat_token = fields.Function(fields.Many2One(
            'sehat.opd.token', "OPD Token"),
        'get_sehat_token', searcher='search_sehat_token')
    sehat_prescription = fields.Function(fields.Many2One(
            'gnuhealth.prescription.order', "e-Prescription"),
        'get_sehat_token')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'sehat_prescribe': {
                    'invisible': ~Eval('sehat_token'),
                    'depends': ['sehat_token'],
                    },
                })

    def get_referral_status(self, name):
        if self.referral_token:
            return 'issued'
        if self.referral_opd:
            return 'pending'

    @classmethod
    def get_sehat_token(cls, evaluations, names):
        Token = Pool().get('sehat.opd.token')
        result = {n: {e.id: None for e in evaluations} for n in names}
        for token in Token.search([
                    ('evaluation', 'in', [e.id for e in evaluations]),
                    ]):
            if 'sehat_token' in result:
                result['sehat_token'][token.evaluation.id] = token.id
            if 'sehat_prescription' in result:
                result['sehat_prescription'][token.evaluation.id] = (
                    token.prescription.id if token.prescription else None)
        return result

    @classmethod
    def search_sehat_token(cls, name, clause):
        Token = Pool().get('sehat.opd.token')
        nested = clause[0][len(name) + 1:]
        tokens = Token.search([
                (nested or 'id',) + tuple(clause[1:]),
                ('evaluation', '!=', None),
                ])
        return [('id', 'in', [t.evaluation.id for t in tokens])]

    @classmethod
    @ModelView.button_action('sehat_opd.act_prescription_sehat')
    def sehat_prescribe(cls, evaluations):
        "Open the e-prescription of the consultation, created if missing."
        Token = Pool().get('sehat.opd.token')
        evaluation, = evaluations
        token = evaluation.sehat_token
        if not token:
            return
        return Token(token.id).prescription_action()

    @classmethod
    def close_consultations(cls, evaluations):
        """The consultations are over: end the evaluations still in
        progress (GNU Health's own step) and issue the referrals due."""
        for evaluation in evaluations:
            if evaluation.state == 'in_progress':
                cls.end_evaluation([evaluation])
        cls.refer(evaluations)

    @classmethod
    def refer(cls, evaluations):
        """Give the referred patients a token at the head of the specialty
        OPD's queue, once their current token is completed.

        A patient holds one active token: the referral waits for the
        consultation to complete. A closed or full OPD keeps the referral
        pending; the cron job retries while the OPD opens in the next
        REFERRAL_DAYS days. Return the tokens issued.
        """
        pool = Pool()
        Token = pool.get('sehat.opd.token')
        issued = []
        for evaluation in evaluations:
            evaluation = cls(evaluation.id)
            token = evaluation.sehat_token
            opd = evaluation.referral_opd
            if (not opd or evaluation.referral_token or not token
                    or token.state != 'completed'):
                continue
            if not opd.active or not opd.is_open():
                continue
            if Token.current(evaluation.patient):
                continue
            complaint = gettext('sehat_opd.msg_referral_complaint',
                opd=token.opd.rec_name,
                doctor=token.healthprof.rec_name if token.healthprof else '-',
                note=evaluation.referral_note or token.complaint or '')
            try:
                new = Token.issue(evaluation.patient, opd, complaint,
                    at_head=True)
            except PortalError:
                # full now: stays pending for the cron job
                continue
            Token.write([new], {'referred_from': token.id})
            cls.write([evaluation], {'referral_token': new.id})
            issued.append(new)
        return issued

    @classmethod
    def cron_refer(cls):
        "Issue the pending referrals whose OPD has opened (cron)."
        since = dt.datetime.now() - dt.timedelta(days=REFERRAL_DAYS)
        pending = cls.search([
                ('referral_opd', '!=', None),
                ('referral_token', '=', None),
                ('evaluation_start', '>=', since),
                ])
        return cls.refer(pending)


class Token(metaclass=PoolMeta):
    __name__ = 'sehat.opd.token'

    evaluation = fields.Many2One('gnuhealth.patient.evaluation',
        "Consultation Record", readonly=True, ondelete='RESTRICT')
    prescription = fields.Many2One('gnuhealth.prescription.order',
        "e-Prescription", readonly=True, ondelete='RESTRICT')
    referred_from = fields.Many2One('sehat.opd.token', "Referred From",
        readonly=True, ondelete='SET NULL')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'consultation': {
                    'invisible': ~Eval('state').in_(
                        ['called', 'in_consultation', 'completed']),
                    'depends': ['state'],
                    },
                'prescribe': {
                    'invisible': ~Eval('state').in_(
                        ['called', 'in_consultation', 'completed']),
                    'depends': ['state'],
                    },
                })

    @classmethod
    @ModelView.button_action('sehat_opd.act_consultation_sehat')
    def consultation(cls, tokens):
        "Open the consultation record of the token, created if missing."
        token, = tokens
        return _open(token.get_evaluation(),
            'sehat_opd.evaluation_view_form', 'sehat_opd.evaluation_view_list')

    @classmethod
    @ModelView.button_action('sehat_opd.act_prescription_sehat')
    def prescribe(cls, tokens):
        "Open the e-prescription of the token, created if missing."
        token, = tokens
        return token.prescription_action()

    def prescription_action(self):
        return _open(self.get_prescription(),
            'health.gnuhealth_prescription_view',
            'health.gnuhealth_prescription_tree')

    def consulting_doctor(self):
        "The doctor of the consultation: the token's, else the user's."
        HealthProfessional = Pool().get('gnuhealth.healthprofessional')
        doctor = self.healthprof or HealthProfessional.of_user(
            Transaction().user)
        if not doctor:
            raise PrescriptionError(gettext('sehat_opd.msg_rx_not_doctor'))
        return doctor

    def get_evaluation(self):
        """The consultation record of the token; created on first use with
        the complaint, the doctor and the appointment of the token."""
        Evaluation = Pool().get('gnuhealth.patient.evaluation')
        if self.evaluation:
            return self.evaluation
        if self.state not in {'called', 'in_consultation', 'completed'}:
            raise PrescriptionError(
                gettext('sehat_opd.msg_rx_token_not_seen'))
        opd = self.opd
        evaluation, = Evaluation.create([{
                    'patient': self.patient.id,
                    'appointment': self.appointment.id
                    if self.appointment else None,
                    'healthprof': self.consulting_doctor().id,
                    'evaluation_type': 'telemedicine',
                    'visit_type': 'new',
                    'urgency': 'a',
                    'sehat_mode': 'video',
                    'chief_complaint': self.complaint,
                    'specialty': opd.specialty.id if opd.specialty else None,
                    'institution': opd.institution.id,
                    'evaluation_start': self.started_at or self.called_at
                    or dt.datetime.now(),
                    }])
        self.__class__.write([self], {'evaluation': evaluation.id})
        return evaluation

    def get_prescription(self):
        "The token's e-prescription (draft), created on first use."
        Order = Pool().get('gnuhealth.prescription.order')
        if self.prescription:
            return self.prescription
        self.get_evaluation()
        order, = Order.create([{
                    'patient': self.patient.id,
                    'healthprof': self.consulting_doctor().id,
                    'sehat_state': 'draft',
                    }])
        self.__class__.write([self], {'prescription': order.id})
        return order

    @classmethod
    def complete(cls, tokens):
        """Also close the consultation records and issue the referrals:
        part of completing, whoever pressed the button (a doctor may not
        create tokens, the referral must still be issued)."""
        super().complete(tokens)
        Evaluation = Pool().get('gnuhealth.patient.evaluation')
        with without_check_access():
            done = [t for t in cls.browse([t.id for t in tokens])
                if t.state == 'completed' and t.evaluation]
            Evaluation.close_consultations([t.evaluation for t in done])

    # The patient's history ---------------------------------------------

    @classmethod
    def portal_history(cls, patient_id, limit=100):
        "The patient's past consultations, newest first."
        tokens = cls.search([
                ('patient', '=', patient_id),
                ('state', '=', 'completed'),
                ], order=[('date', 'DESC'), ('id', 'DESC')], limit=limit)
        return [t.portal_consultation() for t in tokens]

    @classmethod
    def portal_get(cls, token_id, patient_id):
        "The patient's own past consultation; 404 for anyone else's."
        tokens = cls.search([
                ('id', '=', token_id),
                ('patient', '=', patient_id),
                ('state', '=', 'completed'),
                ], limit=1)
        if not tokens:
            raise NotFound(gettext('sehat_opd.msg_consultation_not_found'))
        return tokens[0]

    def portal_consultation(self, detail=False):
        """A past consultation as its patient sees it: date, OPD, doctor,
        diagnosis, advice and the prescription (with `detail`, the whole
        record the patient may read)."""
        evaluation = self.evaluation
        order = self.prescription
        if order and order.sehat_state not in {'issued', 'revoked'}:
            order = None
        doctor = self.healthprof
        diagnosis = None
        if evaluation:
            diagnosis = '\n'.join(v for v in [
                    evaluation.diagnosis.rec_name if evaluation.diagnosis
                    else None, evaluation.info_diagnosis] if v) or None
        data = {
            'id': self.id,
            'token_number': self.number,
            'date': self.date.isoformat(),
            'opd': {'id': self.opd.id, 'name': self.opd.rec_name},
            'doctor': doctor_name(doctor),
            'mode': evaluation.sehat_mode if evaluation else None,
            'diagnosis': diagnosis,
            'advice': evaluation.directions if evaluation else None,
            'prescription': order.portal_summary() if order else None,
            }
        if detail:
            referral = None
            if evaluation and evaluation.referral_opd:
                referral = {
                    'opd': evaluation.referral_opd.rec_name,
                    'status': evaluation.referral_status,
                    'token_number': evaluation.referral_token.number
                    if evaluation.referral_token else None,
                    }
            data.update({
                    'complaint': (evaluation.chief_complaint if evaluation
                        else None) or self.complaint,
                    'doctor_details': {
                        'name': doctor_name(doctor),
                        'qualification': doctor.qualification,
                        'registration': doctor.code,
                        'council': doctor.registration_council,
                        } if doctor else None,
                    'follow_up_visit': evaluation.visit_type == 'followup'
                    if evaluation else None,
                    'investigations': evaluation.investigations
                    if evaluation else None,
                    'follow_up': evaluation.follow_up if evaluation else None,
                    'follow_up_date': evaluation.follow_up_date.isoformat()
                    if evaluation and evaluation.follow_up_date else None,
                    'referral': referral,
                    })
        return data

    def portal_summary(self):
        summary = super().portal_summary()
        summary['referred_from'] = (self.referred_from.opd.rec_name
            if self.referred_from else None)
        return summary


def doctor_name(healthprof):
    "`Dr. Anil Sharma`, as patients read it (GNU Health says `Sharma, Anil`)."
    if not healthprof:
        return None
    party = healthprof.party
    return 'Dr. %s' % ' '.join(v for v in [party.name, party.lastname] if v)


def _open(record, form, tree):
    """Action values opening `record` in the form view first (the action's
    views are list then form, for its menu entry)."""
    ModelData = Pool().get('ir.model.data')
    return {
        'res_id': [record.id],
        'pyson_domain': PYSONEncoder().encode([('id', '=', record.id)]),
        'views': [(ModelData.get_id(*form.split('.')), 'form'),
            (ModelData.get_id(*tree.split('.')), 'tree')],
        }


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('gnuhealth.patient.evaluation|cron_refer',
                "Issue Pending OPD Referrals"))
