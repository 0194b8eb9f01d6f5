#!/usr/bin/env python3
"""Load SeHAT OPD's reference data, and with --demo its demo data.

Usage: load.py -c trytond.conf -d DATABASE [--demo]

Reference data (every deployment): India with its states, districts and
towns (regions_in.csv) and medicines with their telemedicine list
(medicines.csv). Demo data: an institution, OPDs, doctors with back-office
logins, an OPD staff member. Everything is looked up by code first, so the
loader can run again after a change of the files.
"""
import argparse
import csv
import datetime as dt
from decimal import Decimal
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_PASSWORD = 'sehat-demo'
INSTITUTION_CODE = 'CHSC-DEMO'

# OPD code, name, kind, specialty code (GNU Health), round the clock
DEMO_OPDS = [
    ('GEN', "General OPD", 'general', None, False),
    ('MED', "Medicine OPD", 'specialty', 'INTERNAL', False),
    ('ORTHO', "Orthopaedics OPD", 'specialty', 'ORTHOSURG', False),
    ('DERMA', "Dermatology OPD", 'specialty', 'DS', False),
    ('PSY', "Psychiatry OPD", 'specialty', 'PSYCHIATRY', False),
    ('DEMO24', "24x7 Demo OPD", 'general', None, True),
    ]
# login, name, family name, registration no., council, qualification,
# specialty code, OPD codes
DEMO_DOCTORS = [
    ('dr.sharma', "Anil", "Sharma", 'DMC-48213', 'Delhi Medical Council',
        'MBBS, MD (Medicine)', 'INTERNAL', ['GEN', 'MED', 'DEMO24']),
    ('dr.iyer', "Lakshmi", "Iyer", 'TNMC-77120', 'Tamil Nadu Medical Council',
        'MBBS, DNB (Family Medicine)', 'GP', ['GEN', 'DEMO24']),
    ('dr.khan', "Imran", "Khan", 'MMC-2011/04/1093',
        'Maharashtra Medical Council', 'MBBS, MS (Orthopaedics)',
        'ORTHOSURG', ['ORTHO', 'DEMO24']),
    ('dr.singh', "Harpreet", "Singh", 'PMC-33871', 'Punjab Medical Council',
        'MBBS, MD (Dermatology)', 'DS', ['DERMA', 'DEMO24']),
    ('dr.rao', "Sunita", "Rao", 'KMC-90455', 'Karnataka Medical Council',
        'MBBS, MD (Psychiatry)', 'PSYCHIATRY', ['PSY', 'DEMO24']),
    ('dr.das', "Arjun", "Das", 'WBMC-61542', 'West Bengal Medical Council',
        'MBBS, MD (Medicine)', 'INTERNAL', ['GEN', 'MED']),
    ]
STAFF = ('staff.opd', "Rekha", "Menon")


def rows(name):
    with open(HERE / name, newline='', encoding='utf-8') as f:
        yield from csv.DictReader(f)


def get_or_create(Model, domain, values):
    records = Model.search(domain, limit=1)
    if records:
        record, = records
        changed = {k: v for k, v in values.items()
            if not isinstance(v, list) and _value(getattr(record, k)) != v}
        if changed:
            Model.write([record], changed)
        return record
    record, = Model.create([values])
    return record


def _value(value):
    return value.id if hasattr(value, 'id') else value


def load_regions(pool):
    """States, districts and towns, in batches: a first load creates ~800
    subdivisions, a later one only writes what changed."""
    Country = pool.get('country.country')
    Subdivision = pool.get('country.subdivision')
    from trytond.transaction import Transaction
    india = get_or_create(Country, [('code', '=', 'IN')], {
            'name': 'India', 'code': 'IN', 'code3': 'IND',
            'code_numeric': '356'})
    states, districts, hindi = {}, {}, {}
    for row in rows('regions_in.csv'):
        states[row['state_code']] = {
            'country': india.id, 'code': row['state_code'],
            'name': row['state_name'], 'parent': None,
            'type': 'union territory' if row.get('state_type') == 'ut'
            else 'state',
            }
        hindi[row['state_code']] = row['state_name_hi']
        districts[row['district_code']] = {
            'country': india.id, 'code': row['district_code'],
            'name': row['district_name'], 'type': 'district',
            'parent': row['state_code'],
            'sehat_cities': '\n'.join(
                c.strip() for c in row['cities'].split('|') if c.strip()),
            }
        hindi[row['district_code']] = row['district_name_hi']

    def existing():
        return {s.code: s for s in Subdivision.search(
                [('country', '=', india.id)])}

    def sync(wanted):
        current = existing()
        Subdivision.create([v for c, v in wanted.items() if c not in current])
        writes = []
        for code, values in wanted.items():
            record = current.get(code)
            if record is None:
                continue
            changed = {k: v for k, v in values.items()
                if _value(getattr(record, k)) != v}
            if changed:
                writes.extend(([record], changed))
        if writes:
            Subdivision.write(*writes)

    sync(states)
    state_ids = {c: r.id for c, r in existing().items() if c in states}
    for values in districts.values():
        values['parent'] = state_ids[values['parent']]
    sync(districts)
    records = existing()
    with Transaction().set_context(language='hi'):
        names = {r['id']: r['name'] for r in Subdivision.read(
                [r.id for r in records.values()], ['name'])}
        writes = []
        for code, name in hindi.items():
            record = records[code]
            if name and names[record.id] != name:
                writes.extend(([Subdivision(record.id)], {'name': name}))
        if writes:
            Subdivision.write(*writes)
    return india


def load_medicines(pool):
    Template = pool.get('product.template')
    Product = pool.get('product.product')
    Medicament = pool.get('gnuhealth.medicament')
    Uom = pool.get('product.uom')
    DoseUnit = pool.get('gnuhealth.dose.unit')
    Form = pool.get('gnuhealth.drug.form')
    Route = pool.get('gnuhealth.drug.route')
    unit, = Uom.search([('symbol', '=', 'u')], limit=1)

    def lookup(Model, value, fields_=('code', 'name')):
        if not value:
            return None
        for field in fields_:
            found = Model.search([(field, '=', value)], limit=1)
            if found:
                return found[0].id
        raise ValueError('%s %r not found' % (Model.__name__, value))

    count = 0
    for row in rows('medicines.csv'):
        template = get_or_create(Template, [('code', '=', row['code'])], {
                'name': row['name'], 'code': row['code'], 'type': 'goods',
                'default_uom': unit.id,
                })
        products = Product.search([('template', '=', template.id)], limit=1)
        if products:
            product = products[0]
            if not product.is_medicament:
                Product.write([product], {'is_medicament': True})
        else:
            product, = Product.create([{
                        'template': template.id, 'is_medicament': True}])
        get_or_create(Medicament, [('product', '=', product.id)], {
                'product': product.id,
                'active_component': row['active_component'],
                'strength': float(row['strength']) if row['strength']
                else None,
                'unit': lookup(DoseUnit, row['unit']),
                'form': lookup(Form, row['form']),
                'route': lookup(Route, row['route']),
                'telemedicine_list': row['telemedicine_list'],
                'therapeutic_action': row.get('category') or None,
                'notes': row.get('notes') or None,
                })
        count += 1
    return count


def load_demo(pool, india):
    Party = pool.get('party.party')
    Company = pool.get('company.company')
    Currency = pool.get('currency.currency')
    Institution = pool.get('gnuhealth.institution')
    Specialty = pool.get('gnuhealth.specialty')
    OPD = pool.get('sehat.opd')
    User = pool.get('res.user')
    Group = pool.get('res.group')
    ModelData = pool.get('ir.model.data')
    HealthProf = pool.get('gnuhealth.healthprofessional')
    HPSpecialty = pool.get('gnuhealth.hp_specialty')
    Subdivision = pool.get('country.subdivision')

    inr = get_or_create(Currency, [('code', '=', 'INR')], {
            'name': 'Indian Rupee', 'code': 'INR', 'symbol': '₹',
            'numeric_code': '356', 'rounding': Decimal('0.01'), 'digits': 2})
    delhi = Subdivision.search([('code', '=', 'IN-DL')], limit=1)
    party = get_or_create(Party, [('code', '=', INSTITUTION_CODE)], {
            'name': "Command Hospital (Demo) - SeHAT OPD Hub",
            'code': INSTITUTION_CODE,
            'is_institution': True,
            'is_person': False,
            'create_target': False,
            'fed_country': 'IND',
            })
    if not party.addresses:
        Party.write([party], {'addresses': [('create', [{
                            'street': 'Delhi Cantonment',
                            'city': 'New Delhi', 'postal_code': '110010',
                            'country': india.id,
                            'subdivision': delhi[0].id if delhi else None,
                            }])]})
    company = get_or_create(Company, [('party', '=', party.id)], {
            'party': party.id, 'currency': inr.id,
            'timezone': 'Asia/Kolkata'})
    institution = get_or_create(
        Institution, [('code', '=', INSTITUTION_CODE)], {
            'party': party.id, 'code': INSTITUTION_CODE,
            'institution_type': 'hospital', 'public_level': 'public'})

    def group(module, xml_id):
        return Group(ModelData.get_id(module, xml_id))

    admin, = User.search([('login', '=', 'admin')])
    User.write([admin], {
            'companies': [('add', [company.id])], 'company': company.id})

    opds = {}
    for code, name, kind, specialty, always in DEMO_OPDS:
        specialty_id = Specialty.search(
            [('code', '=', specialty)], limit=1)[0].id if specialty else None
        values = {
            'code': code, 'name': name, 'kind': kind,
            'institution': institution.id, 'specialty': specialty_id,
            'round_the_clock': always,
            'description': (
                "Open every day, round the clock, so the demo can be tried "
                "at any hour." if always else
                "Online consultations Monday to Saturday, 09:00 to 17:00."),
            }
        if not OPD.search([('code', '=', code)]):
            values['hours'] = [('create', [
                        {'weekday': str(d), 'open_time': dt.time(9),
                            'close_time': dt.time(17)} for d in range(6)])]
        opds[code] = get_or_create(OPD, [('code', '=', code)], values)

    doctor_groups = [group('sehat_opd', 'group_sehat_doctor'),
        group('health', 'group_health_doctor')]
    for (login, given, family, registration, council, qualification,
            specialty, opd_codes) in DEMO_DOCTORS:
        user = _user(User, login, 'Dr. %s %s' % (given, family),
            doctor_groups, company)
        person = get_or_create(Party, [('internal_user', '=', user.id)], {
                'name': given, 'lastname': family, 'is_person': True,
                'is_healthprof': True, 'gender': 'f' if given in (
                    'Lakshmi', 'Harpreet', 'Sunita') else 'm',
                'internal_user': user.id, 'fed_country': 'IND',
                })
        healthprof = get_or_create(
            HealthProf, [('party', '=', person.id)], {
                'party': person.id, 'code': registration,
                'institution': institution.id,
                'qualification': qualification,
                'registration_council': council,
                })
        specialty_id = Specialty.search([('code', '=', specialty)])[0].id
        get_or_create(HPSpecialty, [
                ('healthprof', '=', healthprof.id),
                ('specialty', '=', specialty_id)], {
                'healthprof': healthprof.id, 'specialty': specialty_id,
                'mainsp': True})
        OPD.write([opds[c] for c in opd_codes],
            {'doctors': [('add', [healthprof.id])]})

    staff_groups = [group('sehat_opd', 'group_sehat_staff'),
        group('health', 'group_health_frontdesk')]
    _user(User, STAFF[0], '%s %s' % STAFF[1:], staff_groups, company)


def _user(User, login, name, groups, company):
    user = get_or_create(User, [('login', '=', login)], {
            'login': login, 'name': name,
            'companies': [('add', [company.id])], 'company': company.id,
            })
    User.write([user], {
            'password': DEMO_PASSWORD,
            'groups': [('add', [g.id for g in groups])],
            })
    return user


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('-c', '--config', required=True)
    parser.add_argument('-d', '--database', required=True)
    parser.add_argument('--demo', action='store_true')
    options = parser.parse_args()
    os.environ['TRYTOND_CONFIG'] = options.config

    from trytond.config import config
    config.update_etc(options.config)
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    Pool.start()
    pool = Pool(options.database)
    with Transaction().start(options.database, 0, readonly=True):
        pool.init()
    with Transaction().start(options.database, 0) as transaction, \
            transaction.set_context(active_test=False):
        india = load_regions(pool)
        count = load_medicines(pool)
        print('Reference data loaded: %s medicines.' % count)
        if options.demo:
            load_demo(pool, india)
            print('Demo data loaded.')
        transaction.commit()


if __name__ == '__main__':
    main()
