"""Public pages of the portal: doctors' status, help and the contact form.

They need no login; a logged-in patient sees their own menu on them.
"""
from . import web
from .portal import page, render

# the fields of the contact form, in the order of the page
CONTACT_FIELDS = [
    'first_name', 'last_name', 'mobile', 'email', 'city', 'state', 'message']


def _patient(pool, session):
    return pool.get('gnuhealth.patient')(session.owner) if session else None


@page('/doctors')
def doctors(request, pool, session):
    """Doctors' status: each OPD, its online doctors (free or busy) and how
    many patients wait today."""
    OPD = pool.get('sehat.opd')
    # open OPDs first, then those with doctors online
    opds = sorted(OPD.portal_list(),
        key=lambda o: (not o['open_now'], not o['doctors_online']))
    return render(request, 'doctors.html', opds=opds,
        patient=_patient(pool, session),
        doctors_online=sum(o['doctors_online'] for o in opds),
        waiting=sum(o['waiting'] for o in opds))


@page('/help')
def help_(request, pool, session):
    "How to consult, what is needed, hours, dropped calls, privacy."
    OPD = pool.get('sehat.opd')
    Configuration = pool.get('sehat.opd.configuration')
    config = Configuration(1)
    return render(request, 'help.html', opds=OPD.portal_list(),
        patient=_patient(pool, session),
        call_minutes=max(1, config.call_window // 60),
        upload_max_files=config.upload_max_files,
        upload_max_mb=config.upload_max_mb,
        requeue_limit=config.requeue_limit)


@page('/contact', methods=['GET', 'POST'])
def contact(request, pool, session):
    """The contact form. Without JavaScript the visitor types the image's
    characters; with it, the page solves the proof of work by itself."""
    Contact = pool.get('sehat.opd.contact')
    values, error, status = {}, None, 200
    if request.method == 'POST':
        values = {name: request.form.get(name, '') for name in CONTACT_FIELDS}
        data = dict(values,
            captcha=request.form.get('captcha'),
            captcha_answer=request.form.get('captcha_answer'),
            captcha_nonce=request.form.get('captcha_nonce'))
        sent, error = Contact.submit(data, web.client_address(request),
            web.request_language(request))
        if sent:
            return render(request, 'contact_sent.html', status=201,
                reference=sent.reference, patient=_patient(pool, session))
        status = error.status
    return render(request, 'contact.html', status=status,
        values=values, error=error,
        states=_states(pool, request), challenge=Contact.challenge(),
        patient=_patient(pool, session))


def _states(pool, request):
    Subdivision = pool.get('country.subdivision')
    return [(s['code'], s['name']) for s in Subdivision.portal_regions(
            web.request_language(request))]
