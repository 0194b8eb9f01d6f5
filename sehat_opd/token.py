"OPD tokens: a patient's place in an OPD's queue for one day."
import datetime as dt
from functools import wraps

from sql import Literal, Null
from sql.aggregate import Count
from sql.operators import Equal

from trytond.i18n import gettext
from trytond.model import (
    Exclude, Index, ModelSQL, ModelView, Workflow, fields)
from trytond.wizard import StateAction, Wizard
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from .exceptions import (
    Conflict, InvalidInput, OPDClosed, QueueFull, TokenStateError)
from .opd import lock_rows
from .upkeep import TokenUpkeepMixin
from .waiting import ACTIVE_STATES, WaitingRoomMixin

MAX_COMPLAINT = 2000
STATES = [
    ('waiting', "Waiting"),
    ('called', "Called"),
    ('in_consultation', "In Consultation"),
    ('completed', "Completed"),
    ('cancelled', "Cancelled"),
    ('expired', "Expired"),
    ]


def releasing(func):
    """Free the doctors of the tokens the transition moved, then give them
    their next patients. It wraps the transition so that the new states are
    written before the queue is looked at."""
    @wraps(func)
    def wrapper(cls, tokens, *args, **kwargs):
        before = {t.id: t.state for t in tokens}
        result = func(cls, tokens, *args, **kwargs)
        moved = [t for t in cls.browse(list(before)) if t.state != before[t.id]]
        if moved:
            cls._release(moved)
        return result
    return wrapper


class Token(WaitingRoomMixin, TokenUpkeepMixin, Workflow, ModelSQL,
        ModelView):
    """OPD Token

    Issued to a patient for one OPD on one day. It keeps its number for the
    day; its place in line (`seq`) changes when a missed call sends it back
    to the end of the queue.
    """
    __name__ = 'sehat.opd.token'

    number = fields.Integer("Number", readonly=True)
    patient = fields.Many2One(
        'gnuhealth.patient', "Patient", required=True, readonly=True,
        ondelete='RESTRICT')
    opd = fields.Many2One(
        'sehat.opd', "OPD", required=True, readonly=True,
        ondelete='RESTRICT')
    queue = fields.Many2One(
        'sehat.opd.queue', "Queue", required=True, readonly=True,
        ondelete='RESTRICT')
    date = fields.Date("Date", required=True, readonly=True)
    seq = fields.Integer("Place", readonly=True)
    state = fields.Selection(STATES, "State", readonly=True, required=True,
        sort=False)
    complaint = fields.Text("Complaint", readonly=True)
    healthprof = fields.Many2One(
        'gnuhealth.healthprofessional', "Doctor", readonly=True,
        ondelete='RESTRICT')
    called_at = fields.DateTime("Called", readonly=True)
    call_deadline = fields.DateTime("Answer Before", readonly=True)
    answered_at = fields.DateTime("Answered", readonly=True)
    started_at = fields.DateTime("Consultation Start", readonly=True)
    ended_at = fields.DateTime("Consultation End", readonly=True)
    missed_calls = fields.Integer("Missed Calls", readonly=True)
    recall_after = fields.DateTime("Not Called Again Before", readonly=True,
        help="After a missed Call Now, the patient is not called "
        "automatically again before this time (a doctor's "
        "'Call next patient' still may).")
    turn_near_notified = fields.Boolean("Turn Near Notified", readonly=True)
    appointment = fields.Many2One(
        'gnuhealth.appointment', "Appointment", readonly=True,
        ondelete='RESTRICT')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            # One active token per patient, whatever the OPD, even when two
            # requests race (PostgreSQL; the row lock covers SQLite).
            ('one_active_per_patient',
                Exclude(t, (t.patient, Equal),
                    where=t.state.in_(list(ACTIVE_STATES))),
                'sehat_opd.msg_token_active_exists'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.queue, Index.Equality()),
                    (t.state, Index.Equality()), (t.seq, Index.Range())),
                Index(t, (t.patient, Index.Equality()),
                    (t.state, Index.Equality())),
                Index(t, (t.state, Index.Equality()),
                    (t.date, Index.Range())),
                Index(t, (t.opd, Index.Equality()),
                    (t.date, Index.Range())),
                })
        cls._order = [
            ('date', 'DESC'), ('opd', 'ASC'), ('seq', 'ASC'), ('id', 'DESC')]
        cls._transitions |= {
            ('waiting', 'called'),
            ('called', 'waiting'),
            ('in_consultation', 'waiting'),
            ('called', 'in_consultation'),
            ('in_consultation', 'completed'),
            ('waiting', 'cancelled'),
            ('called', 'cancelled'),
            ('waiting', 'expired'),
            ('called', 'expired'),
            ('in_consultation', 'expired'),
            }
        cls._buttons.update({
                'cancel': {
                    'invisible': ~Eval('state').in_(['waiting', 'called']),
                    'depends': ['state'],
                    },
                'requeue': {
                    'invisible': ~Eval('state').in_(
                        ['called', 'in_consultation']),
                    'depends': ['state'],
                    },
                'complete': {
                    'invisible': Eval('state') != 'in_consultation',
                    'depends': ['state'],
                    },
                'open_console': {
                    'invisible': ~Eval('state').in_(list(ACTIVE_STATES)),
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'waiting'

    @classmethod
    def default_missed_calls(cls):
        return 0

    @classmethod
    def default_turn_near_notified(cls):
        return False

    def get_rec_name(self, name):
        return '%s-%03d (%s)' % (self.opd.code, self.number or 0, self.date)

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, value = clause
        try:
            number = int(str(value).strip('%'))
        except ValueError:
            return [('patient.rec_name',) + tuple(clause[1:])]
        return ['OR', ('number', '=', number),
            ('patient.rec_name',) + tuple(clause[1:])]

    # Issuing -----------------------------------------------------------

    @classmethod
    def current(cls, patient):
        "The patient's active token, if any (from today or not yet expired)."
        tokens = cls.search([
                ('patient', '=', patient.id),
                ('state', 'in', ACTIVE_STATES),
                ], limit=1, order=[('id', 'DESC')])
        return tokens[0] if tokens else None

    @classmethod
    def issue(cls, patient, opd, complaint, files=(), at_head=False):
        """Issue a token of `opd` today to `patient` and return it.

        Refused while the patient holds any active token, when the OPD is
        closed (the message names the next opening), on holidays, and when
        the day's token or waiting-room cap is reached. `files` are
        (filename, data) pairs of health records sent with the request.
        """
        pool = Pool()
        Appointment = pool.get('gnuhealth.appointment')
        Queue = pool.get('sehat.opd.queue')
        Record = pool.get('sehat.opd.record')
        Notifier = pool.get('sehat.opd.notifier')
        transaction = Transaction()
        cursor = transaction.connection.cursor()

        # Serialise this patient's requests: two racing requests must not
        # both see "no active token".
        lock_rows(cursor, 'gnuhealth_patient', [patient.id])
        cls.expire_stale(patient=patient)
        if cls.current(patient):
            raise Conflict(
                gettext('sehat_opd.msg_token_active_exists'), field='opd')
        if not opd.active:
            raise OPDClosed(gettext('sehat_opd.msg_opd_unknown'), field='opd')
        if not opd.is_open():
            opening = opd.next_opening()
            if opd.is_holiday():
                message = 'sehat_opd.msg_opd_holiday'
            else:
                message = 'sehat_opd.msg_opd_closed'
            raise OPDClosed(gettext(message,
                    opd=opd.rec_name,
                    opening=opening.strftime('%a %d %b %Y %H:%M')
                    if opening else '-'), field='opd')
        complaint = cls.check_complaint(complaint)
        Record.check_files(files)
        # Booked before the day's queue is locked: from that lock to the
        # commit, the OPD's requests wait for each other (a refusal below
        # rolls the appointment back with the rest).
        appointment, = Appointment.create([{
                    'patient': patient.id,
                    'state': 'confirmed',
                    'appointment_type': 'telemedicine',
                    'appointment_date': dt.datetime.now(),
                    'institution': opd.institution.id,
                    'speciality': opd.specialty.id if opd.specialty else None,
                    'visit_type': 'new',
                    'urgency': 'a',
                    'comments': complaint,
                    }])

        queue = Queue.get_locked(opd, opd.today())
        if queue.last_number >= opd.daily_token_cap:
            raise QueueFull(gettext('sehat_opd.msg_opd_day_full',
                    opd=opd.rec_name), field='opd')
        if cls.waiting_count(queue) >= opd.waiting_cap:
            raise QueueFull(gettext('sehat_opd.msg_opd_waiting_full',
                    opd=opd.rec_name), field='opd')

        number = queue.last_number + 1
        if at_head:
            seq, queue.head = queue.head - 1, queue.head - 1
        else:
            seq, queue.tail = queue.tail + 1, queue.tail + 1
        queue.last_number = number
        queue.save()

        token, = cls.create([{
                    'patient': patient.id,
                    'opd': opd.id,
                    'queue': queue.id,
                    'date': queue.date,
                    'number': number,
                    'seq': seq,
                    'complaint': complaint,
                    'appointment': appointment.id,
                    }])
        Record.store(token, files, origin='request')
        Notifier.notify('token_issued', patient=patient, values={
                'patient_id': patient.patient_code,
                'token': number,
                'opd': opd.rec_name,
                })
        Queue.bump([queue.id])
        cls.dispatch(opd)
        return token

    @staticmethod
    def check_complaint(complaint):
        "The complaint as sent by the patient, cleaned; 422 when unfit."
        if complaint is not None and not isinstance(complaint, str):
            raise InvalidInput(gettext('sehat_opd.msg_token_complaint'),
                field='complaint')
        complaint = (complaint or '').strip()
        if len(complaint) > MAX_COMPLAINT:
            raise InvalidInput(gettext('sehat_opd.msg_token_complaint'),
                field='complaint')
        return complaint

    @classmethod
    def waiting_count(cls, queue):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(Count(Literal('*')),
                where=(table.queue == queue.id)
                & (table.state == 'waiting')))
        return cursor.fetchone()[0]

    # Assigning ---------------------------------------------------------

    @classmethod
    def dispatch(cls, opd):
        """Give the next waiting patients of `opd` to its free doctors.

        Each free doctor and each waiting token is taken with a row lock
        that other transactions skip, so two doctors never get one token and
        a doctor never gets two.
        """
        Presence = Pool().get('sehat.opd.presence')
        for presence in Presence.lock_free(opd):
            if not cls.assign_next(presence):
                break
        cls.notify_turn_near(opd)

    @classmethod
    def assign_next(cls, presence, automatic=True):
        """Call the next waiting token of the presence's OPD for its doctor.

        The presence must be locked by the caller. Return the token or None
        when nobody waits. An `automatic` assignment passes over the
        patients who just missed a call (see `miss`); the doctor's own
        "Call next patient" does not.
        """
        pool = Pool()
        Queue = pool.get('sehat.opd.queue')
        opd = presence.opd
        table = cls.__table__()
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        database = transaction.database
        where = ((table.opd == opd.id) & (table.date == opd.today())
            & (table.state == 'waiting'))
        if automatic:
            where &= ((table.recall_after == Null)
                | (table.recall_after <= dt.datetime.now()))
        query = table.select(table.id, where=where,
            order_by=[table.seq.asc, table.id.asc], limit=1)
        if database.has_select_for():
            For = database.get_select_for_skip_locked()
            query.for_ = For('UPDATE')
        cursor.execute(*query)
        row = cursor.fetchone()
        if not row:
            return None
        token = cls(row[0])
        cls.call([token], presence.healthprof)
        presence.current_token = token
        presence.save()
        Queue.bump([token.queue.id])
        return token

    @classmethod
    @Workflow.transition('called')
    def call(cls, tokens, healthprof):
        "Call the patients to their consultation with `healthprof`."
        Notifier = Pool().get('sehat.opd.notifier')
        now = dt.datetime.now()
        for token in tokens:
            token.healthprof = healthprof
            token.called_at = now
            token.call_deadline = now + dt.timedelta(
                seconds=token.opd.call_window)
            token.answered_at = None
            token.recall_after = None
            Notifier.notify('called', patient=token.patient, values={
                    'token': token.number,
                    'opd': token.opd.rec_name,
                    'doctor': healthprof.rec_name,
                    'seconds': token.opd.call_window,
                    })
        cls.save(tokens)

    def answer(self):
        """The patient answered Call Now: start the consultation.

        The video module keeps the token called until both sides are in the
        room.
        """
        if self.state != 'called' or (
                self.call_deadline
                and dt.datetime.now() > self.call_deadline):
            raise TokenStateError(gettext('sehat_opd.msg_token_not_called'))
        self.answered_at = dt.datetime.now()
        self.save()
        self.start([self])

    @classmethod
    @Workflow.transition('in_consultation')
    def start(cls, tokens):
        "Both sides are in the consultation."
        Queue = Pool().get('sehat.opd.queue')
        now = dt.datetime.now()
        for token in tokens:
            if not token.started_at:
                token.started_at = now
            token.call_deadline = None
        cls.save(tokens)
        Queue.bump({t.queue.id for t in tokens})

    @classmethod
    @ModelView.button
    @releasing
    @Workflow.transition('completed')
    def complete(cls, tokens):
        "The consultation is over (the e-prescription is issued)."
        pool = Pool()
        Appointment = pool.get('gnuhealth.appointment')
        now = dt.datetime.now()
        for token in tokens:
            token.ended_at = now
        cls.save(tokens)
        Appointment.write(
            [t.appointment for t in tokens if t.appointment],
            {'state': 'done'})

    @classmethod
    @ModelView.button
    @releasing
    @Workflow.transition('cancelled')
    def cancel(cls, tokens):
        "Cancel tokens (by the patient, or by staff on their behalf)."
        pool = Pool()
        Appointment = pool.get('gnuhealth.appointment')
        Notifier = pool.get('sehat.opd.notifier')
        Appointment.write(
            [t.appointment for t in tokens if t.appointment],
            {'state': 'user_cancelled'})
        for token in tokens:
            Notifier.notify('token_cancelled', patient=token.patient, values={
                    'token': token.number, 'opd': token.opd.rec_name})

    def cancel_by_patient(self):
        "The patient gives up the token (only while waiting or called)."
        if self.state not in {'waiting', 'called'}:
            raise TokenStateError(
                gettext('sehat_opd.msg_token_cancel_state'))
        self.cancel([self])

    def add_records(self, files):
        """Attach health records sent from the waiting room; return the
        attachments. As many as the request allowed may be added."""
        Record = Pool().get('sehat.opd.record')
        if not files:
            raise InvalidInput(gettext('sehat_opd.msg_upload_none'),
                field='file')
        return Record.store(self, files, origin='waiting', field='file')

    @classmethod
    @ModelView.button
    @releasing
    @Workflow.transition('waiting')
    def requeue(cls, tokens, front=False):
        """Send tokens back to the end of their queue (or to its head when
        `front`); their doctor is freed."""
        Queue = Pool().get('sehat.opd.queue')
        for token in tokens:
            queue = Queue.get_locked(token.opd, token.date)
            if front:
                queue.head -= 1
                token.seq = queue.head
            else:
                queue.tail += 1
                token.seq = queue.tail
            queue.save()
            token.healthprof = None
            token.called_at = token.call_deadline = None
            token.answered_at = None
            token.turn_near_notified = False
        cls.save(tokens)

    @classmethod
    def miss(cls, tokens):
        """The patients let the Call Now window pass.

        Back to the end of the line, or expired after the configured number
        of missed calls.
        """
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        Notifier = pool.get('sehat.opd.notifier')
        limit = Configuration(1).requeue_limit
        now = dt.datetime.now()
        for token in tokens:
            token.missed_calls = (token.missed_calls or 0) + 1
            # Back in line, and seen to be: the doctor this frees is not
            # given the same patient again at once when nobody else waits.
            token.recall_after = now + dt.timedelta(
                seconds=token.opd.call_window)
        cls.save(tokens)
        to_expire = [t for t in tokens if t.missed_calls >= limit]
        to_requeue = [t for t in tokens if t.missed_calls < limit]
        for token in to_requeue:
            Notifier.notify('missed_call', patient=token.patient, values={
                    'token': token.number, 'opd': token.opd.rec_name})
        if to_requeue:
            cls.requeue(to_requeue)
        if to_expire:
            cls.expire(to_expire)

    @classmethod
    @releasing
    @Workflow.transition('expired')
    def expire(cls, tokens):
        "End tokens that were not completed (end of day, missed calls)."
        pool = Pool()
        Appointment = pool.get('gnuhealth.appointment')
        Notifier = pool.get('sehat.opd.notifier')
        Appointment.write(
            [t.appointment for t in tokens
                if t.appointment and t.appointment.state == 'confirmed'],
            {'state': 'no_show'})
        for token in tokens:
            Notifier.notify('token_expired', patient=token.patient, values={
                    'token': token.number, 'opd': token.opd.rec_name})

    @classmethod
    @ModelView.button_action('sehat_opd.url_doctor_console')
    def open_console(cls, tokens):
        """Open the doctor console on the token's patient, or the
        consultation page when a module provides one."""
        token = tokens[0] if tokens else None
        url = token and token.doctor_consultation_url()
        return {'url': url or console_url(token)}

    @classmethod
    def _release(cls, tokens):
        """Free the doctors of `tokens`, tell waiting patients, and give the
        freed doctors their next patient."""
        pool = Pool()
        Presence = pool.get('sehat.opd.presence')
        Queue = pool.get('sehat.opd.queue')
        Presence.release(tokens)
        Queue.bump({t.queue.id for t in tokens})
        for opd in {t.opd for t in tokens}:
            cls.dispatch(opd)


def console_url(token=None):
    "Where the doctor console of this database lives (for the web client)."
    url = '/%s/opd/doctor/' % Transaction().database.name
    if token:
        url += '?token=%s' % token.id
    return url


class OpenConsole(Wizard):
    "Open the Doctor Console"
    __name__ = 'sehat.opd.console.open'
    start_state = 'open_'
    open_ = StateAction('sehat_opd.url_doctor_console')

    def do_open_(self, action):
        action['url'] = console_url()
        return action, {}
