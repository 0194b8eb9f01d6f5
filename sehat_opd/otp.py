"One-time passwords sent by SMS, and the rate limits that protect them."
import datetime as dt

from sql import Literal, Select
from sql.aggregate import Count

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.transaction import Transaction

from . import tools
from .opd import lock_rows
from .exceptions import InvalidInput, OTPError, TooManyRequests

PURPOSES = [
    ('register', "Registration"),
    ('login', "Login"),
    ('recover', "Recovery"),
    ]
# a verified OTP must be used for its purpose within this delay
VERIFICATION_MINUTES = 15


class OTP(ModelSQL, ModelView):
    """One-Time Password

    Only a keyed hash of the code is stored. A verified OTP yields a
    verification key, itself stored hashed, that the next step (register,
    log in) presents once.
    """
    __name__ = 'sehat.opd.otp'

    mobile = fields.Char("Mobile", required=True, readonly=True)
    purpose = fields.Selection(PURPOSES, "Purpose", required=True,
        readonly=True)
    salt = fields.Char("Salt", readonly=True)
    code_hash = fields.Char("Code Hash", readonly=True)
    expires = fields.DateTime("Expires", required=True, readonly=True)
    attempts = fields.Integer("Attempts", readonly=True)
    verified = fields.DateTime("Verified", readonly=True)
    verification_hash = fields.Char("Verification Hash", readonly=True)
    used = fields.DateTime("Used", readonly=True)
    address = fields.Char("Client Address", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.mobile, Index.Equality()),
                    (t.create_date, Index.Range())),
                Index(t, (t.verification_hash, Index.Equality())),
                })
        cls._order = [('create_date', 'DESC')]

    @classmethod
    def default_attempts(cls):
        return 0

    @classmethod
    def request(cls, mobile_text, purpose, address):
        """Create and send an OTP; return (otp, resend_after, expires_in).

        The work done and the answer are the same whether or not the mobile
        belongs to a patient, so the API does not tell who is registered.
        """
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        RateEvent = pool.get('sehat.opd.rate_event')
        Patient = pool.get('gnuhealth.patient')
        Notifier = pool.get('sehat.opd.notifier')
        config = Configuration(1)

        if not isinstance(purpose, str) or purpose not in dict(PURPOSES):
            raise InvalidInput(
                gettext('sehat_opd.msg_otp_purpose'), field='purpose')
        mobile = cls.check_mobile(mobile_text)
        # A burst of requests for one mobile sends one OTP: one request at
        # a time holds the mobile, and the last OTP is read as committed
        # now (see last_sent), not as the transaction's snapshot had it.
        if not lock_mobile('otp', mobile):
            raise TooManyRequests(gettext(
                    'sehat_opd.msg_otp_resend_wait',
                    seconds=config.otp_resend_after), field='mobile')

        now = dt.datetime.now()
        RateEvent.check_and_add(
            'otp_address', address, config.otp_per_address_hour)
        last = cls.last_sent(mobile, purpose)
        if last and (now - last).total_seconds() < config.otp_resend_after:
            raise TooManyRequests(gettext(
                    'sehat_opd.msg_otp_resend_wait',
                    seconds=config.otp_resend_after), field='mobile')
        RateEvent.check_and_add(
            'otp_mobile', mobile, config.otp_per_mobile_hour)

        code = tools.new_otp_code()
        salt = tools.new_key(12)
        otp, = cls.create([{
                    'mobile': mobile,
                    'purpose': purpose,
                    'salt': salt,
                    'code_hash': tools.hash_secret(code, salt),
                    'expires': now + dt.timedelta(
                        minutes=config.otp_validity),
                    'address': address,
                    }])
        patient = Patient.by_mobile(mobile)
        values = {'otp': code, 'minutes': config.otp_validity}
        # Registration OTPs go to anyone (the person proves they hold the
        # mobile); login and recovery OTPs only to registered mobiles.
        if purpose == 'register' or patient:
            Notifier.notify('otp', mobile=mobile, patient=patient,
                values=values)
        else:
            # the same work as a message, so the time taken does not tell
            # who is registered
            Notifier.render('otp', values)
        return otp, config.otp_resend_after, config.otp_validity * 60

    @classmethod
    def last_sent(cls, mobile, purpose):
        """When the last OTP for `mobile` and `purpose` was created.

        Read in a transaction of its own: the caller's snapshot may predate
        the commit of a parallel request that held the mobile's lock.
        "Resend" is asking again for the same purpose: the login OTP right
        after a registration is not one.
        """
        with Transaction().new_transaction(readonly=True):
            last = cls.search([
                    ('mobile', '=', mobile),
                    ('purpose', '=', purpose),
                    ], limit=1, order=[('create_date', 'DESC')])
            return last[0].create_date if last else None

    @staticmethod
    def check_mobile(text):
        "The E.164 form of an Indian mobile; 422 naming the field if not."
        mobile = tools.normalize_mobile(text)
        if not mobile:
            raise InvalidInput(
                gettext('sehat_opd.msg_mobile_invalid'), field='mobile')
        return mobile

    @classmethod
    def verify(cls, otp_id, code):
        """Check `code` against the OTP.

        Return (otp, verification key, None) on success. A wrong code is
        counted, so the error comes back as the third item instead of being
        raised (raising would roll the count back); the caller commits and
        answers it. Errors that change nothing are raised.
        """
        pool = Pool()
        Configuration = pool.get('sehat.opd.configuration')
        config = Configuration(1)
        otp = cls._get_locked(otp_id)
        now = dt.datetime.now()
        if otp is None or otp.used or otp.verified:
            raise OTPError(gettext('sehat_opd.msg_otp_invalid'), field='code')
        if otp.attempts >= config.otp_max_attempts:
            raise TooManyRequests(
                gettext('sehat_opd.msg_otp_attempts'), field='code')
        if now > otp.expires:
            raise OTPError(gettext('sehat_opd.msg_otp_expired'), field='code')
        if not isinstance(code, str) or not tools.check_secret(
                code.strip(), otp.salt, otp.code_hash):
            otp.attempts += 1
            otp.save()
            if otp.attempts >= config.otp_max_attempts:
                error = TooManyRequests(
                    gettext('sehat_opd.msg_otp_attempts'), field='code')
            else:
                error = OTPError(
                    gettext('sehat_opd.msg_otp_invalid'), field='code')
            return otp, None, error
        key = tools.new_key()
        otp.verified = now
        otp.verification_hash = tools.hash_secret(key, 'verification')
        otp.save()
        return otp, key, None

    @classmethod
    def _get_locked(cls, otp_id):
        if not isinstance(otp_id, int) or isinstance(otp_id, bool):
            raise InvalidInput(
                gettext('sehat_opd.msg_otp_id'), field='otp_id')
        cursor = Transaction().connection.cursor()
        lock_rows(cursor, cls._table, [otp_id])
        otps = cls.search([('id', '=', otp_id)])
        return otps[0] if otps else None

    @classmethod
    def verified_mobile(cls, key, purpose):
        """The mobile that the verification `key` proves for `purpose`,
        without spending the key; None when it is unknown, used or old."""
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        digest = tools.hash_secret(key, 'verification')
        otps = cls.search([
                ('verification_hash', '=', digest),
                ('purpose', '=', purpose),
                ('used', '=', None),
                ], limit=1)
        if not otps or dt.datetime.now() > otps[0].verified + dt.timedelta(
                minutes=VERIFICATION_MINUTES):
            return None
        return otps[0].mobile

    @classmethod
    def consume(cls, key, purpose, mobile=None):
        """Spend a verification key; return the verified mobile.

        The key is single use and expires VERIFICATION_MINUTES after the
        code was verified.
        """
        if not isinstance(key, str) or not key or len(key) > 200:
            raise OTPError(gettext('sehat_opd.msg_verification_invalid'),
                field='verification')
        digest = tools.hash_secret(key, 'verification')
        otps = cls.search([('verification_hash', '=', digest)], limit=1)
        if not otps:
            raise OTPError(gettext('sehat_opd.msg_verification_invalid'),
                field='verification')
        otp = cls._get_locked(otps[0].id)
        now = dt.datetime.now()
        if (otp.used or otp.purpose != purpose
                or now > otp.verified + dt.timedelta(
                    minutes=VERIFICATION_MINUTES)
                or (mobile and tools.normalize_mobile(mobile) != otp.mobile)):
            raise OTPError(gettext('sehat_opd.msg_verification_invalid'),
                field='verification')
        otp.used = now
        otp.save()
        return otp.mobile

    @classmethod
    def cron_purge(cls):
        "Forget what has no use left: old OTPs, rate events, sessions."
        pool = Pool()
        cls.purge()
        pool.get('sehat.opd.rate_event').purge()
        pool.get('sehat.opd.session').purge()

    @classmethod
    def purge(cls, days=2):
        "Delete OTPs older than `days` (cron): they have no use left."
        old = cls.search([
                ('create_date', '<', dt.datetime.now() - dt.timedelta(
                        days=days)),
                ])
        cls.delete(old)


class RateEvent(ModelSQL):
    """Rate Limit Event

    One row per counted event (an OTP sent to a mobile, a wrong token
    number, a contact message from an address); keys are stored hashed.
    """
    __name__ = 'sehat.opd.rate_event'

    kind = fields.Char("Kind", required=True)
    key = fields.Char("Key", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.kind, Index.Equality()), (t.key, Index.Equality()),
                (t.create_date, Index.Range())))

    @classmethod
    def count(cls, kind, key, seconds=3600, fresh=False):
        """Events of `kind` for `key` in the last `seconds`.

        `fresh` counts what is committed now rather than what the
        transaction's snapshot holds (see OTP.last_sent).
        """
        if fresh:
            with Transaction().new_transaction(readonly=True):
                return cls.count(kind, key, seconds)
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        since = dt.datetime.now() - dt.timedelta(seconds=seconds)
        cursor.execute(*table.select(Count(Literal('*')),
                where=(table.kind == kind)
                & (table.key == tools.hash_secret(str(key), kind))
                & (table.create_date >= since)))
        return cursor.fetchone()[0]

    @classmethod
    def add(cls, kind, key):
        "Count one event."
        cls.create([{'kind': kind, 'key': tools.hash_secret(str(key), kind)}])

    @classmethod
    def check_and_add(cls, kind, key, limit, seconds=3600):
        "Raise TooManyRequests if `limit` is reached, else count one more."
        if cls.count(kind, key, seconds) >= limit:
            raise TooManyRequests(gettext('sehat_opd.msg_rate_limited'))
        cls.add(kind, key)

    @classmethod
    def purge(cls, days=2):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.delete(where=table.create_date < (
                    dt.datetime.now() - dt.timedelta(days=days))))


def lock_mobile(kind, mobile):
    """Take the transaction's lock on (`kind`, `mobile`) without waiting.

    Return False when a parallel request already holds it: the caller
    refuses instead of racing past a rate limit (on PostgreSQL; SQLite
    serialises writers anyway).
    """
    transaction = Transaction()
    cursor = transaction.connection.cursor()
    cursor.execute(*Select([transaction.database.lock_id(
                    tools.lock_key(kind, mobile))]))
    return bool(cursor.fetchone()[0])
