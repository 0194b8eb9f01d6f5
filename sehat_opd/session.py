"Sessions of the portal (patients) and of the doctor console (users)."
import datetime as dt

from sql import Null

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from . import tools
from .exceptions import InvalidInput, TooManyRequests, Unauthorized
from .otp import lock_mobile

# last activity is written at most this often, so that the waiting room's
# frequent status calls stay read-mostly
TOUCH_SECONDS = 60
# a session never lives longer than this, however active
MAX_AGE = dt.timedelta(hours=12)


class Session(ModelSQL, ModelView):
    """Portal Session

    The key is only given to the client (cookie or bearer); the database
    keeps its keyed hash, so a copy of the table cannot be replayed.
    """
    __name__ = 'sehat.opd.session'

    key_hash = fields.Char("Key Hash", required=True, readonly=True)
    csrf = fields.Char("CSRF Token", required=True, readonly=True)
    patient = fields.Many2One(
        'gnuhealth.patient', "Patient", readonly=True, ondelete='CASCADE')
    user = fields.Many2One(
        'res.user', "User", readonly=True, ondelete='CASCADE')
    last_activity = fields.DateTime("Last Activity", readonly=True)
    ended = fields.DateTime("Ended", readonly=True)
    address = fields.Char("Client Address", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.key_hash, Index.Equality())),
                Index(t, (t.patient, Index.Equality())),
                })
        cls._order = [('create_date', 'DESC')]

    @classmethod
    def start(cls, patient=None, user=None, address=None):
        """Open a new session and return (session, key).

        A fresh key at every login: a key seen before login (fixation) is
        worthless after it.
        """
        key = tools.new_key()
        session, = cls.create([{
                    'key_hash': tools.hash_secret(key, 'session'),
                    'csrf': tools.new_key(24),
                    'patient': patient.id if patient else None,
                    'user': user.id if user else None,
                    'last_activity': dt.datetime.now(),
                    'address': address,
                    }])
        return session, key

    @classmethod
    def check(cls, key, kind='patient'):
        """Return the live session of `key` or None.

        `kind` is 'patient' or 'user'. A session idle longer than the
        configured timeout is ended here.
        """
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        owner = table.patient if kind == 'patient' else table.user
        cursor.execute(*table.select(
                table.id, owner, table.csrf, table.last_activity,
                table.create_date,
                where=(table.key_hash == tools.hash_secret(key, 'session'))
                & (table.ended == Null) & (owner != Null),
                limit=1))
        row = cursor.fetchone()
        if not row:
            return None
        session_id, owner_id, csrf, last_activity, created = row
        now = dt.datetime.now()
        idle = dt.timedelta(
            minutes=Configuration.cached('session_idle_timeout'))
        writable = not Transaction().readonly
        if now - last_activity > idle or now - created > MAX_AGE:
            if writable:
                cursor.execute(*table.update(
                        [table.ended], [now], where=table.id == session_id))
            return None
        if writable and (
                now - last_activity).total_seconds() > TOUCH_SECONDS:
            cursor.execute(*table.update(
                    [table.last_activity], [now],
                    where=table.id == session_id))
        return SessionInfo(session_id, owner_id, csrf, kind)

    @classmethod
    def end(cls, session_id):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.ended], [dt.datetime.now()],
                where=(table.id == session_id) & (table.ended == Null)))

    @classmethod
    def end_key(cls, key):
        "End the session of `key`, if it is one."
        if not isinstance(key, str) or not key or len(key) > 200:
            return
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.ended], [dt.datetime.now()],
                where=(table.key_hash == tools.hash_secret(key, 'session'))
                & (table.ended == Null)))

    @classmethod
    def login_verified(cls, verification):
        """The patient whose mobile the OTP `verification` key proves.

        The key is spent; a mobile without a patient is refused with the
        generic login message.
        """
        pool = Pool()
        OTP = pool.get('sehat.opd.otp')
        Patient = pool.get('gnuhealth.patient')
        mobile = OTP.consume(verification, 'login')
        patient = Patient.by_mobile(mobile)
        if not patient:
            raise Unauthorized(gettext('sehat_opd.msg_login_failed'))
        return patient

    @classmethod
    def login_with_token(cls, mobile_text, token_number, address):
        """Log a patient in with mobile + the number of their active token.

        Return (patient, None) or (None, error): a failure is counted and
        must be committed, so it is returned, not raised. After
        `token_login_max_failures` failures for one mobile in an hour only
        OTP login works for it; failures from one client address are
        limited as OTP requests are.
        """
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        RateEvent = pool.get('sehat.opd.rate_event')
        OTP = pool.get('sehat.opd.otp')
        Patient = pool.get('gnuhealth.patient')
        Token = pool.get('sehat.opd.token')
        config = Configuration(1)
        mobile = OTP.check_mobile(mobile_text)
        number = parse_token_number(token_number)
        if number is None:
            raise InvalidInput(
                gettext('sehat_opd.msg_login_token_number'),
                field='token_number')
        # one guess at a time per mobile, counted as committed now:
        # parallel guesses would all pass before any failure is counted
        if not lock_mobile('token_login', mobile):
            raise TooManyRequests(gettext('sehat_opd.msg_rate_limited'))
        if RateEvent.count('token_login', mobile, fresh=True) >= (
                config.token_login_max_failures):
            raise TooManyRequests(gettext('sehat_opd.msg_token_login_locked'))
        if RateEvent.count('token_login_address', address) >= (
                config.otp_per_address_hour):
            raise TooManyRequests(gettext('sehat_opd.msg_rate_limited'))
        patient = Patient.by_mobile(mobile)
        token = patient and Token.current(patient)
        if token and token.number == number:
            return patient, None
        RateEvent.add('token_login', mobile)
        RateEvent.add('token_login_address', address)
        return None, Unauthorized(gettext('sehat_opd.msg_login_failed'))

    @classmethod
    def purge(cls, days=30):
        "Delete sessions ended or idle for `days` (cron)."
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        limit = dt.datetime.now() - dt.timedelta(days=days)
        cursor.execute(*table.delete(where=table.last_activity < limit))


def parse_token_number(value):
    "The token number typed by a patient (1 to 99999), or None."
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdecimal() and (
            len(value.strip()) <= 5):
        number = int(value.strip())
    else:
        return None
    return number if 0 < number < 100000 else None


class SessionInfo:
    "What a route needs of a checked session, without loading the record."
    __slots__ = ('id', 'owner', 'csrf', 'kind')

    def __init__(self, id, owner, csrf, kind):
        self.id = id
        self.owner = owner
        self.csrf = csrf
        self.kind = kind
