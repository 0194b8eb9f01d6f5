"OPDs: the online clinics patients take tokens for, and their daily queues."
from functools import wraps
from zoneinfo import ZoneInfo, available_timezones

from sql import For, Table

from trytond.i18n import gettext
from trytond.model import DeactivableMixin, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

from . import tools
from .exceptions import OPDValidationError

WEEKDAYS = [
    ('0', "Monday"), ('1', "Tuesday"), ('2', "Wednesday"), ('3', "Thursday"),
    ('4', "Friday"), ('5', "Saturday"), ('6', "Sunday")]
_TIMEZONES = sorted(available_timezones())


class OPD(DeactivableMixin, ModelSQL, ModelView):
    "Online OPD"
    __name__ = 'sehat.opd'

    name = fields.Char("Name", required=True, translate=True)
    code = fields.Char("Code", required=True)
    kind = fields.Selection([
            ('general', "General"),
            ('specialty', "Specialty"),
            ], "Kind", required=True)
    institution = fields.Many2One(
        'gnuhealth.institution', "Institution", required=True,
        ondelete='RESTRICT')
    specialty = fields.Many2One(
        'gnuhealth.specialty', "Specialty", ondelete='RESTRICT',
        states={
            'required': Eval('kind') == 'specialty',
            'invisible': Eval('kind') != 'specialty',
            })
    description = fields.Text("Description", translate=True)
    timezone = fields.Selection(
        [(z, z) for z in _TIMEZONES], "Timezone", required=True,
        sort=False)
    round_the_clock = fields.Boolean(
        "Open Round the Clock", help="Open every day, day and night.")
    hours = fields.One2Many(
        'sehat.opd.hours', 'opd', "Hours",
        states={'invisible': Eval('round_the_clock', False)})
    holidays = fields.One2Many('sehat.opd.holiday', 'opd', "Holidays")
    daily_token_cap = fields.Integer(
        "Daily Token Cap", required=True,
        help="Tokens that can be issued in one day.")
    waiting_cap = fields.Integer(
        "Waiting Room Cap", required=True,
        help="Patients that can wait at the same time.")
    consultation_minutes = fields.Integer(
        "Expected Consultation", required=True,
        help="In minutes; used for waiting time estimates until there is "
        "history.")
    consultation_limit = fields.Integer(
        "Consultation Time Limit", required=True, help="In minutes.")
    call_window = fields.Integer(
        "Call Now Window", required=True,
        help="Seconds the patient has to answer Call Now.")
    doctors = fields.Many2Many(
        'sehat.opd-gnuhealth.healthprofessional', 'opd', 'healthprof',
        "Doctors")
    open_now = fields.Function(fields.Boolean("Open Now"), 'get_live')
    doctors_online = fields.Function(
        fields.Integer("Doctors Online"), 'get_live')
    waiting = fields.Function(fields.Integer("Waiting Now"), 'get_live')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('code_uniq', Unique(t, t.code), 'sehat_opd.msg_opd_code_unique'),
            ]
        cls._order = [('kind', 'ASC'), ('name', 'ASC')]

    @classmethod
    def default_kind(cls):
        return 'general'

    @classmethod
    def default_timezone(cls):
        return 'Asia/Kolkata'

    @classmethod
    def default_daily_token_cap(cls):
        return 500

    @classmethod
    def default_waiting_cap(cls):
        return 200

    @classmethod
    def default_consultation_minutes(cls):
        return 10

    @classmethod
    def default_consultation_limit(cls):
        return 30

    @classmethod
    def default_call_window(cls):
        Configuration = Pool().get('sehat.opd.configuration')
        return Configuration(1).call_window

    @classmethod
    def default_hours(cls):
        "Monday to Saturday, within the default hours of the settings."
        Configuration = Pool().get('sehat.opd.configuration')
        config = Configuration(1)
        return [{
                'weekday': str(day),
                'open_time': config.default_open_time,
                'close_time': config.default_close_time,
                } for day in range(6)]

    @classmethod
    def get_live(cls, opds, names):
        "Today's figures of the OPDs, for the staff's list."
        pool = Pool()
        Presence = pool.get('sehat.opd.presence')
        Token = pool.get('sehat.opd.token')
        Queue = pool.get('sehat.opd.queue')
        result = {name: {} for name in names}
        for opd in opds:
            if 'open_now' in names:
                result['open_now'][opd.id] = opd.is_open()
            if 'doctors_online' in names:
                result['doctors_online'][opd.id] = len(
                    Presence.online_in(opd))
            if 'waiting' in names:
                queues = Queue.search([
                        ('opd', '=', opd.id), ('date', '=', opd.today())])
                result['waiting'][opd.id] = (
                    Token.waiting_count(queues[0]) if queues else 0)
        return result

    @classmethod
    def validate_fields(cls, opds, field_names):
        super().validate_fields(opds, field_names)
        for opd in opds:
            for name in ['daily_token_cap', 'waiting_cap',
                    'consultation_minutes', 'consultation_limit',
                    'call_window']:
                if (getattr(opd, name) or 0) <= 0:
                    raise OPDValidationError(gettext(
                            'sehat_opd.msg_opd_positive',
                            field=cls._fields[name].string, opd=opd.rec_name))

    @classmethod
    def get_portal(cls, opd_id):
        "The active OPD of id `opd_id` as sent by a patient; 422 if none."
        from .exceptions import InvalidInput
        if isinstance(opd_id, str) and opd_id.isdigit():
            opd_id = int(opd_id)
        if not isinstance(opd_id, int) or isinstance(opd_id, bool):
            raise InvalidInput(gettext('sehat_opd.msg_opd_unknown'),
                field='opd')
        opds = cls.search([('id', '=', opd_id)])
        if not opds:
            raise InvalidInput(gettext('sehat_opd.msg_opd_unknown'),
                field='opd')
        return opds[0]

    @classmethod
    def portal_list(cls):
        "The OPDs as the portal lists them, with today's live figures."
        pool = Pool()
        Presence = pool.get('sehat.opd.presence')
        Token = pool.get('sehat.opd.token')
        Queue = pool.get('sehat.opd.queue')
        result = []
        for opd in cls.search([]):
            queues = Queue.search([
                    ('opd', '=', opd.id), ('date', '=', opd.today())])
            online = Presence.online_in(opd)
            opening = opd.next_opening()
            result.append({
                    'id': opd.id,
                    'name': opd.rec_name,
                    'code': opd.code,
                    'kind': opd.kind,
                    'specialty': opd.specialty.name if opd.specialty
                    else None,
                    'description': opd.description,
                    'open_now': opd.is_open(),
                    'hours': opd.hours_text(),
                    'next_opening': opening.isoformat() if opening else None,
                    'doctors_online': len(online),
                    'doctors': [dict(p.healthprof.portal_profile(),
                            busy=bool(p.current_token)) for p in online],
                    'waiting': Token.waiting_count(queues[0])
                    if queues else 0,
                    })
        return result

    # Opening hours: everything is decided in the OPD's own timezone.

    def _schedule(self):
        hours = [(int(h.weekday), h.open_time, h.close_time)
            for h in self.hours]
        holidays = {h.date for h in self.holidays}
        return hours, holidays

    def local_now(self, now=None):
        return tools.local_now(self.timezone, now)

    def today(self, now=None):
        "The OPD's current date, which is the date of its tokens."
        return self.local_now(now).date()

    def is_open(self, now=None):
        hours, holidays = self._schedule()
        return tools.is_open(
            hours, holidays, self.local_now(now), self.round_the_clock)

    def next_opening(self, now=None):
        "The next opening as an aware datetime in the OPD's timezone."
        hours, holidays = self._schedule()
        local = tools.next_opening(
            hours, holidays, self.local_now(now), self.round_the_clock)
        return local and local.replace(tzinfo=ZoneInfo(self.timezone))

    def is_holiday(self, now=None):
        return self.today(now) in {h.date for h in self.holidays}

    def hours_text(self):
        "Opening hours in a compact human form, e.g. 'Mon-Sat 09:00-17:00'."
        if self.round_the_clock:
            return '24x7'
        by_time = {}
        for line in sorted(self.hours, key=lambda h: int(h.weekday)):
            key = (line.open_time, line.close_time)
            by_time.setdefault(key, []).append(int(line.weekday))
        names = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']
        parts = []
        for (start, end), days in by_time.items():
            if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
                label = '%s-%s' % (names[days[0]], names[days[-1]])
            else:
                label = ','.join(names[d] for d in days)
            parts.append('%s %s-%s' % (
                    label, start.strftime('%H:%M'), end.strftime('%H:%M')))
        return '; '.join(parts)


class OPDHours(ModelSQL, ModelView):
    "OPD Opening Hours"
    __name__ = 'sehat.opd.hours'

    opd = fields.Many2One(
        'sehat.opd', "OPD", required=True, ondelete='CASCADE')
    weekday = fields.Selection(WEEKDAYS, "Day", required=True, sort=False)
    open_time = fields.Time("Opens", required=True)
    close_time = fields.Time("Closes", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('weekday', 'ASC'), ('open_time', 'ASC')]

    @classmethod
    def validate_fields(cls, lines, field_names):
        super().validate_fields(lines, field_names)
        for line in lines:
            if line.open_time >= line.close_time:
                raise OPDValidationError(gettext(
                        'sehat_opd.msg_opd_hours_order'))


class OPDHoliday(ModelSQL, ModelView):
    "OPD Holiday"
    __name__ = 'sehat.opd.holiday'

    opd = fields.Many2One(
        'sehat.opd', "OPD", required=True, ondelete='CASCADE')
    date = fields.Date("Date", required=True)
    name = fields.Char("Occasion")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('date_uniq', Unique(t, t.opd, t.date),
                'sehat_opd.msg_opd_holiday_unique'),
            ]
        cls._order = [('date', 'ASC')]


class OPDDoctor(ModelSQL):
    "OPD Doctor"
    __name__ = 'sehat.opd-gnuhealth.healthprofessional'

    opd = fields.Many2One(
        'sehat.opd', "OPD", required=True, ondelete='CASCADE')
    healthprof = fields.Many2One(
        'gnuhealth.healthprofessional', "Doctor", required=True,
        ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('opd_doctor_uniq', Unique(t, t.opd, t.healthprof),
                'sehat_opd.msg_opd_doctor_unique'),
            ]


class Queue(ModelSQL, ModelView):
    """OPD Day Queue

    One row per OPD and day: it hands out the token numbers and queue
    places, and its `version` changes whenever anything a waiting patient
    sees changes, so the waiting-room status can be cached per version.
    """
    __name__ = 'sehat.opd.queue'

    opd = fields.Many2One(
        'sehat.opd', "OPD", required=True, ondelete='CASCADE', readonly=True)
    date = fields.Date("Date", required=True, readonly=True)
    last_number = fields.Integer("Last Token Number", readonly=True)
    tail = fields.Integer(
        "Tail", readonly=True, help="Place of the last patient in line.")
    head = fields.Integer(
        "Head", readonly=True,
        help="Place before the first patient (for referrals).")
    version = fields.Integer("Version", readonly=True)
    tokens = fields.One2Many('sehat.opd.token', 'queue', "Tokens",
        readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('opd_date_uniq', Unique(t, t.opd, t.date),
                'sehat_opd.msg_queue_unique'),
            ]
        cls._order = [('date', 'DESC'), ('opd', 'ASC')]

    @classmethod
    def default_last_number(cls):
        return 0

    @classmethod
    def default_tail(cls):
        return 0

    @classmethod
    def default_head(cls):
        return 0

    @classmethod
    def default_version(cls):
        return 0

    def get_rec_name(self, name):
        return '%s %s' % (self.opd.rec_name, self.date)

    @classmethod
    def get_locked(cls, opd, date):
        """Return the queue of `opd` on `date`, locked for this transaction.

        The OPD row is locked first so that two requests creating the day's
        queue at the same time are serialised instead of colliding.
        """
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        lock_rows(cursor, 'sehat_opd', [opd.id])
        queues = cls.search([('opd', '=', opd.id), ('date', '=', date)])
        if queues:
            queue, = queues
            lock_rows(cursor, cls._table, [queue.id])
            return cls(queue.id)
        queue, = cls.create([{'opd': opd.id, 'date': date}])
        return queue

    @classmethod
    def bump(cls, queue_ids):
        "Mark that what waiting patients of these queues see has changed."
        pool = Pool()
        if not queue_ids:
            return
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.version], [table.version + 1],
                where=table.id.in_(list(queue_ids))))
        Live = pool.get('sehat.opd.live')
        Live.publish_queues(queue_ids)


def read_committed():
    """Run the current transaction at READ COMMITTED (PostgreSQL).

    Call it first thing in a transaction that takes row locks on shared
    rows (the OPD's day queue, a doctor's presence): it discards what the
    transaction did so far. trytond runs transactions at REPEATABLE READ,
    where a transaction that waited for a row lock is rolled back as soon as
    the holder commits a change to that row; n clients racing for one queue
    then cost O(n²) attempts and exhaust trytond's retries. At READ COMMITTED
    the waiter gets the lock and reads what the holder committed, so the
    lock alone serialises them. The connection goes back to REPEATABLE READ
    when trytond takes it from its pool again.
    """
    from trytond import backend
    if backend.name != 'postgresql':
        return
    from psycopg2.extensions import ISOLATION_LEVEL_READ_COMMITTED
    connection = Transaction().connection
    connection.rollback()
    connection.set_session(isolation_level=ISOLATION_LEVEL_READ_COMMITTED)


def at_read_committed(func):
    """Decorate a back-office procedure (the `decorator` of its RPC) to run
    at READ COMMITTED: the dispatcher calls it first thing in its
    transaction, so read_committed() discards nothing. For buttons that
    change the queue's shared rows (see read_committed)."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        read_committed()
        return func(*args, **kwargs)
    return wrapper


def lock_rows(cursor, table_name, ids):
    "SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers anyway."
    if not ids or not Transaction().database.has_select_for():
        return
    table = Table(table_name)
    cursor.execute(*table.select(
            table.id, where=table.id.in_(list(ids)), for_=For('UPDATE')))
