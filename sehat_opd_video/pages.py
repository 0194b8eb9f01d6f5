"""Pages of the video consultation: the patient's and the doctor's
consultation pages and the device check.

The pages are rendered by the portal framework; the video, the chat and the
live status are driven by static/consult.js through the JSON routes of
routes.py. The Jitsi origin is added to the page's CSP (scripts and frames)
and to its Permissions-Policy (camera and microphone for the frame) only on
the consultation pages.
"""
from werkzeug.utils import redirect

from trytond.transaction import Transaction

from trytond.modules.sehat_opd.console import doctor_of, token_of
from trytond.modules.sehat_opd.exceptions import NotFound
from trytond.modules.sehat_opd.portal import current_session, page, render

from .routes import patient_token, require_video
from .token import FINISHED_STATES, OPEN_STATES, video_settings


def _base(request):
    return '/%s/opd' % request.view_args['database_name']


def render_consultation(request, template, settings, **context):
    """Render a consultation page allowing the Jitsi origin to run its
    IFrame API script, be framed and use the camera and microphone."""
    video = not settings.problems()
    origin = settings.origin if video else None
    csp_extra = {'script-src': origin, 'frame-src': origin} if video else None
    response = render(request, template, csp_extra=csp_extra,
        video=video, script_url=settings.script_url if video else None,
        **context)
    if video:
        allowed = '(self "%s")' % origin
        response.headers['Permissions-Policy'] = ', '.join([
                'camera=%s' % allowed, 'microphone=%s' % allowed,
                'display-capture=%s' % allowed, 'fullscreen=%s' % allowed,
                'autoplay=%s' % allowed, 'geolocation=()'])
    return response


@page('/consult', patient=True)
def consult(request, pool, session):
    """The patient's consultation: video with the doctor and chat."""
    require_video(pool)
    try:
        token = patient_token(pool, session)
    except NotFound:
        token = None
    if token is not None and token.state == 'waiting':
        return redirect(_base(request) + '/waiting')
    settings = video_settings()
    api = '/%s/opd/api/v1' % Transaction().database.name
    status = token.video_status() if token else None
    open_ = bool(status and token.state in OPEN_STATES and not status['over'])
    data = None
    if token:
        data = {
            'role': 'patient',
            'join': api + '/tokens/current/join',
            'event': api + '/tokens/current/video',
            'poll': api + '/tokens/current/consultation?token=%s' % token.id,
            'messages': api + '/tokens/current/messages',
            'files': api + '/files/',
            'status': status,
            'open': open_,
            }
    return render_consultation(request, 'consult.html', settings,
        patient=pool.get('gnuhealth.patient')(session.owner),
        csrf_token=session.csrf, token=token, vstatus=status, open=open_,
        data=data)


@page('/doctor/consult/<int:token_id>')
def doctor_consult(request, pool, session, token_id):
    """The doctor's consultation: video, chat and the patient's summary,
    with a link to the token in the back office."""
    require_video(pool)
    staff = current_session(request, pool, 'user')
    if staff is None:
        return redirect('%s/doctor/?token=%s' % (_base(request), token_id))
    healthprof = doctor_of(pool, staff)
    token = token_of(pool, healthprof, token_id)
    token.check_video_doctor(healthprof)
    settings = video_settings()
    api = '/%s/opd/api/v1' % Transaction().database.name
    status = token.video_status()
    open_ = token.state in OPEN_STATES and not status['over']
    data = {
        'role': 'doctor',
        'join': api + '/doctor/tokens/%s/join' % token.id,
        'event': api + '/doctor/tokens/%s/video' % token.id,
        'poll': api + '/doctor/tokens/%s/consultation' % token.id,
        'messages': api + '/doctor/tokens/%s/messages' % token.id,
        'files': api + '/doctor/files/',
        'complete': api + '/doctor/tokens/%s/complete' % token.id,
        'start': api + '/doctor/tokens/%s/start' % token.id,
        'status': status,
        'open': open_,
        }
    return render_consultation(request, 'doctor_consult.html', settings,
        csrf_token=staff.csrf, token=token, detail=token.console_detail(),
        doctor=healthprof, vstatus=status, open=open_, data=data,
        backoffice_url=token.backoffice_url(),
        finished=token.state in FINISHED_STATES)


@page('/device-check')
def device_check(request, pool, session):
    """Check the camera, microphone, speakers and browser before a
    consultation, without an outside site."""
    require_video(pool)
    patient = pool.get('gnuhealth.patient')(session.owner) if session else None
    return render(request, 'device_check.html', patient=patient,
        csrf_token=session.csrf if session else None)

