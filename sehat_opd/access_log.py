"""Who opened which patient's record or files, in the back office and the
doctor console.

Back-office reads are logged from `read` of tokens, patients and health
record files when a user (not root) reads them through the RPC (with access
checks on); the console routes log what they show. A row is written once per
user, record and kind of access in ACCESS_LOG_INTERVAL, so a list view that
is refreshed every few seconds does not flood the table.
"""
import datetime as dt
import logging
import threading
from collections import OrderedDict

from trytond import backend
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction, without_check_access

from . import tools

logger = logging.getLogger(__name__)

WHAT = [
    ('record', "Record"),
    ('file', "File"),
    ('console', "Doctor Console"),
    ]
ACCESS_LOG_INTERVAL = dt.timedelta(minutes=5)
# set while a logged read reads its related records (the patient of a
# token, the resource of a file): one access, one row
_QUIET = '_sehat_access_logged'
_SEEN_SIZE = 20000
_seen = OrderedDict()
_seen_lock = threading.Lock()


def _first_time(key, now):
    "Whether `key` was not logged by this process within the interval."
    with _seen_lock:
        last = _seen.get(key)
        if last is not None and now - last < ACCESS_LOG_INTERVAL:
            return False
        _seen[key] = now
        _seen.move_to_end(key)
        while len(_seen) > _SEEN_SIZE:
            _seen.popitem(last=False)
        return True


def forget_seen():
    "Forget what was logged recently (tests)."
    with _seen_lock:
        _seen.clear()


class AccessLog(ModelSQL, ModelView):
    """Patient Record Access

    One row per opening of a patient's record or file by a back-office user
    or a doctor in the console; read by administrators only.
    """
    __name__ = 'sehat.opd.access_log'

    date = fields.DateTime("When", required=True, readonly=True)
    user = fields.Many2One(
        'res.user', "User", required=True, readonly=True, ondelete='CASCADE')
    patient = fields.Many2One(
        'gnuhealth.patient', "Patient", readonly=True, ondelete='SET NULL')
    token = fields.Many2One(
        'sehat.opd.token', "Token", readonly=True, ondelete='SET NULL')
    what = fields.Selection(WHAT, "Access", required=True, readonly=True)
    resource = fields.Reference(
        "Opened", selection='get_resources', readonly=True)
    address = fields.Char("Client Address", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.patient, Index.Equality()),
                    (t.date, Index.Range())),
                Index(t, (t.user, Index.Equality()),
                    (t.date, Index.Range())),
                })
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def get_resources(cls):
        Model = Pool().get('ir.model')
        return [(None, '')] + [(m, Model.get_name(m)) for m in [
                'sehat.opd.token', 'gnuhealth.patient', 'ir.attachment']]

    @classmethod
    def opened(cls, what, model_name, ids, user_id=None, address=None):
        """Log that `user_id` (default: the transaction's user) opened the
        records `ids` of `model_name` (tokens, patients or files).

        Rows go into the current transaction, or into a transaction of their
        own when the current one is read-only (back-office reads are).
        Nothing is logged for root, nor twice within the interval.
        """
        transaction = Transaction()
        if user_id is None:
            user_id = transaction.user
        if not user_id or not ids:
            return
        if address is None:
            address = (transaction.context.get('_request') or {}).get(
                'remote_addr')
        now = dt.datetime.now()
        database = transaction.database.name
        ids = [i for i in dict.fromkeys(ids)
            if _first_time((database, user_id, what, model_name, i), now)]
        if not ids:
            return
        try:
            with without_check_access(), transaction.set_user(0):
                vlist = cls._log_values(
                    what, model_name, ids, user_id, address, now)
            if not vlist:
                return
            if transaction.readonly:
                # written after this transaction ends: a read-only one
                # cannot write, and on SQLite a second connection could not
                # commit while this one reads
                transaction.join(_LogWriter()).add(vlist)
            else:
                cls._create_or_defer(vlist)
        except Exception:
            # the log must never cost the doctor the record they opened
            logger.warning('could not log access to %s %s', model_name, ids,
                exc_info=True)

    @classmethod
    def _create_or_defer(cls, vlist):
        """Write the rows in the current transaction, in a savepoint: when
        the database refuses them (at REPEATABLE READ, the foreign key
        check cannot lock a token or a user that a concurrent transaction
        locked and changed), the transaction goes on and the rows are
        written after its commit."""
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        cursor.execute('SAVEPOINT sehat_access_log')
        try:
            with transaction.set_user(0), without_check_access():
                cls.create(vlist)
        except backend.DatabaseOperationalError:
            cursor.execute('ROLLBACK TO SAVEPOINT sehat_access_log')
            transaction.join(_LogWriter()).add(vlist)
        else:
            cursor.execute('RELEASE SAVEPOINT sehat_access_log')

    @classmethod
    def _log_values(cls, what, model_name, ids, user_id, address, now):
        pool = Pool()
        Record = pool.get('sehat.opd.record')
        Model = pool.get(model_name)
        vlist = []
        for record in Model.browse(ids):
            token = patient = None
            if model_name == 'sehat.opd.token':
                token, patient = record, record.patient
            elif model_name == 'gnuhealth.patient':
                patient = record
            elif model_name == 'ir.attachment':
                if not record.sehat_origin:
                    continue
                token = Record.token_of(record)
                patient = token.patient if token else None
            vlist.append({
                    'date': now,
                    'user': user_id,
                    'patient': patient.id if patient else None,
                    'token': token.id if token else None,
                    'what': what,
                    'resource': str(record),
                    'address': (address or '')[:64] or None,
                    })
        return vlist


class _LogWriter:
    "Write access log rows in a transaction of their own, after commit."

    def __init__(self):
        self.vlist = []

    def __eq__(self, other):
        return isinstance(other, _LogWriter)

    def add(self, vlist):
        self.vlist.extend(vlist)

    def abort(self, trans):
        self.vlist = []

    def tpc_begin(self, trans):
        pass

    def commit(self, trans):
        pass

    def tpc_vote(self, trans):
        pass

    def tpc_finish(self, trans):
        vlist, self.vlist = self.vlist, []
        if vlist:
            tools.after_commit(trans, self.write, trans.database.name, vlist)

    @staticmethod
    def write(database_name, vlist):
        try:
            with Transaction(new=True).start(database_name, 0) \
                    as transaction, without_check_access():
                Pool().get('sehat.opd.access_log').create(vlist)
                transaction.commit()
        except Exception:
            logger.warning('could not write the access log', exc_info=True)

    def tpc_abort(self, trans):
        self.vlist = []


class _LoggedRead:
    "Log the reads of users through the back office (`_access_what`)."
    __slots__ = ()
    _access_what = 'record'

    @classmethod
    def read(cls, ids, fields_names):
        transaction = Transaction()
        if (not transaction.user or not transaction.check_access
                or transaction.context.get(_QUIET)
                or not cls._access_logged(fields_names)):
            return super().read(ids, fields_names)
        with transaction.set_context(**{_QUIET: True}):
            result = super().read(ids, fields_names)
            AccessLog = Pool().get('sehat.opd.access_log')
            AccessLog.opened(cls._access_what, cls.__name__,
                [r['id'] for r in result])
        return result

    @classmethod
    def _access_logged(cls, fields_names):
        return True


class Token(_LoggedRead, metaclass=PoolMeta):
    __name__ = 'sehat.opd.token'


class Patient(_LoggedRead, metaclass=PoolMeta):
    __name__ = 'gnuhealth.patient'


class Attachment(_LoggedRead, metaclass=PoolMeta):
    __name__ = 'ir.attachment'
    _access_what = 'file'

    @classmethod
    def _access_logged(cls, fields_names):
        # listing names is not opening: the content is
        return 'data' in fields_names
