"""The video side of a token: its Jitsi room, who is in it, and when the
consultation starts."""
import datetime as dt

from trytond.i18n import gettext
from trytond.model import ModelView, Unique, fields
from trytond.modules.sehat_opd.exceptions import (
    Forbidden, InvalidInput, TokenStateError)
from trytond.modules.sehat_opd.opd import lock_rows
from trytond.modules.sehat_opd.tools import get_setting, to_utc
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.transaction import Transaction

from . import jitsi
from .exceptions import VideoUnavailable

SIDES = ('patient', 'doctor')
EVENTS = ('joined', 'left', 'ready_to_close')
OPEN_STATES = ('called', 'in_consultation')
FINISHED_STATES = ('completed', 'cancelled', 'expired')
# A patient who drops after the consultation time limit may still come back
# for this long (to hear the advice while the prescription is written).
REJOIN_GRACE = dt.timedelta(minutes=10)
# A token that would live shorter than this is not worth issuing.
MIN_TOKEN_SECONDS = 60


def video_settings():
    "The Jitsi settings of this server ([sehat_opd_video], env first)."
    return jitsi.load_settings(get_setting)


class Token(metaclass=PoolMeta):
    __name__ = 'sehat.opd.token'

    video_room = fields.Char(
        "Video Room", readonly=True,
        help="The Jitsi room of the consultation: random, never derived "
        "from the patient.")
    video_patient_joined = fields.Timestamp(
        "Patient Joined Video", readonly=True)
    video_patient_left = fields.Timestamp("Patient Left Video", readonly=True)
    video_doctor_joined = fields.Timestamp(
        "Doctor Joined Video", readonly=True)
    video_doctor_left = fields.Timestamp("Doctor Left Video", readonly=True)
    messages = fields.One2Many(
        'sehat.opd.message', 'token', "Chat", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints += [
            ('video_room_unique', Unique(t, t.video_room),
                'sehat_opd_video.msg_video_room_unique'),
            ]
        cls._buttons.update({
                'start_without_video': {
                    'invisible': ((Eval('state') != 'called')
                        | ~Eval('answered_at')),
                    'depends': ['state', 'answered_at'],
                    },
                })

    @classmethod
    def create(cls, vlist):
        # not a field default: Tryton computes defaults once per create()
        # call, which would give every token of a batch the same room
        vlist = [v.copy() for v in vlist]
        for values in vlist:
            if not values.get('video_room'):
                values['video_room'] = jitsi.new_room_name()
        return super().create(vlist)

    @classmethod
    def call(cls, tokens, healthprof):
        """Each call starts with nobody in the room: after a requeue, who
        was in it before must not make the new call start by itself."""
        super().call(tokens, healthprof)
        cls.write([t for t in tokens if t.state == 'called'], {
                'video_patient_joined': None, 'video_patient_left': None,
                'video_doctor_joined': None, 'video_doctor_left': None,
                })

    # Hooks of the core ---------------------------------------------------

    def consultation_url(self):
        "The patient's consultation page (video and chat)."
        if self.state in OPEN_STATES:
            return '/%s/opd/consult' % Transaction().database.name
        return None

    def doctor_consultation_url(self):
        "The doctor's consultation page (video, chat, patient summary)."
        if self.state in OPEN_STATES:
            return '/%s/opd/doctor/consult/%s' % (
                Transaction().database.name, self.id)
        return None

    def backoffice_url(self):
        "The token in the web client (sao's #<db>/model/<model>/<id>)."
        return '/#%s/model/%s/%s' % (
            Transaction().database.name, self.__name__, self.id)

    @classmethod
    @ModelView.button_action('sehat_opd.url_doctor_console')
    def open_console(cls, tokens):
        """Open the consultation page of an active consultation, else the
        doctor console."""
        url = tokens[0].doctor_consultation_url() if tokens else None
        if url:
            return {'url': url}
        return super().open_console(tokens)

    def answer(self):
        """The patient answered Call Now: record it.

        The consultation starts only when the patient and the doctor are
        both in the video room (see `video_event`); answering again, or
        after the start, changes nothing. Without video settings the core
        behaviour (start at once) is kept, so chat-only consultations work.
        """
        if video_settings().problems():
            return super().answer()
        if self.state == 'in_consultation' or (
                self.state == 'called' and self.answered_at):
            return
        if self.state != 'called' or (
                self.call_deadline
                and dt.datetime.now() > self.call_deadline):
            raise TokenStateError(gettext('sehat_opd.msg_token_not_called'))
        self.answered_at = dt.datetime.now()
        self.save()
        Pool().get('sehat.opd.live').publish_token(self.id, 'answered')

    @classmethod
    @ModelView.button
    def start_without_video(cls, tokens):
        """Start answered consultations without video (by chat or phone),
        for patients whose camera or connection does not work.

        A doctor may only for the patients they called.
        """
        HealthProfessional = Pool().get('gnuhealth.healthprofessional')
        user = Transaction().user
        healthprof = HealthProfessional.of_user(user) if user else None
        for token in tokens:
            if healthprof:
                token.check_video_doctor(healthprof)
            if token.state != 'called' or not token.answered_at:
                raise TokenStateError(
                    gettext('sehat_opd_video.msg_video_not_answered'))
        cls.start(tokens)

    # Video room ------------------------------------------------------

    def check_video_open(self):
        "Refuse (409) unless the patient is called or in consultation."
        if self.state in FINISHED_STATES:
            raise TokenStateError(gettext('sehat_opd_video.msg_video_over'))
        if self.state not in OPEN_STATES:
            raise TokenStateError(
                gettext('sehat_opd_video.msg_video_not_called'))
        if self.date < self.opd.today():
            raise TokenStateError(
                gettext('sehat_opd_video.msg_video_day_over'))

    def check_video_doctor(self, healthprof):
        "Refuse (403) anyone but the doctor the token was called by."
        if not healthprof or self.healthprof != healthprof:
            raise Forbidden(gettext('sehat_opd_video.msg_video_not_yours'))

    def ensure_video_room(self):
        """The token's room, created here for tokens issued before the
        module was activated (under a row lock, so both sides get one)."""
        if self.video_room:
            return self.video_room
        table = self.__table__()
        cursor = Transaction().connection.cursor()
        lock_rows(cursor, self._table, [self.id])
        cursor.execute(*table.select(
                table.video_room, where=table.id == self.id))
        room, = cursor.fetchone()
        if not room:
            room = jitsi.new_room_name()
            cursor.execute(*table.update(
                    [table.video_room], [room], where=table.id == self.id))
        return room

    def video_day_end(self):
        "The end of the token's day (naive UTC), when it expires anyway."
        midnight = dt.datetime.combine(
            self.date + dt.timedelta(days=1), dt.time())
        return to_utc(midnight, self.opd.timezone)

    def video_expiry(self, side, now, lifetime):
        """When a participant's token must expire (epoch seconds).

        Never after the token's day; for the patient, never much after the
        OPD's consultation time limit counted from the start (or from now
        before the start), with a grace to come back after a drop.
        """
        limits = [jitsi.timestamp(self.video_day_end())]
        if side == 'patient':
            start = self.started_at or now
            end = start + dt.timedelta(
                minutes=self.opd.consultation_limit or 0)
            limits.append(jitsi.timestamp(max(end, now + REJOIN_GRACE)))
        return jitsi.expiry(jitsi.timestamp(now), lifetime, *limits)

    def video_user(self, side, healthprof=None):
        "Who the participant is, as Jitsi shows it (context.user)."
        if side == 'doctor':
            user = healthprof.party.internal_user
            return {
                'id': 'doctor-%s' % healthprof.id,
                'name': healthprof.party.rec_name,
                'email': (user.email if user else '') or '',
                'avatar': '',
                }
        # No e-mail or other contact details of the patient go to the
        # video service: the name is all the doctor needs to see.
        return {
            'id': 'patient-%s' % self.patient.id,
            'name': self.patient.party.name,
            'email': '',
            'avatar': '',
            }

    def video_join(self, side, healthprof=None, language='en'):
        """What one side needs to enter the room: {domain, room, jwt, ...}.

        Only while the patient is called or in consultation, only for the
        token's patient (the route checks the session) or its doctor. A
        patient who joins without having pressed Call Now answers by
        joining. Each call mints a new token: this is also how a dropped
        participant rejoins the same room.
        """
        settings = video_settings()
        if settings.problems():
            raise VideoUnavailable(
                gettext('sehat_opd_video.msg_video_unavailable'))
        self.check_video_open()
        if side == 'doctor':
            self.check_video_doctor(healthprof)
        elif self.state == 'called' and not self.answered_at:
            self.answer()
        room = self.ensure_video_room()
        now = dt.datetime.now()
        expires = self.video_expiry(side, now, settings.token_lifetime)
        if expires - jitsi.timestamp(now) < MIN_TOKEN_SECONDS:
            raise TokenStateError(
                gettext('sehat_opd_video.msg_video_day_over'))
        user = self.video_user(side, healthprof)
        moderator = side == 'doctor'
        return {
            'domain': settings.domain,
            'room': settings.embed_room(room),
            'jwt': jitsi.mint(settings, room, user, moderator,
                jitsi.timestamp(now), expires),
            'script': settings.script_url,
            'expires': dt.datetime.utcfromtimestamp(expires).replace(
                tzinfo=dt.timezone.utc).isoformat(),
            'options': dict(jitsi.iframe_options(settings, room, user['name'],
                    user['email'], language, moderator),
                noSSL=settings.scheme == 'http'),
            }

    def video_in(self, side):
        "Whether `side` is in the room (joined and not left since)."
        joined = getattr(self, 'video_%s_joined' % side)
        left = getattr(self, 'video_%s_left' % side)
        return bool(joined and (not left or left < joined))

    def video_event(self, side, event):
        """A conference event of one side's page: 'joined', 'left' or
        'ready_to_close' (the participant hung up).

        When the patient and the doctor are both in, the consultation
        starts. The row is locked: two pages joining at the same moment
        must not both miss each other.
        """
        if event not in EVENTS:
            raise InvalidInput(gettext(
                    'sehat_opd_video.msg_video_event_unknown',
                    event=str(event)[:40]), field='event')
        pool = Pool()
        Live = pool.get('sehat.opd.live')
        cursor = Transaction().connection.cursor()
        lock_rows(cursor, self._table, [self.id])
        token = self.__class__(self.id)
        token.check_video_open()
        now = dt.datetime.now()
        if event == 'joined':
            setattr(token, 'video_%s_joined' % side, now)
        else:
            setattr(token, 'video_%s_left' % side, now)
        token.save()
        if (token.state == 'called' and token.video_in('patient')
                and token.video_in('doctor')):
            if not token.answered_at:
                token.answered_at = now
                token.save()
            self.__class__.start([token])
        Live.publish_token(token.id, 'video')
        return self.__class__(token.id).video_status()

    def video_status(self):
        "What both consultation pages show of the consultation."
        return {
            'id': self.id,
            'number': self.number,
            'state': self.state,
            'answered': bool(self.answered_at),
            'started': bool(self.started_at),
            'patient_in': self.video_in('patient'),
            'doctor_in': self.video_in('doctor'),
            'over': self.state in FINISHED_STATES
            or self.date < self.opd.today(),
            }

