"""Fixture data of the queue tests and benchmarks, written straight into a
database with trytond (in the calling process): patients with portal
sessions, doctors with console sessions, OPDs, waiting tokens.

What is under test then goes through the real HTTP server; only the set-up
skips the OTP round trips (one OTP per 30 s per mobile would make 64
patients take minutes).
"""
import datetime as dt
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configure(env):
    """Point this process' trytond at the server's database settings
    (`env`: the server's environment) before trytond is first used."""
    for name in ['TRYTOND_DATABASE__URI', 'TRYTOND_DATABASE__PATH',
            'TRYTOND_SEHAT_OPD__SECRET', 'TRYTOND_SEHAT_OPD__MODE']:
        if env.get(name):
            os.environ[name] = env[name]
    os.environ.setdefault('TRYTOND_CONFIG', str(ROOT / 'trytond.conf'))
    from trytond.config import config
    config.update_etc(os.environ['TRYTOND_CONFIG'])
    config.set('database', 'uri', os.environ['TRYTOND_DATABASE__URI'])
    if os.environ.get('TRYTOND_DATABASE__PATH'):
        config.set('database', 'path', os.environ['TRYTOND_DATABASE__PATH'])


@contextmanager
def transaction(database):
    "A committed transaction on `database` as root, with its pool."
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    pool = Pool(database)
    if database not in Pool.database_list():
        with Transaction().start(database, 0, readonly=True):
            pool.init()
    with Transaction().start(database, 0, context={
                '_skip_warnings': True}) as transaction:
        yield pool
        transaction.commit()


def institution(pool):
    Institution = pool.get('gnuhealth.institution')
    return Institution.search([], limit=1, order=[('id', 'ASC')])[0]


def make_opd(database, code, **values):
    """A round-the-clock OPD `code` (created or reset) for one test, with
    caps out of the way unless given; return its id."""
    with transaction(database) as pool:
        OPD = pool.get('sehat.opd')
        defaults = {
            'name': '%s Test OPD' % code, 'code': code, 'kind': 'general',
            'round_the_clock': True, 'daily_token_cap': 100000,
            'waiting_cap': 100000, 'call_window': 120,
            }
        defaults.update(values)
        opds = OPD.search([('code', '=', code)])
        if opds:
            OPD.write(opds, defaults)
            return opds[0].id
        defaults['institution'] = institution(pool).id
        opd, = OPD.create([defaults])
        return opd.id


def make_patients(database, count, tag):
    """`count` registered patients with a live portal session each.

    Return dicts of id, patient_code, mobile, session (bearer key), csrf.
    `tag` (2 digits) keeps the mobiles of different calls apart.
    """
    from trytond.modules.sehat_opd import tools
    with transaction(database) as pool:
        Party = pool.get('party.party')
        Patient = pool.get('gnuhealth.patient')
        Session = pool.get('sehat.opd.session')
        base = secrets.randbelow(10 ** 5)
        mobiles = ['+917%s%02d%05d' % (tag[:2].rjust(2, '0'),
                base % 100, (base + i) % 10 ** 5) for i in range(count)]
        taken = {p.portal_mobile for p in Patient.search([
                    ('portal_mobile', 'in', mobiles)])}
        mobiles = [m for m in mobiles if m not in taken]
        # one by one: GNU Health's Party.create mishandles several records
        parties = [Party.create([{
                        'name': 'Queue Patient %s' % m[-5:],
                        'is_person': True, 'is_patient': True,
                        'create_target': False,
                        'gender': 'm' if i % 2 else 'f',
                        'dob': dt.date(1960 + i % 40, 1 + i % 12, 1),
                        'fed_country': 'IND',
                        }])[0] for i, m in enumerate(mobiles)]
        patients = Patient.create([{
                    'party': party.id,
                    'patient_code': tools.new_patient_id(),
                    'portal_mobile': mobile,
                    'beneficiary_category': 'serving', 'service': 'army',
                    'service_number': 'IC-%s' % mobile[-5:],
                    'rank': 'Havildar',
                    } for party, mobile in zip(parties, mobiles)])
        result = []
        for patient in patients:
            session, key = Session.start(patient=patient)
            result.append({
                    'id': patient.id, 'patient_code': patient.patient_code,
                    'mobile': patient.portal_mobile, 'session': key,
                    'csrf': session.csrf})
        return result


def make_doctors(database, count, opd_id, tag, password=None,
        prescriber=False):
    """`count` doctors of the OPD with back-office users and a console
    session each; return dicts of id, login, session, csrf.

    A `prescriber` may also write and sign e-prescriptions in the back
    office, as the demo doctors: GNU Health's doctor group, the company,
    a registration council (give a `password` to log in there)."""
    with transaction(database) as pool:
        User = pool.get('res.user')
        Party = pool.get('party.party')
        HealthProf = pool.get('gnuhealth.healthprofessional')
        OPD = pool.get('sehat.opd')
        Session = pool.get('sehat.opd.session')
        ModelData = pool.get('ir.model.data')
        # the console is for members of the SeHAT Doctor group
        doctor_group = ModelData.get_id('sehat_opd', 'group_sehat_doctor')
        suffix = secrets.token_hex(3)
        logins = ['dr.%s%s.%02d' % (tag, suffix, i) for i in range(count)]
        users = User.create([dict({
                        'login': login, 'name': 'Dr %s' % login,
                        'groups': [('add', [doctor_group])]},
                    **({'password': password} if password else {}))
                for login in logins])
        parties = [Party.create([{
                        'name': 'Dr Queue %s' % login.split('.')[-1],
                        'is_person': True, 'is_healthprof': True,
                        'internal_user': user.id, 'gender': 'm',
                        'fed_country': 'IND'}])[0]
            for login, user in zip(logins, users)]
        doctors = HealthProf.create([{
                    'party': party.id, 'code': 'REG-%s' % login,
                    'qualification': 'MBBS'}
                for login, party in zip(logins, parties)])
        OPD.write([OPD(opd_id)], {'doctors': [('add', [d.id for d in doctors])]})
        if prescriber:
            Company = pool.get('company.company')
            company, = Company.search([], limit=1, order=[('id', 'ASC')])
            User.write(users, {
                    'groups': [('add', [ModelData.get_id(
                                    'health', 'group_health_doctor')])],
                    'companies': [('add', [company.id])],
                    'company': company.id})
            HealthProf.write(doctors, {
                    'registration_council': 'National Medical Commission',
                    'institution': institution(pool).id})
        result = []
        for doctor, user, login in zip(doctors, users, logins):
            session, key = Session.start(user=user)
            result.append({'id': doctor.id, 'login': login, 'session': key,
                    'csrf': session.csrf})
        return result


def set_online(database, doctor_ids, opd_id):
    """Put doctors online and free in the OPD without assigning anyone
    (what the console does, minus the dispatch), for races on Call next."""
    with transaction(database) as pool:
        Presence = pool.get('sehat.opd.presence')
        HealthProf = pool.get('gnuhealth.healthprofessional')
        now = dt.datetime.now()
        for doctor_id in doctor_ids:
            presence = Presence.of(HealthProf(doctor_id))
            presence.opd = opd_id
            presence.online = True
            presence.online_since = now
            presence.last_heartbeat = now
            presence.current_token = None
            presence.save()


def waiting_tokens(database, patient_ids, opd_id, batch=1000):
    """Give each patient a waiting token of today in the OPD, in order,
    without dispatching them; return the token ids."""
    with transaction(database) as pool:
        OPD = pool.get('sehat.opd')
        Queue = pool.get('sehat.opd.queue')
        Token = pool.get('sehat.opd.token')
        opd = OPD(opd_id)
        queue = Queue.get_locked(opd, opd.today())
        ids = []
        for start in range(0, len(patient_ids), batch):
            chunk = patient_ids[start:start + batch]
            first = queue.last_number
            tokens = Token.create([{
                        'patient': patient_id, 'opd': opd_id,
                        'queue': queue.id, 'date': queue.date,
                        'number': first + i, 'seq': queue.tail + i,
                        'complaint': 'Fever and cough',
                        } for i, patient_id in enumerate(chunk, 1)])
            queue.last_number += len(chunk)
            queue.tail += len(chunk)
            ids.extend(t.id for t in tokens)
        queue.save()
        Queue.bump([queue.id])
        return ids


def sql(database, query, *args):
    "Run one SQL statement in a committed transaction; return its rows."
    with transaction(database):
        from trytond.transaction import Transaction
        cursor = Transaction().connection.cursor()
        cursor.execute(query, args)
        return cursor.fetchall() if cursor.description else []


def bulk_waiting(database, opd_id, count, tag):
    """`count` more waiting patients in the OPD's queue of today, written
    with plain SQL (10,000 through the ORM would take minutes): parties,
    patients and tokens, at the end of the line. For benchmarks."""
    with transaction(database) as pool:
        from trytond.transaction import Transaction
        OPD = pool.get('sehat.opd')
        Queue = pool.get('sehat.opd.queue')
        opd = OPD(opd_id)
        queue = Queue.get_locked(opd, opd.today())
        cursor = Transaction().connection.cursor()
        cursor.execute(
            'INSERT INTO party_party (code, name, is_person, is_patient, '
            'active, create_uid, create_date) '
            "SELECT %s || '-' || n, 'Bulk Patient ' || n, true, true, true, "
            '0, now() AT TIME ZONE \'UTC\' FROM generate_series(1, %s) n '
            'RETURNING id', ('bulk-%s-%s' % (tag, secrets.token_hex(4)), count))
        parties = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            'INSERT INTO gnuhealth_patient (party, create_uid, create_date) '
            "SELECT unnest(%s), 0, now() AT TIME ZONE 'UTC' RETURNING id",
            (parties,))
        patients = sorted(row[0] for row in cursor.fetchall())
        cursor.execute(
            'INSERT INTO sehat_opd_token (number, patient, opd, queue, date, '
            'seq, state, complaint, missed_calls, turn_near_notified, '
            'create_uid, create_date) '
            "SELECT %s + n, p, %s, %s, %s, %s + n, 'waiting', "
            "'Fever and cough', 0, false, 0, now() AT TIME ZONE 'UTC' "
            'FROM unnest(%s) WITH ORDINALITY AS t(p, n)',
            (queue.last_number, opd_id, queue.id, queue.date, queue.tail,
                patients))
        queue.last_number += count
        queue.tail += count
        queue.save()
        Queue.bump([queue.id])
        return patients
