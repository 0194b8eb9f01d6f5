"""Patient portal pages (server-rendered; the JSON API is in routes.py).

Each page calls the same model methods as the API, so a form posted
without JavaScript behaves exactly as the API does. The steps of
registration and login (OTP sent, mobile verified) are kept in a short-lived
signed cookie, so that a reload or a language switch does not lose them.
"""
import base64
import binascii
import datetime as dt
import json
import time

from werkzeug.utils import redirect

from trytond.i18n import gettext
from trytond.transaction import Transaction

from . import tools, web
from .exceptions import Conflict, OTPError, PortalError
from .patient import registration_errors
from .portal import page, render

FLOW_COOKIE = 'sehat_flow'
# a step of registration or login is kept that long (the verification key
# itself is valid 15 minutes after the OTP)
FLOW_SECONDS = 20 * 60
OTHER_CITY = '__other__'
REGISTRATION_FIELDS = [
    'name', 'gender', 'birth_date', 'email', 'address', 'pincode', 'state',
    'district', 'city', 'beneficiary_category', 'service', 'service_number',
    'rank', 'relation', 'echs_card',
    ]


def _patient(pool, session):
    return pool.get('gnuhealth.patient')(session.owner) if session else None


def _base(request):
    return '/%s/opd' % request.view_args.get('database_name')


def _see_other(location):
    return redirect(location, code=303)


# Steps kept between requests ----------------------------------------------

def read_flow(request, name):
    "The step of flow `name` ('register', 'login') this browser is at."
    raw = request.cookies.get(FLOW_COOKIE) or ''
    payload, _, signature = raw.rpartition('.')
    if not payload or not tools.check_signature(payload, signature):
        return None
    try:
        flow = json.loads(base64.urlsafe_b64decode(payload.encode('ascii')))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if (not isinstance(flow, dict) or flow.get('flow') != name
            or not isinstance(flow.get('at'), (int, float))
            or not 0 <= time.time() - flow['at'] < FLOW_SECONDS):
        return None
    return flow


def write_flow(response, request, name=None, **values):
    "Keep the step of flow `name` in the browser; no name forgets it."
    path = _base(request)
    if name is None:
        response.delete_cookie(FLOW_COOKIE, path=path, httponly=True,
            samesite='Lax', secure=request.scheme == 'https')
        return response
    values.update(flow=name, at=time.time())
    payload = base64.urlsafe_b64encode(
        json.dumps(values).encode('utf-8')).decode('ascii')
    response.set_cookie(FLOW_COOKIE,
        '%s.%s' % (payload, tools.sign(payload)), max_age=FLOW_SECONDS,
        path=path, httponly=True, samesite='Lax',
        secure=request.scheme == 'https')
    return response


def _attempt(func, *args, **kwargs):
    """Call a model method the way the API does: on a refusal its writes
    are undone and the error is returned, for the form to show it."""
    try:
        return func(*args, **kwargs), None
    except PortalError as error:
        Transaction().rollback()
        return None, error


def _errors(error, default_field='_form'):
    "A PortalError as the {field: message} the forms show."
    return {error.field or default_field: error.message}


def display_mobile(mobile):
    "+919876543210 -> +91 98765 43210"
    if mobile and mobile.startswith('+91') and len(mobile) == 13:
        return '+91 %s %s' % (mobile[3:8], mobile[8:])
    return mobile or ''


def _resend_wait(pool, flow):
    "Seconds before another OTP can be asked for."
    Configuration = pool.get('sehat.opd.configuration')
    waited = time.time() - flow.get('sent', 0)
    return max(0, int(Configuration(1).otp_resend_after - waited + 0.999))


def _limits(pool):
    "The settings the OTP and login pages tell the patient about."
    config = pool.get('sehat.opd.configuration')(1)
    return {
        'minutes': config.otp_validity,
        'resend': config.otp_resend_after,
        'token_failures': config.token_login_max_failures,
        }


def safe_next(request, target):
    "`target` if it is a page of this portal, else the profile."
    base = _base(request)
    if (isinstance(target, str) and target.startswith(base + '/')
            and '//' not in target and '\\' not in target
            and all(c.isprintable() and not c.isspace() for c in target)):
        return target
    return base + '/profile'


def _send_otp(request, pool, purpose, mobile_text):
    "Ask for an OTP; return (flow values, errors)."
    OTP = pool.get('sehat.opd.otp')
    result, error = _attempt(OTP.request, mobile_text, purpose,
        web.client_address(request))
    if error:
        return None, _errors(error, 'mobile')
    otp, _, _ = result
    return {'step': 'otp', 'otp_id': otp.id, 'mobile': otp.mobile,
        'sent': time.time()}, {}


def _verify_otp(pool, flow, code):
    """Check the code typed for the OTP of `flow`; return (key, errors).

    A wrong code is counted (committed) before the error is shown.
    """
    OTP = pool.get('sehat.opd.otp')
    result, error = _attempt(OTP.verify, flow.get('otp_id'), code)
    if error:
        return None, _errors(error, 'code')
    _, key, counted = result
    if counted:
        return None, _errors(counted, 'code')
    return key, {}


# Registration ---------------------------------------------------------------

@page('/register', methods=['GET', 'POST'], floor=web.TIMING_FLOOR)
def register(request, pool, session):
    """Patient Registration: mobile, then OTP, then the form.

    Every step is a plain form post answered by a redirect (or by the same
    step with its errors); identity.js only adds the district and town lists,
    the age and the resend countdown.
    """
    base = _base(request)
    if session:
        return _see_other(base + '/profile')
    flow = read_flow(request, 'register') or {}
    if request.method == 'POST':
        action = request.form.get('action')
        if action == 'restart':
            return write_flow(_see_other(base + '/register'), request)
        if action in {'send', 'resend'}:
            mobile = (request.form.get('mobile') if action == 'send'
                else flow.get('mobile'))
            values, errors = _send_otp(request, pool, 'register', mobile)
            if not errors:
                return write_flow(_see_other(base + '/register'), request,
                    'register', **values)
            if action == 'send':
                return _register_page(request, pool, {}, errors=errors,
                    values={'mobile': request.form.get('mobile', '')})
            return _register_page(request, pool, flow, errors=errors)
        if action == 'verify' and flow.get('step') == 'otp':
            key, errors = _verify_otp(pool, flow, request.form.get('code'))
            if errors:
                return _register_page(request, pool, flow, errors=errors)
            return write_flow(_see_other(base + '/register'), request,
                'register', step='form', verification=key)
        if action in {'refresh', 'submit'} and flow.get('step') == 'form':
            values = _registration_values(request.form)
            if action == 'refresh':
                return _register_page(request, pool, flow, values=values)
            return _submit_registration(request, pool, flow, values)
        # a stale form (its step is over): show the current step
        return _see_other(base + '/register')
    return _register_page(request, pool, flow)


def _registration_values(form):
    "The registration fields as posted by the form."
    values = {name: (form.get(name) or '').strip()
        for name in REGISTRATION_FIELDS}
    values['city_other'] = (form.get('city_other') or '').strip()
    return values


def _api_values(values, mobile, verification):
    "The form's values as the API takes them."
    data = {k: v for k, v in values.items() if k in REGISTRATION_FIELDS}
    if data.get('city') in {OTHER_CITY, ''}:
        data['city'] = values.get('city_other', '')
    # a choice left from another category is not an error on the page
    if data.get('beneficiary_category') != 'dependant':
        data['relation'] = ''
    if data.get('beneficiary_category') != 'ex_serviceman':
        data['echs_card'] = ''
    data['mobile'] = mobile
    data['verification'] = verification
    return data


def _submit_registration(request, pool, flow, values):
    Patient = pool.get('gnuhealth.patient')
    Session = pool.get('sehat.opd.session')
    OTP = pool.get('sehat.opd.otp')
    base = _base(request)
    verification = flow.get('verification')
    mobile = OTP.verified_mobile(verification, 'register')
    if not mobile:
        response = _register_page(request, pool, {}, values={}, errors={
                '_form': gettext('sehat_opd.msg_verification_invalid')})
        return write_flow(response, request)
    data = _api_values(values, mobile, verification)
    errors = {field: gettext('sehat_opd.' + msg)
        for field, msg in registration_errors(data).items()}
    if values.get('city') == OTHER_CITY and 'city' in errors:
        errors['city_other'] = errors.pop('city')
    if errors:
        return _register_page(request, pool, flow, values=values,
            errors=errors, status=422)
    patient, error = _attempt(Patient.portal_register, data,
        web.request_language(request))
    if isinstance(error, Conflict):
        return _register_page(request, pool, flow, registered=True,
            status=409)
    if isinstance(error, OTPError):
        response = _register_page(request, pool, {}, errors={
                '_form': error.message}, status=400)
        return write_flow(response, request)
    if error:
        field = error.field or '_form'
        if field == 'city' and values.get('city') == OTHER_CITY:
            field = 'city_other'
        return _register_page(request, pool, flow, values=values,
            errors={field: error.message}, status=error.status)
    _, key = Session.start(
        patient=patient, address=web.client_address(request))
    response = _see_other(base + '/welcome')
    web.session_cookie(response, request, web.PATIENT_COOKIE, key)
    return write_flow(response, request)


def _register_page(request, pool, flow, values=None, errors=None,
        registered=False, status=None):
    "The step of registration `flow` is at, with its values and errors."
    Patient = pool.get('gnuhealth.patient')
    OTP = pool.get('sehat.opd.otp')
    step = flow.get('step') or 'mobile'
    errors = errors or {}
    values = values or {}
    context = {'step': step, 'errors': errors, 'values': values,
        'limits': _limits(pool)}
    if step == 'otp':
        context.update(mobile=display_mobile(flow.get('mobile')),
            resend_wait=_resend_wait(pool, flow))
    elif step == 'form':
        mobile = OTP.verified_mobile(flow.get('verification'), 'register')
        if not mobile:
            context.update(step='mobile', errors={
                    '_form': gettext('sehat_opd.msg_verification_invalid')})
        elif registered or Patient.by_mobile(mobile):
            context.update(step='registered')
        else:
            context.update(mobile=display_mobile(mobile),
                **_region_choices(request, pool, values))
            age = _age(values.get('birth_date'))
            context['age'] = age
    if status is None:
        status = 422 if errors else 200
    return render(request, 'register.html', status=status, **context)


def _age(text):
    try:
        born = dt.date.fromisoformat(text or '')
    except ValueError:
        return None
    age = tools.age_in_years(born, dt.date.today())
    return age if born <= dt.date.today() else None


def _region_choices(request, pool, values):
    """The state, district and town lists of the form for the chosen
    values (the page works without JavaScript)."""
    Subdivision = pool.get('country.subdivision')
    states = Subdivision.portal_regions(web.request_language(request))
    state = next((s for s in states
            if s['code'] == values.get('state')), None)
    districts = state['districts'] if state else []
    district = next((d for d in districts
            if d['code'] == values.get('district')), None)
    cities = district['cities'] if district else []
    if values.get('city') and values['city'] not in cities + [OTHER_CITY]:
        # a town typed before, kept as "other"
        values['city_other'] = values.get('city_other') or values['city']
        values['city'] = OTHER_CITY
    return {
        'states': [{'code': s['code'], 'name': s['name']} for s in states],
        'districts': districts,
        'cities': cities,
        'other_city': OTHER_CITY,
        }


@page('/welcome', patient=True)
def welcome(request, pool, session):
    "The end of registration: the Patient ID, big, and what comes next."
    patient = _patient(pool, session)
    return render(request, 'welcome.html', patient=patient,
        csrf_token=session.csrf, profile=patient.portal_profile())


# Login, logout, recovery ----------------------------------------------------

@page('/login', methods=['GET', 'POST'], floor=web.TIMING_FLOOR)
def login(request, pool, session):
    """Patient Login: mobile + OTP, or mobile + token number.

    Goes to `next` (a page of the portal) once logged in.
    """
    Session = pool.get('sehat.opd.session')
    base = _base(request)
    flow = read_flow(request, 'login') or {}
    target = request.values.get('next') or flow.get('next')
    if session:
        return _see_other(safe_next(request, target))
    if request.method != 'POST':
        return _login_page(request, pool, flow, target)
    action = request.form.get('action')
    address = web.client_address(request)
    if action == 'restart':
        return write_flow(_see_other(base + '/login'), request)
    if action in {'send', 'resend'}:
        mobile = (request.form.get('mobile') if action == 'send'
            else flow.get('mobile'))
        values, errors = _send_otp(request, pool, 'login', mobile)
        if not errors:
            return write_flow(_see_other(base + '/login'), request,
                'login', next=target, **values)
        if action == 'send':
            return _login_page(request, pool, {}, target, errors=errors,
                values={'mobile': request.form.get('mobile', '')})
        return _login_page(request, pool, flow, target, errors=errors)
    if action == 'verify' and flow.get('step') == 'otp':
        key, errors = _verify_otp(pool, flow, request.form.get('code'))
        patient = None
        if not errors:
            patient, error = _attempt(Session.login_verified, key)
            errors = _errors(error, 'code') if error else {}
        if errors:
            return _login_page(request, pool, flow, target, errors=errors,
                status=401)
    elif action == 'token':
        result, error = _attempt(Session.login_with_token,
            request.form.get('mobile'), request.form.get('token_number'),
            address)
        patient, counted = result or (None, None)
        error = error or counted
        if error:
            return _login_page(request, pool, {}, target,
                errors=_errors(error, 'token_number'), method='token',
                values={'mobile': request.form.get('mobile', '')},
                status=error.status)
    else:
        return _see_other(base + '/login')
    Session.end_key(request.cookies.get(web.PATIENT_COOKIE))
    _, key = Session.start(patient=patient, address=address)
    response = _see_other(safe_next(request, target))
    web.session_cookie(response, request, web.PATIENT_COOKIE, key)
    return write_flow(response, request)


def _login_page(request, pool, flow, target, values=None, errors=None,
        method='otp', status=None):
    step = flow.get('step') or 'mobile'
    errors = errors or {}
    context = {
        'step': step, 'errors': errors, 'values': values or {},
        'method': method, 'next': target, 'limits': _limits(pool),
        'logged_out': request.args.get('logged_out') == '1',
        }
    if step == 'otp':
        context.update(mobile=display_mobile(flow.get('mobile')),
            resend_wait=_resend_wait(pool, flow))
    if status is None:
        status = 422 if errors else 200
    return render(request, 'login.html', status=status, **context)


@page('/logout', methods=['POST'])
def logout(request, pool, session):
    "End the session on the server and forget its cookie."
    Session = pool.get('sehat.opd.session')
    if session:
        Session.end(session.id)
    response = _see_other(_base(request) + '/login?logged_out=1')
    web.clear_cookie(response, request, web.PATIENT_COOKIE)
    return write_flow(response, request)


@page('/recover', methods=['GET', 'POST'], floor=web.TIMING_FLOOR)
def recover(request, pool, session):
    """Forgot Patient ID and Token: the same answer for every valid mobile;
    a registered one gets its Patient ID and token number by SMS."""
    Patient = pool.get('gnuhealth.patient')
    context = {'errors': {}, 'values': {}, 'sent': False,
        'patient': _patient(pool, session),
        'csrf_token': session.csrf if session else None}
    if request.method == 'POST':
        mobile = request.form.get('mobile')
        _, error = _attempt(Patient.send_recovery, mobile,
            web.client_address(request))
        if error:
            context.update(errors=_errors(error, 'mobile'),
                values={'mobile': mobile or ''})
            return render(request, 'recover.html', status=error.status,
                **context)
        context.update(sent=True, mobile=display_mobile(
                tools.normalize_mobile(mobile)))
    return render(request, 'recover.html', **context)


# Pages of a logged-in patient -----------------------------------------------

@page('/')
def home(request, pool, session):
    "What the service is, who may use it, hours, equipment and steps."
    OPD = pool.get('sehat.opd')
    return render(request, 'home.html', opds=OPD.portal_list(),
        patient=_patient(pool, session),
        csrf_token=session.csrf if session else None,
        database=Transaction().database.name)


@page('/profile', patient=True)
def profile(request, pool, session):
    "My profile: what is registered, read-only (staff correct it)."
    patient = _patient(pool, session)
    profile = patient.portal_profile()
    return render(request, 'profile.html', patient=patient,
        csrf_token=session.csrf, profile=profile,
        mobile_text=display_mobile(profile['mobile']),
        birth_text=patient.party.dob.strftime('%d/%m/%Y')
        if patient.party.dob else None)
