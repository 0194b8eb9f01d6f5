"""What patients and doctors see of tokens: the waiting-room status (the hot
path of the service), the queue snapshot behind it, and the doctor
console's views of a queue and of a patient.

A mixin of `sehat.opd.token` (token.py holds the model and its workflow).
"""
import datetime as dt
import math

from trytond.model import fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from .tools import eta_seconds, local_now

ACTIVE_STATES = ('waiting', 'called', 'in_consultation')


def seconds_until(deadline):
    "Whole seconds left before `deadline`: 0 only once it has passed."
    return max(0, math.ceil((deadline - dt.datetime.now()).total_seconds()))


def _utc_iso(value):
    return value.replace(tzinfo=dt.timezone.utc).isoformat() if value else None


class WaitingRoomMixin:
    """The read side of OPD tokens: what the waiting room, the console and
    the back office's lists show."""
    __slots__ = ()

    position = fields.Function(fields.Integer("Place in Line",
            help="Place among today's waiting patients of the OPD."),
        'get_position')
    patient_age = fields.Function(fields.Char("Age"), 'get_patient_age')
    patient_gender = fields.Function(fields.Selection(
            'get_genders', "Gender"), 'get_patient_gender')
    records = fields.Function(fields.Integer("Records"), 'get_records')
    wait_minutes = fields.Function(
        fields.Integer("Waited (min)"), 'get_wait_minutes')
    my_opd = fields.Function(
        fields.Boolean("In My OPDs"), 'get_my_opd', searcher='search_my_opd')
    today = fields.Function(fields.Boolean("Today",
            help="Of the OPD's current day (in the OPD's timezone)."),
        'get_today', searcher='search_today')

    def get_patient_age(self, name):
        return self.patient.age

    @classmethod
    def get_genders(cls):
        Party = Pool().get('party.party')
        return Party.fields_get(['gender'])['gender']['selection']

    def get_patient_gender(self, name):
        return self.patient.party.gender

    @classmethod
    def get_position(cls, tokens, name):
        "One query per queue, whatever the number of tokens."
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        positions = {t.id: None for t in tokens}
        for queue in {t.queue.id for t in tokens if t.state == 'waiting'}:
            cursor.execute(*table.select(table.id,
                    where=(table.queue == queue)
                    & (table.state == 'waiting'),
                    order_by=[table.seq.asc, table.id.asc]))
            for position, (token_id,) in enumerate(cursor, 1):
                if token_id in positions:
                    positions[token_id] = position
        return positions

    @classmethod
    def get_records(cls, tokens, name):
        Attachment = Pool().get('ir.attachment')
        counts = {t.id: 0 for t in tokens}
        for attachment in Attachment.search([
                    ('resource', 'in', [str(t) for t in tokens]),
                    ]):
            counts[attachment.resource.id] += 1
        return counts

    @classmethod
    def _my_opd_ids(cls):
        HealthProfessional = Pool().get('gnuhealth.healthprofessional')
        healthprof = HealthProfessional.of_user(Transaction().user)
        return {o.id for o in healthprof.sehat_opds} if healthprof else set()

    @classmethod
    def get_my_opd(cls, tokens, name):
        mine = cls._my_opd_ids()
        return {t.id: t.opd.id in mine for t in tokens}

    @classmethod
    def search_my_opd(cls, name, clause):
        _, operator, value = clause
        mine = list(cls._my_opd_ids())
        if (operator == '=') == bool(value):
            return [('opd', 'in', mine)]
        return [('opd', 'not in', mine)]

    def get_today(self, name):
        return self.date == self.opd.today()

    @classmethod
    def search_today(cls, name, clause):
        "Today is each OPD's own date: the browser's may be another."
        OPD = Pool().get('sehat.opd')
        _, operator, value = clause
        today = ['OR'] + [[('opd', '=', o.id), ('date', '=', o.today())]
            for o in OPD.search([('active', 'in', [True, False])])]
        if len(today) == 1:
            today = [('id', '=', -1)]
        if (operator == '=') == bool(value):
            return [today]
        return [('id', 'not in', cls.search([today], query=True))]

    def get_wait_minutes(self, name):
        end = self.called_at or dt.datetime.now()
        if self.state in {'cancelled', 'expired'} and not self.called_at:
            return None
        return int((end - self.create_date).total_seconds() // 60)

    # Hooks of the modules built on the core ------------------------------

    def consultation_url(self):
        """Where the patient goes once Call Now is answered, or None.

        None in the core: the waiting room then says "in consultation".
        The video module returns its consultation page.
        """
        return None

    def doctor_consultation_url(self):
        """The doctor's page for this consultation, or None.

        None in the core; the video module returns its consultation page
        (video, chat, patient summary) and the console links to it.
        """
        return None

    # Waiting room ----------------------------------------------------

    @classmethod
    def status(cls, patient_id, cached=True):
        """The waiting-room status of the patient's active token, or None.

        The hot path of the service: one indexed query, then the queue's
        snapshot from the per-process cache keyed by the queue's version,
        so its cost does not grow with the length of the queue. A caller
        that changed the queue in this transaction passes `cached=False`:
        a snapshot of uncommitted work must not be shared.
        """
        pool = Pool()
        Live = pool.get('sehat.opd.live')
        token = cls.__table__()
        queue = pool.get('sehat.opd.queue').__table__()
        opd = pool.get('sehat.opd').__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*token.join(queue, condition=queue.id == token.queue
                ).join(opd, condition=opd.id == token.opd
                ).select(
                token.id, token.number, token.state, token.date,
                token.call_deadline, token.answered_at, token.healthprof,
                token.queue, queue.version, token.opd, opd.timezone,
                token.missed_calls,
                where=(token.patient == patient_id)
                & token.state.in_(list(ACTIVE_STATES)),
                order_by=[token.id.desc], limit=1))
        row = cursor.fetchone()
        if not row:
            return None
        (token_id, number, state, date, deadline, answered, healthprof,
            queue_id, version, opd_id, timezone, missed_calls) = row
        if cached:
            snapshot = Live.snapshot(queue_id, version)
        else:
            snapshot = cls.queue_snapshot(queue_id)
        position = snapshot['positions'].get(token_id)
        if date < local_now(timezone).date():
            # the day has ended; the cron job has not passed yet
            state = 'expired'
        seconds_left = None
        if state == 'called' and deadline and not answered:
            seconds_left = seconds_until(deadline)
        consultation_url = None
        if state == 'in_consultation' or (state == 'called' and answered):
            consultation_url = cls(token_id).consultation_url()
        waiting = state == 'waiting'
        return {
            'token_id': token_id,
            'queue_id': queue_id,
            'token_number': number,
            'state': state,
            'date': date.isoformat(),
            'opd': {'id': opd_id, 'name': snapshot['opd_name']},
            'position': position if waiting else None,
            'waiting': snapshot['waiting'],
            'eta_seconds': eta_seconds(
                position, snapshot['doctors_online'],
                snapshot['average_seconds']) if waiting else None,
            'doctors_online': snapshot['doctors_online'],
            'doctors': snapshot['doctors'],
            'doctor': snapshot['doctor_profiles'].get(healthprof)
            if state in {'called', 'in_consultation'} else None,
            'call_deadline': _utc_iso(deadline)
            if seconds_left is not None else None,
            'call_seconds_left': seconds_left,
            'call_window': snapshot['call_window'],
            'answered': bool(answered),
            'missed_calls': missed_calls or 0,
            'consultation_url': consultation_url,
            'version': version,
            }

    @classmethod
    def waiting_status(cls, patient_id):
        """The status the waiting room shows (`status` plus `live`).

        A call whose window has passed is settled here (the token goes back
        in line) rather than shown as an answerable call until the next
        sweep of the doctor's heartbeat or the cron job.
        """
        status = cls.status(patient_id)
        if status and status['state'] == 'called' and (
                status['call_seconds_left'] == 0):
            cls.requeue_missed(token_ids=[status['token_id']])
            status = cls.status(patient_id, cached=False)
        if status is not None:
            status['live'] = Transaction().database.has_channel()
        return status

    @classmethod
    def queue_snapshot(cls, queue_id):
        "What every waiting patient of a queue sees (Live caches it)."
        pool = Pool()
        Queue = pool.get('sehat.opd.queue')
        Presence = pool.get('sehat.opd.presence')
        queue = Queue(queue_id)
        opd = queue.opd
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(table.id,
                where=(table.queue == queue_id) & (table.state == 'waiting'),
                order_by=[table.seq.asc, table.id.asc]))
        positions = {id_: i for i, (id_,) in enumerate(cursor, 1)}
        online = Presence.online_in(opd)
        profiles = {p.healthprof.id: p.healthprof.portal_profile()
            for p in Presence.search([('opd', '=', opd.id)])}
        doctors = []
        for presence in online:
            profile = dict(profiles[presence.healthprof.id])
            profile['busy'] = bool(presence.current_token)
            doctors.append(profile)
        return {
            'positions': positions,
            'waiting': len(positions),
            'opd_name': opd.rec_name,
            'call_window': opd.call_window,
            'doctors_online': len(online),
            'doctors': doctors,
            'doctor_profiles': profiles,
            'average_seconds': cls.average_consultation(opd),
            }

    @classmethod
    def average_consultation(cls, opd, sample=20):
        "Mean length in seconds of the OPD's recent consultations."
        tokens = cls.search([
                ('opd', '=', opd.id),
                ('state', '=', 'completed'),
                ('started_at', '!=', None),
                ('ended_at', '!=', None),
                ], order=[('ended_at', 'DESC')], limit=sample)
        durations = [(t.ended_at - t.started_at).total_seconds()
            for t in tokens]
        if len(durations) < 3:
            return opd.consultation_minutes * 60
        return sum(durations) / len(durations)

    # Doctor console --------------------------------------------------

    @classmethod
    def console_queue(cls, opd, limit=100):
        "The waiting patients of `opd` today, in order, as the console lists."
        pool = Pool()
        Attachment = pool.get('ir.attachment')
        Record = pool.get('sehat.opd.record')
        tokens = cls.search([
                ('opd', '=', opd.id),
                ('date', '=', opd.today()),
                ('state', '=', 'waiting'),
                ], order=[('seq', 'ASC'), ('id', 'ASC')], limit=limit)
        files = {}
        for attachment in Attachment.search([
                    ('resource', 'in', [str(t) for t in tokens]),
                    ('sehat_origin', '!=', None),
                    ], order=[('id', 'ASC')]):
            files.setdefault(attachment.resource.id, []).append(attachment)
        result = []
        for token in tokens:
            summary = token.console_summary()
            summary['files'] = [Record.describe(a)
                for a in files.get(token.id, [])]
            result.append(summary)
        return result

    def console_summary(self):
        "A token as a line of the doctor's queue."
        party = self.patient.party
        return {
            'id': self.id,
            'number': self.number,
            'state': self.state,
            'patient': {
                'name': party.name,
                'age': self.patient.age,
                'gender': party.gender,
                },
            'complaint': self.complaint,
            'records': self.records,
            'waited_minutes': self.wait_minutes,
            'missed_calls': self.missed_calls,
            }

    def console_detail(self):
        """What the doctor sees of the patient during the consultation:
        demographics, service details, complaint, records, history."""
        pool = Pool()
        Record = pool.get('sehat.opd.record')
        Message = pool.get('sehat.opd.message')
        detail = self.console_summary()
        profile = self.patient.portal_profile()
        for private in ('mobile', 'email', 'address'):
            profile.pop(private, None)
        past = self.search([
                ('patient', '=', self.patient.id),
                ('id', '!=', self.id),
                ('state', '=', 'completed'),
                ], order=[('date', 'DESC')], limit=20)
        seconds_left = None
        if (self.state == 'called' and self.call_deadline
                and not self.answered_at):
            seconds_left = seconds_until(self.call_deadline)
        detail.update({
                'opd': {'id': self.opd.id, 'name': self.opd.rec_name},
                'date': self.date.isoformat(),
                'profile': profile,
                'files': [Record.describe(a) for a in Record.list(self)],
                'history': [t.portal_summary() for t in past],
                'doctor': self.healthprof.id if self.healthprof else None,
                'call_deadline': _utc_iso(self.call_deadline),
                'call_seconds_left': seconds_left,
                'call_window': self.opd.call_window,
                'answered': bool(self.answered_at),
                'started_at': _utc_iso(self.started_at),
                'messages': Message.search_count([('token', '=', self.id)]),
                'consultation_url': self.doctor_consultation_url(),
                })
        return detail

    def portal_summary(self):
        "A past or present token as the patient sees it."
        return {
            'token_number': self.number,
            'opd': {'id': self.opd.id, 'name': self.opd.rec_name},
            'date': self.date.isoformat(),
            'state': self.state,
            'complaint': self.complaint,
            'doctor': self.healthprof.rec_name if self.healthprof else None,
            }
