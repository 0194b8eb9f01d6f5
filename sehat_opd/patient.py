"Patients of the portal: GNU Health patients with their service details."
import datetime as dt
import re

from trytond.i18n import gettext
from trytond.model import Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from . import tools
from .exceptions import Conflict, InvalidInput

BENEFICIARY_CATEGORIES = [
    (None, ''),
    ('serving', "Serving Personnel"),
    ('ex_serviceman', "Ex-Serviceman"),
    ('dependant', "Dependant"),
    ]
SERVICES = [
    (None, ''),
    ('army', "Army"),
    ('navy', "Navy"),
    ('air_force', "Air Force"),
    ]
RELATIONS = [
    (None, ''),
    ('spouse', "Spouse"),
    ('son', "Son"),
    ('daughter', "Daughter"),
    ('father', "Father"),
    ('mother', "Mother"),
    ('other', "Other"),
    ]
GENDERS = ['m', 'f', 'nb', 'other', 'nd']
_NAME_RE = re.compile(r"^[^\d<>{}\[\]\\/@#$%^*=+|~`_]{2,100}$")
_PINCODE_RE = re.compile(r'^[1-9]\d{5}$')
_SERVICE_NUMBER_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9/\- ]{2,29}$')
_EMAIL_RE = re.compile(r'^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,}$')


class Patient(metaclass=PoolMeta):
    __name__ = 'gnuhealth.patient'

    patient_code = fields.Char(
        "Patient ID", readonly=True,
        help="Issued once by SeHAT OPD, for life.")
    portal_mobile = fields.Char(
        "Portal Mobile", readonly=True,
        help="The OTP-verified mobile the patient logs in with.")
    beneficiary_category = fields.Selection(
        BENEFICIARY_CATEGORIES, "Beneficiary Category")
    service = fields.Selection(SERVICES, "Service")
    service_number = fields.Char("Service Number")
    rank = fields.Char("Rank")
    relation = fields.Selection(
        RELATIONS, "Relation to Service Member",
        states={'invisible': Eval('beneficiary_category') != 'dependant'})
    echs_card = fields.Char(
        "ECHS Card Number",
        states={'invisible': Eval('beneficiary_category') != 'ex_serviceman'})
    portal_registered = fields.DateTime("Registered on Portal", readonly=True)
    portal_language = fields.Selection([
            (None, ''),
            ('en', "English"),
            ('hi', "Hindi"),
            ], "Portal Language",
        help="Language of the patient's SMS and e-mails.")
    sehat_tokens = fields.One2Many(
        'sehat.opd.token', 'patient', "OPD Tokens", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('patient_code_uniq', Unique(t, t.patient_code),
                'sehat_opd.msg_patient_code_unique'),
            ('portal_mobile_uniq', Unique(t, t.portal_mobile),
                'sehat_opd.msg_patient_mobile_unique'),
            ]

    @classmethod
    def by_mobile(cls, mobile):
        "The patient registered with this E.164 mobile, or None."
        if not mobile:
            return None
        patients = cls.search([('portal_mobile', '=', mobile)], limit=1)
        return patients[0] if patients else None

    @classmethod
    def by_code(cls, code):
        code = tools.normalize_patient_id(code)
        if not code:
            return None
        patients = cls.search([('patient_code', '=', code)], limit=1)
        return patients[0] if patients else None

    @classmethod
    def portal_register(cls, data, language='en'):
        """Register the patient of the portal's form `data`; return them.

        `data` holds the registration fields and the `verification` key of
        the mobile's OTP. The fields are checked before the key is spent, so
        a refused form can be corrected and sent again; nothing is created
        unless everything is right.
        """
        pool = Pool()
        OTP = pool.get('sehat.opd.otp')
        Notifier = pool.get('sehat.opd.notifier')
        values = cls.check_registration(data)
        values['language'] = language
        mobile = OTP.consume(data.get('verification'), 'register',
            mobile=data.get('mobile'))
        patient = cls.register_portal(values, mobile)
        Notifier.notify('registered', patient=patient, values={
                'patient_id': patient.patient_code,
                'name': patient.party.name,
                })
        return patient

    @classmethod
    def send_recovery(cls, mobile_text, address):
        """Send the Patient ID and current token number to `mobile_text`
        if a patient is registered with it.

        The caller cannot tell whether anything was sent: the same limits
        are counted and the same work is done in both cases.
        """
        pool = Pool()
        OTP = pool.get('sehat.opd.otp')
        RateEvent = pool.get('sehat.opd.rate_event')
        Token = pool.get('sehat.opd.token')
        Notifier = pool.get('sehat.opd.notifier')
        Configuration = pool.get('sehat.opd.configuration')
        config = Configuration(1)
        mobile = OTP.check_mobile(mobile_text)
        RateEvent.check_and_add(
            'recover_address', address, config.otp_per_address_hour)
        RateEvent.check_and_add(
            'recover_mobile', mobile, config.otp_per_mobile_hour)
        patient = cls.by_mobile(mobile)
        if patient:
            token = Token.current(patient)
            Notifier.notify('recover', patient=patient, values={
                    'patient_id': patient.patient_code,
                    'token': token.number if token else '-',
                    })
        else:
            Notifier.render('recover', {'patient_id': '-', 'token': '-'})

    @classmethod
    def register_portal(cls, values, mobile):
        """Register a patient from the portal; return the patient.

        `values` are the registration fields as received (already checked by
        `check_registration`), `mobile` the OTP-verified E.164 number.
        """
        pool = Pool()
        Party = pool.get('party.party')
        Country = pool.get('country.country')

        if cls.by_mobile(mobile):
            raise Conflict(gettext('sehat_opd.msg_patient_already_registered'),
                field='mobile')
        india = Country.search([('code', '=', 'IN')], limit=1)
        address = {
            'street': values['address'],
            'postal_code': values['pincode'],
            'city': values['city'],
            'subdivision': values['district_id'] or values['state_id'],
            'country': india[0].id if india else None,
            }
        contacts = [{'type': 'mobile', 'value': mobile}]
        if values.get('email'):
            contacts.append({'type': 'email', 'value': values['email']})
        code = cls._new_patient_code()
        party, = Party.create([{
                    'name': values['name'],
                    'is_person': True,
                    'is_patient': True,
                    # the patient is created below with its service details
                    'create_target': False,
                    'gender': values['gender'],
                    'dob': values['birth_date'],
                    'ref': code,
                    'fed_country': 'IND',
                    'addresses': [('create', [address])],
                    'contact_mechanisms': [('create', contacts)],
                    }])
        patient, = cls.create([{
                    'party': party.id,
                    'patient_code': code,
                    'portal_mobile': mobile,
                    'portal_registered': dt.datetime.now(),
                    'portal_language': values.get('language') or 'en',
                    **{name: values.get(name) or None for name in [
                            'beneficiary_category', 'service',
                            'service_number', 'rank', 'relation',
                            'echs_card']},
                    }])
        return patient

    @classmethod
    def _new_patient_code(cls):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        while True:
            code = tools.new_patient_id()
            cursor.execute(*table.select(
                    table.id, where=table.patient_code == code, limit=1))
            if not cursor.fetchone():
                return code

    @classmethod
    def check_registration(cls, data):
        """Validate the registration fields of the portal.

        Return the cleaned values; raise InvalidInput naming the first wrong
        field (the portal form shows it next to that field).
        """
        pool = Pool()
        Subdivision = pool.get('country.subdivision')
        errors = registration_errors(data)
        values = {}
        if not errors:
            values = clean_registration(data)
            state, district = find_region(
                Subdivision, data.get('state'), data.get('district'))
            if not state:
                errors['state'] = 'msg_registration_state'
            elif not district:
                errors['district'] = 'msg_registration_district'
            else:
                values['state_id'] = state.id
                values['district_id'] = district.id
        if errors:
            field, msg = next(iter(errors.items()))
            raise InvalidInput(
                gettext('sehat_opd.' + msg), field=field)
        return values

    def portal_profile(self):
        "What the patient may see of their own record."
        party = self.party
        address = party.addresses[0] if party.addresses else None
        district = address.subdivision if address else None
        state = district.parent if district and district.parent else district
        email = next((c.value for c in party.contact_mechanisms
                if c.type == 'email'), None)
        return {
            'patient_id': self.patient_code,
            'name': party.name,
            'gender': party.gender,
            'birth_date': party.dob.isoformat() if party.dob else None,
            'age': tools.age_in_years(party.dob, dt.date.today()),
            'mobile': self.portal_mobile,
            'email': email,
            'address': address.street if address else None,
            'pincode': address.postal_code if address else None,
            'city': address.city if address else None,
            'district': district.name if district and district.parent
            else None,
            'state': state.name if state else None,
            'beneficiary_category': self.beneficiary_category,
            'service': self.service,
            'service_number': self.service_number,
            'rank': self.rank,
            'relation': self.relation,
            'echs_card': self.echs_card,
            }


def find_region(Subdivision, state, district):
    "Find the state and its district by code or name (as in /regions)."
    def lookup(value, domain):
        if not isinstance(value, str) or not value.strip():
            return None
        value = value.strip()
        records = Subdivision.search(domain + [
                ['OR', ('code', '=', value.upper()),
                    ('name', 'ilike', value)]], limit=2)
        return records[0] if len(records) == 1 else None
    state = lookup(state, [
            ('country.code', '=', 'IN'), ('parent', '=', None)])
    if not state:
        return None, None
    return state, lookup(district, [('parent', '=', state.id)])


def registration_errors(data):
    """Return {field: message id} for the wrong registration fields.

    Pure: only the shape of each value is checked here; the region lookup
    and the mobile's uniqueness need the database.
    """
    errors = {}

    def text(name, required=True, maximum=200):
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                errors.setdefault(name, 'msg_registration_required')
            return None
        if not isinstance(value, str) or len(value) > maximum:
            errors.setdefault(name, 'msg_registration_invalid')
            return None
        return value.strip()

    name = text('name', maximum=100)
    if name and not _NAME_RE.match(name):
        errors['name'] = 'msg_registration_name'

    def choice(name, choices):
        value = data.get(name)
        return value if isinstance(value, str) and value in choices else None

    if not choice('gender', GENDERS):
        errors['gender'] = 'msg_registration_gender'
    birth_date = text('birth_date', maximum=10)
    if birth_date:
        try:
            born = dt.date.fromisoformat(birth_date)
        except ValueError:
            errors['birth_date'] = 'msg_registration_birth_date'
        else:
            if born > dt.date.today() or born.year < 1900:
                errors['birth_date'] = 'msg_registration_birth_date'
    email = text('email', required=False, maximum=254)
    if email and not _EMAIL_RE.match(email):
        errors['email'] = 'msg_registration_email'
    if not tools.normalize_mobile(data.get('mobile')):
        errors['mobile'] = 'msg_mobile_invalid'
    text('address', maximum=300)
    pincode = text('pincode', maximum=6)
    if pincode and not _PINCODE_RE.match(pincode):
        errors['pincode'] = 'msg_registration_pincode'
    text('state', maximum=100)
    text('district', maximum=100)
    text('city', maximum=100)
    category = choice('beneficiary_category', dict(BENEFICIARY_CATEGORIES))
    if not category:
        errors['beneficiary_category'] = 'msg_registration_category'
    if not choice('service', dict(SERVICES)):
        errors['service'] = 'msg_registration_service'
    number = text('service_number', maximum=30)
    if number and not _SERVICE_NUMBER_RE.match(number):
        errors['service_number'] = 'msg_registration_service_number'
    text('rank', required=category != 'dependant', maximum=50)
    if category == 'dependant':
        if not choice('relation', dict(RELATIONS)):
            errors['relation'] = 'msg_registration_relation'
    elif data.get('relation') not in (None, ''):
        errors['relation'] = 'msg_registration_relation'
    if category == 'ex_serviceman':
        echs = text('echs_card', maximum=30)
        if echs and not _SERVICE_NUMBER_RE.match(echs):
            errors['echs_card'] = 'msg_registration_invalid'
    return errors


def clean_registration(data):
    "The registration values, trimmed and typed; call after the check."
    def get(name):
        value = data.get(name)
        return value.strip() if isinstance(value, str) else value
    category = get('beneficiary_category')
    return {
        'name': ' '.join(get('name').split()),
        'gender': get('gender'),
        'birth_date': dt.date.fromisoformat(get('birth_date')),
        'email': get('email') or None,
        'address': get('address'),
        'pincode': get('pincode'),
        'city': get('city'),
        'beneficiary_category': category,
        'service': get('service'),
        'service_number': get('service_number').upper(),
        'rank': get('rank') or None,
        'relation': get('relation') if category == 'dependant' else None,
        'echs_card': get('echs_card') if category == 'ex_serviceman'
        else None,
        }

