"""Patient portal pages (server-rendered; the JSON API is in routes.py).

Each page calls the same model methods as the API, so a form posted
without JavaScript behaves exactly as the API does.
"""
from trytond.transaction import Transaction

from .portal import page, render


def _patient(pool, session):
    return pool.get('gnuhealth.patient')(session.owner) if session else None


@page('/')
def home(request, pool, session):
    "What the service is, who may use it, hours, equipment and steps."
    OPD = pool.get('sehat.opd')
    return render(request, 'home.html', opds=OPD.portal_list(),
        patient=_patient(pool, session),
        csrf_token=session.csrf if session else None,
        database=Transaction().database.name)
