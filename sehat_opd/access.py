"""Who may see what in the back office: the scope of a user for record rules.

Tryton evaluates an `ir.rule` domain with a context that only knows the
user's `groups` (and, with the company module, `companies`). SeHAT OPD's
rules also need the user's health professional, the OPDs they serve and
the institutions they work for; this module adds them:

- `sehat_healthprof`: the user's health professional id (or -1);
- `sehat_opds`: ids of the OPDs the user serves as a doctor;
- `sehat_institutions`: ids of the institutions of the user's companies
  (GNU Health ties an institution to a company through their party) and of
  their health professional record.

The scope is computed with one query and cached per user; the cache is
cleared whenever a link it depends on changes.
"""
import datetime as dt
from collections import defaultdict

from sql import Null

from trytond.cache import Cache
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction, without_check_access

_scope_cache = Cache(__name__ + '.scope', context=False,
    duration=dt.timedelta(minutes=10))
EMPTY_SCOPE = (-1, (), ())


def user_scope(user_id=None):
    """(healthprof id or -1, OPD ids, institution ids) of the user.

    The root user (0) has an empty scope: it is never subject to rules.
    """
    if user_id is None:
        user_id = Transaction().user
    if not user_id:
        return EMPTY_SCOPE
    scope = _scope_cache.get(user_id)
    if scope is None:
        scope = _compute_scope(user_id)
        _scope_cache.set(user_id, scope)
    return scope


def clear_scope():
    "Forget every user's scope (a link between users, doctors, OPDs moved)."
    _scope_cache.clear()


def _compute_scope(user_id):
    pool = Pool()
    Party = pool.get('party.party')
    HealthProf = pool.get('gnuhealth.healthprofessional')
    OPDDoctor = pool.get('sehat.opd-gnuhealth.healthprofessional')
    Institution = pool.get('gnuhealth.institution')
    Company = pool.get('company.company')
    UserCompany = pool.get('res.user-company.company')
    User = pool.get('res.user')
    party = Party.__table__()
    healthprof = HealthProf.__table__()
    opd_doctor = OPDDoctor.__table__()
    institution = Institution.__table__()
    company = Company.__table__()
    user_company = UserCompany.__table__()
    user = User.__table__()
    cursor = Transaction().connection.cursor()

    cursor.execute(*healthprof.join(party,
            condition=party.id == healthprof.party
            ).select(healthprof.id, healthprof.institution,
            where=party.internal_user == user_id,
            order_by=[healthprof.id.asc], limit=1))
    row = cursor.fetchone()
    healthprof_id, own_institution = row if row else (-1, None)

    opds = ()
    if healthprof_id != -1:
        cursor.execute(*opd_doctor.select(opd_doctor.opd,
                where=opd_doctor.healthprof == healthprof_id))
        opds = tuple(sorted(r for r, in cursor))

    # the institutions of the user's companies: the current one and those
    # the user may switch to
    companies = user_company.select(user_company.company,
        where=user_company.user == user_id)
    current = user.select(user.company,
        where=(user.id == user_id) & (user.company != Null))
    cursor.execute(*institution.join(company,
            condition=company.party == institution.party
            ).select(institution.id,
            where=company.id.in_(companies) | company.id.in_(current)))
    institutions = {r for r, in cursor}
    if own_institution:
        institutions.add(own_institution)
    return (healthprof_id, opds, tuple(sorted(institutions)))


class Rule(metaclass=PoolMeta):
    __name__ = 'ir.rule'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.domain.help += (
            '\n- "sehat_healthprof" as the id of the user\'s health '
            'professional (-1 if none)'
            '\n- "sehat_opds" as list of ids of the OPDs the user serves'
            '\n- "sehat_institutions" as list of ids of the user\'s '
            'institutions')

    @classmethod
    def _get_cache_key(cls, model_name):
        key = super()._get_cache_key(model_name)
        with without_check_access():
            return (*key, user_scope())

    @classmethod
    def _get_context(cls, model_name):
        context = super()._get_context(model_name)
        with without_check_access():
            healthprof, opds, institutions = user_scope()
        context.update({
                'sehat_healthprof': healthprof,
                'sehat_opds': list(opds),
                'sehat_institutions': list(institutions),
                })
        return context


class _ClearScope:
    "Clear the cached scopes when records the scope is made of change."
    __slots__ = ()

    @classmethod
    def create(cls, vlist):
        records = super().create(vlist)
        clear_scope()
        return records

    @classmethod
    def write(cls, *args):
        super().write(*args)
        clear_scope()

    @classmethod
    def delete(cls, records):
        super().delete(records)
        clear_scope()


class OPDDoctor(_ClearScope, metaclass=PoolMeta):
    __name__ = 'sehat.opd-gnuhealth.healthprofessional'


class OPD(_ClearScope, metaclass=PoolMeta):
    __name__ = 'sehat.opd'


class HealthProfessional(_ClearScope, metaclass=PoolMeta):
    __name__ = 'gnuhealth.healthprofessional'


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    @classmethod
    def write(cls, *args):
        # `internal_user` ties a back-office user to a health professional
        actions = iter(args)
        changed = any('internal_user' in values
            for _, values in zip(actions, actions))
        super().write(*args)
        if changed:
            clear_scope()


class User(metaclass=PoolMeta):
    __name__ = 'res.user'

    @classmethod
    def write(cls, *args):
        actions = iter(args)
        changed = any({'company', 'companies'} & set(values)
            for _, values in zip(actions, actions))
        super().write(*args)
        if changed:
            clear_scope()


class Attachment(metaclass=PoolMeta):
    __name__ = 'ir.attachment'

    @classmethod
    def check_access(cls, ids, mode='read'):
        """Also apply the record rules of the attached resources.

        Tryton checks only the model access of the resource here (its search
        already applies the rules): without this, a doctor could read by id
        the health records of a token of another OPD.
        """
        pool = Pool()
        Rule = pool.get('ir.rule')
        super().check_access(ids, mode=mode)
        transaction = Transaction()
        if transaction.user == 0 or not transaction.check_access:
            return
        resources = defaultdict(set)
        with without_check_access():
            for record in cls.browse(ids):
                if record.resource is None:
                    continue
                model, id_ = str(record.resource).split(',', 1)
                if int(id_) >= 0:
                    resources[model].add(int(id_))
        for model, resource_ids in resources.items():
            Rule.check(model, list(resource_ids), mode='read')
