"Fixtures for the tests of SeHAT OPD and of the modules built on it."
import datetime as dt
from functools import wraps
from types import SimpleNamespace

from trytond.pool import Pool
from trytond.tests.test_tryton import with_transaction


def with_sehat(func):
    "Run the test in a transaction, with an `env` holding the pool."
    @with_transaction()
    @wraps(func)
    def wrapper(self):
        return func(self, SimpleNamespace(pool=Pool()))
    return wrapper


def create_institution(env, code='INST'):
    pool = env.pool
    Party = pool.get('party.party')
    Institution = pool.get('gnuhealth.institution')
    institutions = Institution.search([('code', '=', code)])
    if institutions:
        return institutions[0]
    party, = Party.create([{
                'name': 'Test Hospital %s' % code,
                'is_institution': True,
                'fed_country': 'IND',
                }])
    institution, = Institution.create([{
                'party': party.id, 'code': code,
                'institution_type': 'hospital', 'public_level': 'public'}])
    return institution


def create_opd(env, code, always=True, **values):
    "An OPD open round the clock unless `always` is False."
    OPD = env.pool.get('sehat.opd')
    institution = create_institution(env)
    opd, = OPD.create([dict({
                'name': '%s OPD' % code, 'code': code, 'kind': 'general',
                'institution': institution.id, 'round_the_clock': always,
                }, **values)])
    return opd


def set_opd_open(opd, open_):
    """Give the OPD hours that include (or exclude) this very moment."""
    Hours = Pool().get('sehat.opd.hours')
    Hours.delete(list(opd.hours))
    local = opd.local_now()
    weekday = local.weekday() if open_ else (local.weekday() + 1) % 7
    opd.round_the_clock = False
    opd.save()
    Hours.create([{
                'opd': opd.id, 'weekday': str(weekday),
                'open_time': dt.time(0, 0), 'close_time': dt.time(23, 59)}])


def create_patient(env, mobile, name='Test Patient'):
    "A registered portal patient with the given 10-digit mobile."
    pool = env.pool
    Party = pool.get('party.party')
    Patient = pool.get('gnuhealth.patient')
    from trytond.modules.sehat_opd import tools
    party, = Party.create([{
                'name': name, 'is_person': True, 'is_patient': True,
                'create_target': False, 'gender': 'f',
                'dob': dt.date(1985, 1, 1), 'fed_country': 'IND',
                }])
    patient, = Patient.create([{
                'party': party.id,
                'patient_code': tools.new_patient_id(),
                'portal_mobile': tools.normalize_mobile(mobile),
                'beneficiary_category': 'serving', 'service': 'army',
                'service_number': 'IC-%s' % mobile[-5:], 'rank': 'Major',
                }])
    return patient


def create_doctor(env, login, opds=(), registration=None):
    "A doctor with a back-office user, a member of `opds`."
    pool = env.pool
    User = pool.get('res.user')
    Party = pool.get('party.party')
    HealthProf = pool.get('gnuhealth.healthprofessional')
    OPD = pool.get('sehat.opd')
    user, = User.create([{'login': login, 'name': 'Dr %s' % login}])
    party, = Party.create([{
                'name': 'Dr %s' % login, 'is_person': True,
                'is_healthprof': True, 'internal_user': user.id,
                'gender': 'm', 'fed_country': 'IND',
                }])
    doctor, = HealthProf.create([{
                'party': party.id,
                'code': registration or 'REG-%s' % login,
                'qualification': 'MBBS',
                'registration_council': 'National Medical Commission',
                }])
    if opds:
        OPD.write(list(opds), {'doctors': [('add', [doctor.id])]})
    return doctor
