"Which doctors are online, in which OPD, and whether they are free."
import datetime as dt

from sql import Null

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction

from .exceptions import Forbidden, TokenStateError
from .opd import lock_rows


class Presence(ModelSQL, ModelView):
    """Doctor Presence

    One row per doctor. A doctor is busy while `current_token` is set (a
    patient called or in consultation) and free otherwise. The doctor
    console sends heartbeats; without them for the configured timeout the
    doctor is set offline by the cron job.
    """
    __name__ = 'sehat.opd.presence'

    healthprof = fields.Many2One(
        'gnuhealth.healthprofessional', "Doctor", required=True,
        readonly=True, ondelete='CASCADE')
    opd = fields.Many2One(
        'sehat.opd', "OPD", readonly=True, ondelete='CASCADE')
    online = fields.Boolean("Online", readonly=True)
    online_since = fields.DateTime("Online Since", readonly=True)
    last_heartbeat = fields.DateTime("Last Heartbeat", readonly=True)
    current_token = fields.Many2One(
        'sehat.opd.token', "Current Patient", readonly=True,
        ondelete='SET NULL')
    busy = fields.Function(fields.Boolean("Busy"), 'get_busy')
    # durations, not datetimes, in lists: the web client has no datetime
    # column (and "silent for 3 min" is what staff want to know)
    online_for = fields.Function(
        fields.TimeDelta("Online For"), 'get_durations')
    silent_for = fields.Function(fields.TimeDelta("Silent For",
            help="Time since the doctor's console last sent a heartbeat."),
        'get_durations')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('healthprof_uniq', Unique(t, t.healthprof),
                'sehat_opd.msg_presence_unique'),
            ]
        cls._sql_indexes.add(
            Index(t, (t.opd, Index.Equality()), (t.online, Index.Equality())))
        cls._order = [('opd', 'ASC'), ('online', 'DESC')]

    @classmethod
    def default_online(cls):
        return False

    def get_busy(self, name):
        return bool(self.current_token)

    @classmethod
    def get_durations(cls, presences, names):
        now = dt.datetime.now().replace(microsecond=0)
        result = {name: {} for name in names}
        for presence in presences:
            if 'online_for' in names:
                result['online_for'][presence.id] = (
                    now - presence.online_since.replace(microsecond=0)
                    if presence.online and presence.online_since else None)
            if 'silent_for' in names:
                result['silent_for'][presence.id] = (
                    now - presence.last_heartbeat.replace(microsecond=0)
                    if presence.last_heartbeat else None)
        return result

    def get_rec_name(self, name):
        return self.healthprof.rec_name

    @classmethod
    def of(cls, healthprof, lock=True):
        "The doctor's presence row (created at first use), locked."
        presences = cls.search([('healthprof', '=', healthprof.id)])
        if not presences:
            presences = cls.create([{'healthprof': healthprof.id}])
        presence, = presences
        if lock:
            cursor = Transaction().connection.cursor()
            lock_rows(cursor, cls._table, [presence.id])
            presence = cls(presence.id)
        return presence

    @classmethod
    def timeout(cls):
        Configuration = Pool().get('sehat.opd.configuration')
        return dt.timedelta(seconds=Configuration(1).presence_timeout)

    @classmethod
    def online_in(cls, opd):
        "The doctors online in `opd` with a recent heartbeat."
        return cls.search([
                ('opd', '=', opd.id),
                ('online', '=', True),
                ('last_heartbeat', '>=', dt.datetime.now() - cls.timeout()),
                ], order=[('online_since', 'ASC')])

    @classmethod
    def lock_free(cls, opd):
        """Yield the free online doctors of `opd`, each locked in turn.

        Rows another transaction holds are skipped (that transaction is
        assigning to that doctor); the rest are re-read after the lock.
        """
        table = cls.__table__()
        transaction = Transaction()
        database = transaction.database
        cursor = transaction.connection.cursor()
        query = table.select(table.id,
            where=(table.opd == opd.id) & (table.online == True)  # noqa
            & (table.current_token == Null)
            & (table.last_heartbeat >= dt.datetime.now() - cls.timeout()),
            order_by=[table.last_heartbeat.asc])
        if database.has_select_for():
            For = database.get_select_for_skip_locked()
            query.for_ = For('UPDATE')
        cursor.execute(*query)
        for presence_id, in cursor.fetchall():
            presence = cls(presence_id)
            if presence.online and not presence.current_token:
                yield presence

    def go_online(self, opd):
        """Put the doctor online in `opd` (one of theirs); patients waiting
        there are dispatched at once."""
        Token = Pool().get('sehat.opd.token')
        if self.healthprof not in opd.doctors:
            raise Forbidden(gettext('sehat_opd.msg_presence_not_opd_doctor',
                    opd=opd.rec_name))
        if self.current_token and self.opd != opd:
            raise TokenStateError(gettext('sehat_opd.msg_presence_busy'))
        previous = self.opd
        now = dt.datetime.now()
        if not self.online or previous != opd:
            self.online_since = now
        self.opd = opd
        self.online = True
        self.last_heartbeat = now
        self.save()
        self.__class__.bump_opds({previous, opd})
        Token.dispatch(opd)
        return self

    def go_offline(self):
        "Stop receiving patients; a patient already called stays called."
        self.online = False
        self.save()
        self.__class__.bump_opds({self.opd})

    def heartbeat(self):
        """The console is open: keep the doctor online.

        Also the moment to requeue the OPD's called patients who let the
        window pass, rather than waiting for the cron job, and to give a
        free doctor the patient whose pause after a missed call is over.
        """
        Token = Pool().get('sehat.opd.token')
        self.last_heartbeat = dt.datetime.now()
        self.save()
        if self.opd:
            Token.requeue_missed(self.opd)
            if self.online and not self.__class__(self.id).current_token:
                Token.dispatch(self.opd)

    def call_next(self):
        "The doctor's 'Call next patient': return the token called."
        Token = Pool().get('sehat.opd.token')
        if not self.online or not self.opd:
            raise TokenStateError(gettext('sehat_opd.msg_presence_offline'))
        if self.current_token:
            raise TokenStateError(gettext('sehat_opd.msg_presence_busy'))
        self.last_heartbeat = dt.datetime.now()
        token = Token.assign_next(self, automatic=False)
        if token is None:
            raise TokenStateError(gettext('sehat_opd.msg_queue_empty'))
        return token

    @classmethod
    def release(cls, tokens):
        "Free the doctors whose current patient is among `tokens`."
        presences = cls.search([
                ('current_token', 'in', [t.id for t in tokens]),
                ])
        if presences:
            cls.write(presences, {'current_token': None})

    @classmethod
    def bump_opds(cls, opds):
        "Tell the waiting rooms of today's queues of `opds` (doctors list)."
        pool = Pool()
        Queue = pool.get('sehat.opd.queue')
        queues = Queue.search([
                ('opd', 'in', [o.id for o in opds if o]),
                ('date', 'in', list({o.today() for o in opds if o})),
                ])
        Queue.bump([q.id for q in queues])

    @classmethod
    def cron_drop_stale(cls):
        cls.drop_stale()

    @classmethod
    def drop_stale(cls):
        """Set offline the doctors whose console stopped beating (cron).

        A patient they had called and who had not answered yet goes back to
        the head of the line, without a missed call: the doctor left, not
        the patient.
        """
        pool = Pool()
        Token = pool.get('sehat.opd.token')
        stale = cls.search([
                ('online', '=', True),
                ('last_heartbeat', '<', dt.datetime.now() - cls.timeout()),
                ])
        if not stale:
            return []
        called = [p.current_token for p in stale
            if p.current_token and p.current_token.state == 'called']
        cls.write(stale, {'online': False})
        if called:
            Token.requeue(called, front=True)
        cls.bump_opds({p.opd for p in stale})
        return stale


class HealthProfessional(metaclass=PoolMeta):
    __name__ = 'gnuhealth.healthprofessional'

    sehat_opds = fields.Many2Many(
        'sehat.opd-gnuhealth.healthprofessional', 'healthprof', 'opd',
        "Online OPDs")
    qualification = fields.Char(
        "Qualification", help="As printed on prescriptions, e.g. MBBS, MD.")
    registration_council = fields.Char(
        "Registration Council",
        help="The medical council of the registration number (license ID), "
        "e.g. Delhi Medical Council or National Medical Commission.")

    def portal_profile(self):
        "What patients see of an online doctor."
        specialty = self.main_specialty
        return {
            'id': self.id,
            'name': self.party.rec_name,
            'specialty': specialty.specialty.name if specialty else None,
            'qualification': self.qualification,
            }

    @classmethod
    def of_user(cls, user_id):
        "The health professional of a back-office user, or None."
        records = cls.search([('party.internal_user', '=', user_id)], limit=1)
        return records[0] if records else None
