"""Jitsi Meet for SeHAT OPD: settings, room names and participant tokens.

Pure work, no pool access: values in, values out, tested without a
database. Two deployments are supported:

- ``jwt``: a self-hosted Jitsi Meet (docker-jitsi-meet) with token
  authentication. Tokens are HS256, signed with the shared ``app_secret``;
  ``iss`` is the ``app_id``, ``aud`` the accepted audience and ``sub`` the
  internal XMPP domain (``meet.jitsi`` in docker-jitsi-meet). The doctor is
  ``context.user.affiliation = "owner"``.
- ``jaas``: 8x8 Jitsi as a Service. Tokens are RS256 with the key id
  (``kid``) of the API key in the header; ``iss`` is ``"chat"``, ``aud``
  ``"jitsi"``, ``sub`` the AppID (tenant); the doctor is
  ``context.user.moderator = "true"``. The IFrame API joins
  ``<AppID>/<room>`` while the token names the bare room.
"""
import base64
import calendar
import re
import secrets
from dataclasses import dataclass, field

import jwt

MODES = ('jwt', 'jaas')
SECTION = 'sehat_opd_video'
# 20 random bytes (160 bits) in lower-case base 32: rooms cannot be guessed
# or enumerated, and nothing about the patient is in the name.
ROOM_BYTES = 20
ROOM_PREFIX = 'sehat-'
ROOM_PATTERN = re.compile(r'^[a-z0-9][a-z0-9-]{15,63}$')
# host or host:port, nothing that could break out of a URL or a CSP
DOMAIN_PATTERN = re.compile(
    r'^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$')
APP_ID_PATTERN = re.compile(r'^[A-Za-z0-9._-]{1,200}$')
# accepted difference between our clock and Jitsi's
CLOCK_SKEW = 30
# JaaS features a participant may use; none of them for a medical
# consultation (no recording, streaming, transcription or phone-out).
JAAS_FEATURES = (
    'livestreaming', 'recording', 'transcription', 'sip-inbound-call',
    'sip-outbound-call', 'inbound-call', 'outbound-call', 'file-upload',
    'list-visitors')
RESOLUTIONS = (180, 360, 720)


@dataclass(frozen=True)
class Settings:
    "The [sehat_opd_video] section of trytond.conf (environment first)."
    mode: str = 'jwt'
    domain: str = ''
    scheme: str = 'https'
    app_id: str = ''
    app_secret: str = field(default='', repr=False)
    audience: str = 'jitsi'
    subject: str = 'meet.jitsi'
    token_lifetime: int = 3600
    jaas_kid: str = ''
    jaas_private_key_file: str = ''
    jaas_private_key: str = field(default='', repr=False)
    resolution: int = 360

    def problems(self):
        "What keeps video from working, as option names (empty when fine)."
        missing = []
        if self.mode not in MODES:
            missing.append('mode')
        if not DOMAIN_PATTERN.match(self.domain or ''):
            missing.append('domain')
        if self.scheme not in ('https', 'http'):
            missing.append('scheme')
        if not APP_ID_PATTERN.match(self.app_id or ''):
            missing.append('app_id')
        if self.mode == 'jaas':
            if not self.jaas_kid:
                missing.append('jaas_kid')
            if not self.jaas_private_key:
                missing.append('jaas_private_key_file')
        elif not self.app_secret:
            missing.append('app_secret')
        if self.token_lifetime <= 0:
            missing.append('token_lifetime')
        return missing

    @property
    def origin(self):
        "The origin of the Jitsi web server (for the page's CSP)."
        return '%s://%s' % (self.scheme, self.domain)

    @property
    def script_url(self):
        "Where the IFrame API (external_api.js) is loaded from."
        if self.mode == 'jaas':
            return '%s/%s/external_api.js' % (self.origin, self.app_id)
        return '%s/external_api.js' % self.origin

    def embed_room(self, room):
        "The roomName given to the IFrame API."
        if self.mode == 'jaas':
            return '%s/%s' % (self.app_id, room)
        return room


def load_settings(get):
    """Read the settings with `get(section, option, default)` (the module's
    get_setting: environment first, then trytond.conf). The JaaS private
    key is read from its file here, so that minting stays pure."""
    def integer(option, default):
        try:
            return int(get(SECTION, option, default))
        except (TypeError, ValueError):
            return default

    mode = (get(SECTION, 'mode', 'jwt') or 'jwt').strip().lower()
    app_id = (get(SECTION, 'app_id', '') or '').strip()
    key_file = (get(SECTION, 'jaas_private_key_file', '') or '').strip()
    private_key = ''
    if mode == 'jaas' and key_file:
        try:
            with open(key_file, encoding='ascii') as fp:
                private_key = fp.read()
        except (OSError, UnicodeDecodeError):
            private_key = ''
    resolution = integer('resolution', 360)
    if resolution not in RESOLUTIONS:
        resolution = 360
    return Settings(
        mode=mode,
        domain=(get(SECTION, 'domain', '') or '').strip(),
        scheme=(get(SECTION, 'scheme', 'https') or 'https').strip().lower(),
        app_id=app_id,
        app_secret=get(SECTION, 'app_secret', '') or '',
        audience=(get(SECTION, 'audience', 'jitsi') or 'jitsi').strip(),
        subject=(get(SECTION, 'subject', 'meet.jitsi')
            or 'meet.jitsi').strip(),
        token_lifetime=integer('token_lifetime', 3600),
        jaas_kid=(get(SECTION, 'jaas_kid', '') or '').strip(),
        jaas_private_key_file=key_file,
        jaas_private_key=private_key,
        resolution=resolution,
        )


def new_room_name(token_bytes=secrets.token_bytes):
    """A fresh room name: ``sehat-`` and 160 random bits in lower-case
    base 32 (Jitsi lower-cases room names; base 32 survives that)."""
    raw = token_bytes(ROOM_BYTES)
    return ROOM_PREFIX + base64.b32encode(raw).decode('ascii').rstrip(
        '=').lower()


def is_room_name(value):
    return bool(isinstance(value, str) and ROOM_PATTERN.match(value))


def timestamp(value):
    "Seconds since the epoch of a naive UTC datetime (as trytond keeps)."
    return calendar.timegm(value.utctimetuple())


def expiry(now, lifetime, *limits):
    """When a token minted at `now` must expire: after `lifetime` seconds
    or at the first of `limits` (epoch seconds, None ignored)."""
    candidates = [now + lifetime] + [int(l) for l in limits if l is not None]
    return min(candidates)


def claims(settings, room, user, moderator, now, expires):
    """The payload of a participant's token.

    `user` has id, name, email and avatar (any of them may be empty); every
    value is sent as a string, as Jitsi expects. `now` and `expires` are
    epoch seconds.
    """
    if not is_room_name(room):
        raise ValueError('invalid room name')
    context_user = {
        key: '' if user.get(key) is None else str(user.get(key))
        for key in ('id', 'name', 'email', 'avatar')}
    if settings.mode == 'jaas':
        context_user['moderator'] = 'true' if moderator else 'false'
        payload = {
            'iss': 'chat',
            'aud': 'jitsi',
            'sub': settings.app_id,
            'room': room,
            'context': {
                'user': context_user,
                'features': {name: 'false' for name in JAAS_FEATURES},
                },
            }
    else:
        context_user['affiliation'] = 'owner' if moderator else 'member'
        # also understood by the token moderation plugins that read it
        context_user['moderator'] = 'true' if moderator else 'false'
        payload = {
            'iss': settings.app_id,
            'aud': settings.audience,
            'sub': settings.subject,
            'room': room,
            'context': {'user': context_user},
            }
    payload.update({
            'iat': int(now),
            'nbf': int(now) - CLOCK_SKEW,
            'exp': int(expires),
            })
    return payload


def mint(settings, room, user, moderator, now, expires):
    "The signed token (a str) of one participant for one room."
    payload = claims(settings, room, user, moderator, now, expires)
    if settings.mode == 'jaas':
        return jwt.encode(payload, settings.jaas_private_key,
            algorithm='RS256',
            headers={'kid': settings.jaas_kid, 'typ': 'JWT'})
    return jwt.encode(payload, settings.app_secret, algorithm='HS256',
        headers={'typ': 'JWT'})


def iframe_options(settings, room, display_name, email='', language='en',
        moderator=False):
    """Options of ``new JitsiMeetExternalAPI(domain, options)`` apart from
    the parent node and the token: a low-bandwidth start (many patients
    have about 1 Mbps), no pre-join screen (the portal already explained
    the camera and microphone), the name from the token and read-only."""
    height = settings.resolution
    toolbar = ['microphone', 'camera', 'hangup', 'tileview', 'settings',
        'fullscreen']
    if moderator:
        toolbar.append('desktop')
    return {
        'roomName': settings.embed_room(room),
        'width': '100%',
        'height': '100%',
        'lang': language,
        'userInfo': {'displayName': display_name, 'email': email or ''},
        'configOverwrite': {
            'prejoinConfig': {'enabled': False},
            'prejoinPageEnabled': False,
            'readOnlyName': True,
            'disableProfile': True,
            'requireDisplayName': False,
            'enableWelcomePage': False,
            'disableDeepLinking': True,
            'disableInviteFunctions': True,
            'disableThirdPartyRequests': True,
            'enableClosePage': False,
            'startWithAudioMuted': False,
            'startWithVideoMuted': False,
            'resolution': height,
            'constraints': {'video': {'height': {
                        'ideal': height, 'max': height, 'min': 180}}},
            'maxFullResolutionParticipants': 1,
            'startAudioOnly': False,
            'p2p': {'enabled': True},
            'disableAudioLevels': False,
            'toolbarButtons': toolbar,
            'hideConferenceSubject': True,
            'defaultLanguage': language,
            'fileRecordingsEnabled': False,
            'liveStreamingEnabled': False,
            'transcribingEnabled': False,
            'disableRemoteMute': not moderator,
            },
        'interfaceConfigOverwrite': {
            'SHOW_JITSI_WATERMARK': False,
            'SHOW_WATERMARK_FOR_GUESTS': False,
            'SHOW_BRAND_WATERMARK': False,
            'SHOW_POWERED_BY': False,
            'SHOW_PROMOTIONAL_CLOSE_PAGE': False,
            'MOBILE_APP_PROMO': False,
            'DISABLE_JOIN_LEAVE_NOTIFICATIONS': False,
            },
        }
