"""Tests of sehat_opd_video: Tryton's checks, the pure Jitsi helpers (tokens
decoded with pyjwt in both modes, room names) and the video workflow."""
import datetime as dt
import os
import tempfile
import unittest
from unittest import mock

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from trytond.modules.sehat_opd.tests.tools import (
    create_doctor, create_opd, create_patient, with_sehat)
from trytond.modules.sehat_opd_video import jitsi
from trytond.tests.test_tryton import ModuleTestCase

SECRET = 'test-jitsi-secret-with-32-bytes!!'
VIDEO_ENV = {
    'TRYTOND_SEHAT_OPD_VIDEO__MODE': 'jwt',
    'TRYTOND_SEHAT_OPD_VIDEO__DOMAIN': 'meet.example.in',
    'TRYTOND_SEHAT_OPD_VIDEO__APP_ID': 'sehat_opd',
    'TRYTOND_SEHAT_OPD_VIDEO__APP_SECRET': SECRET,
    'TRYTOND_SEHAT_OPD_VIDEO__TOKEN_LIFETIME': '3600',
    }
NOW = 1_750_000_000


def rsa_key():
    "A fresh RSA key pair: (private PEM, public PEM)."
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode('ascii')
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode('ascii')
    return private, public


class JitsiTestCase(unittest.TestCase):
    "Room names, settings and participant tokens (no database)"

    user = {'id': 'patient-7', 'name': 'Sunita Devi', 'email': None,
        'avatar': ''}

    def settings(self, **values):
        base = dict(mode='jwt', domain='meet.example.in', app_id='sehat_opd',
            app_secret=SECRET)
        base.update(values)
        return jitsi.Settings(**base)

    def test_room_names_unique_and_unguessable(self):
        "Room names: 160 random bits, lower case, unique"
        rooms = {jitsi.new_room_name() for _ in range(2000)}
        self.assertEqual(len(rooms), 2000)
        for room in rooms:
            self.assertTrue(jitsi.is_room_name(room), room)
            self.assertEqual(room, room.lower())
            body = room[len(jitsi.ROOM_PREFIX):]
            self.assertRegex(body, r'^[a-z2-7]{32}$')
        # 32 base-32 characters carry 5 bits each
        self.assertGreaterEqual(32 * 5, 128)
        # every character position varies (no fixed or derived part)
        for position in range(len(jitsi.ROOM_PREFIX), len(room)):
            self.assertGreater(len({r[position] for r in rooms}), 20)

    def test_room_name_only_from_randomness(self):
        "The room name is the random bytes, nothing else"
        fixed = jitsi.new_room_name(lambda n: b'\x00' * n)
        self.assertEqual(fixed, 'sehat-' + 'a' * 32)
        self.assertNotEqual(
            jitsi.new_room_name(lambda n: b'\x01' * n), fixed)

    def test_jwt_mode_claims_and_signature(self):
        "Self-hosted: HS256 with the app secret, every claim checked"
        settings = self.settings()
        room = jitsi.new_room_name()
        token = jitsi.mint(settings, room, self.user, False, NOW, NOW + 600)
        self.assertEqual(jwt.get_unverified_header(token),
            {'alg': 'HS256', 'typ': 'JWT'})
        claims = jwt.decode(token, SECRET, algorithms=['HS256'],
            audience='jitsi', issuer='sehat_opd',
            options={'verify_exp': False, 'verify_nbf': False,
                'verify_iat': False})
        self.assertEqual(claims['sub'], 'meet.jitsi')
        self.assertEqual(claims['room'], room)
        self.assertEqual(claims['iat'], NOW)
        self.assertEqual(claims['nbf'], NOW - jitsi.CLOCK_SKEW)
        self.assertEqual(claims['exp'], NOW + 600)
        self.assertEqual(claims['context']['user'], {
                'id': 'patient-7', 'name': 'Sunita Devi', 'email': '',
                'avatar': '', 'affiliation': 'member', 'moderator': 'false'})
        for value in claims['context']['user'].values():
            self.assertIsInstance(value, str)
        with self.assertRaises(jwt.InvalidSignatureError):
            jwt.decode(token, 'another-secret-of-32-bytes-length',
                algorithms=['HS256'], audience='jitsi',
                options={'verify_exp': False})

    def test_jwt_mode_doctor_is_owner(self):
        "Self-hosted: the doctor's token makes them the room's owner"
        settings = self.settings(audience='sehat', subject='*')
        doctor = {'id': 'doctor-3', 'name': 'Dr Sharma',
            'email': 'sharma@example.in'}
        token = jitsi.mint(settings, jitsi.new_room_name(), doctor, True,
            NOW, NOW + 60)
        claims = jwt.decode(token, SECRET, algorithms=['HS256'],
            audience='sehat', options={'verify_exp': False,
                'verify_nbf': False, 'verify_iat': False})
        self.assertEqual(claims['sub'], '*')
        self.assertEqual(claims['context']['user']['affiliation'], 'owner')
        self.assertEqual(claims['context']['user']['moderator'], 'true')
        self.assertEqual(claims['context']['user']['email'],
            'sharma@example.in')

    def test_jaas_mode_claims_and_signature(self):
        "JaaS: RS256 with kid, iss chat, aud jitsi, sub AppID"
        private, public = rsa_key()
        app_id = 'vpaas-magic-cookie-0123456789abcdef'
        settings = self.settings(mode='jaas', domain='8x8.vc', app_id=app_id,
            app_secret='', jaas_kid=app_id + '/4f4910',
            jaas_private_key=private)
        self.assertEqual(settings.problems(), [])
        room = jitsi.new_room_name()
        for moderator, flag in [(False, 'false'), (True, 'true')]:
            token = jitsi.mint(settings, room, self.user, moderator,
                NOW, NOW + 300)
            self.assertEqual(jwt.get_unverified_header(token), {
                    'alg': 'RS256', 'kid': app_id + '/4f4910',
                    'typ': 'JWT'})
            claims = jwt.decode(token, public, algorithms=['RS256'],
                audience='jitsi', issuer='chat',
                options={'verify_exp': False, 'verify_nbf': False,
                    'verify_iat': False})
            self.assertEqual(claims['sub'], app_id)
            self.assertEqual(claims['room'], room)
            self.assertEqual((claims['nbf'], claims['iat'], claims['exp']),
                (NOW - jitsi.CLOCK_SKEW, NOW, NOW + 300))
            user = claims['context']['user']
            self.assertEqual(user['moderator'], flag)
            self.assertNotIn('affiliation', user)
            self.assertEqual({k: user[k] for k in ('id', 'name', 'email',
                        'avatar')}, {'id': 'patient-7',
                    'name': 'Sunita Devi', 'email': '', 'avatar': ''})
            features = claims['context']['features']
            self.assertEqual(set(features.values()), {'false'})
            self.assertIn('recording', features)
        other_private, other_public = rsa_key()
        with self.assertRaises(jwt.InvalidSignatureError):
            jwt.decode(token, other_public, algorithms=['RS256'],
                audience='jitsi', options={'verify_exp': False})
        self.assertEqual(settings.embed_room(room), '%s/%s' % (app_id, room))
        self.assertEqual(settings.script_url,
            'https://8x8.vc/%s/external_api.js' % app_id)

    def test_jwt_mode_embed_and_script(self):
        settings = self.settings(scheme='http', domain='127.0.0.1:8443')
        self.assertEqual(settings.embed_room('sehat-abc'), 'sehat-abc')
        self.assertEqual(settings.script_url,
            'http://127.0.0.1:8443/external_api.js')
        self.assertEqual(settings.origin, 'http://127.0.0.1:8443')

    def test_token_refused_for_bad_room(self):
        with self.assertRaises(ValueError):
            jitsi.claims(self.settings(), 'Room With Spaces', self.user,
                False, NOW, NOW + 60)

    def test_expiry(self):
        "A token expires after its lifetime or at the first limit"
        self.assertEqual(jitsi.expiry(NOW, 3600), NOW + 3600)
        self.assertEqual(jitsi.expiry(NOW, 3600, NOW + 100, None, NOW + 50),
            NOW + 50)
        self.assertEqual(jitsi.expiry(NOW, 60, NOW + 100), NOW + 60)

    def test_load_settings(self):
        "Settings come from the getter; missing ones are named"
        values = {'mode': 'JWT', 'domain': ' meet.example.in ',
            'app_id': 'sehat_opd', 'app_secret': SECRET,
            'token_lifetime': '900', 'resolution': '999'}
        settings = jitsi.load_settings(
            lambda section, option, default=None: values.get(
                option, default))
        self.assertEqual(settings.problems(), [])
        self.assertEqual(settings.mode, 'jwt')
        self.assertEqual(settings.domain, 'meet.example.in')
        self.assertEqual(settings.token_lifetime, 900)
        self.assertEqual(settings.resolution, 360)
        self.assertEqual(settings.audience, 'jitsi')
        self.assertEqual(settings.subject, 'meet.jitsi')
        empty = jitsi.load_settings(lambda s, o, default=None: default)
        self.assertEqual(set(empty.problems()),
            {'domain', 'app_id', 'app_secret'})

    def test_load_jaas_key_file(self):
        private, _ = rsa_key()
        with tempfile.NamedTemporaryFile('w', suffix='.pem') as key_file:
            key_file.write(private)
            key_file.flush()
            values = {'mode': 'jaas', 'domain': '8x8.vc',
                'app_id': 'vpaas-magic-cookie-1', 'jaas_kid': 'k/1',
                'jaas_private_key_file': key_file.name}
            settings = jitsi.load_settings(
                lambda s, option, default=None: values.get(option, default))
            self.assertEqual(settings.problems(), [])
        values['jaas_private_key_file'] = '/nonexistent/key.pem'
        settings = jitsi.load_settings(
            lambda s, option, default=None: values.get(option, default))
        self.assertEqual(settings.problems(), ['jaas_private_key_file'])

    def test_domain_cannot_inject(self):
        "A domain that would break the CSP or the URL is refused"
        for domain in ['evil.com; script-src *', 'meet.example.in/x',
                'https://meet.example.in', "meet'", '']:
            self.assertIn('domain', self.settings(domain=domain).problems(),
                domain)
        self.assertEqual(self.settings(domain='meet.example.in:8443')
            .problems(), [])

    def test_iframe_options_low_bandwidth(self):
        "The IFrame API starts at 360p, without pre-join, name read-only"
        options = jitsi.iframe_options(self.settings(), 'sehat-abcdefgh'
            'ijklmnop', 'Sunita Devi', language='hi')
        config = options['configOverwrite']
        self.assertEqual(options['roomName'], 'sehat-abcdefghijklmnop')
        self.assertEqual(options['userInfo']['displayName'], 'Sunita Devi')
        self.assertFalse(config['prejoinConfig']['enabled'])
        self.assertFalse(config['prejoinPageEnabled'])
        self.assertTrue(config['readOnlyName'])
        self.assertEqual(config['resolution'], 360)
        self.assertEqual(config['constraints']['video']['height']['max'],
            360)
        self.assertEqual(options['lang'], 'hi')
        self.assertNotIn('desktop', config['toolbarButtons'])


class VideoTestCase(ModuleTestCase):
    "Test SeHAT OPD video module"
    module = 'sehat_opd_video'

    def setUp(self):
        super().setUp()
        patcher = mock.patch.dict(os.environ, VIDEO_ENV)
        patcher.start()
        self.addCleanup(patcher.stop)

    def called_token(self, env, mobile='9800000900', name='Asha Rani'):
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'VID%s' % mobile[-3:])
        doctor = create_doctor(env, 'dr.v%s' % mobile[-3:], [opd])
        token = Token.issue(create_patient(env, mobile, name), opd, "Cough")
        Presence.of(doctor).go_online(opd)
        token = Token(token.id)
        self.assertEqual(token.state, 'called')
        return token, doctor

    @with_sehat
    def test_room_per_token(self, env):
        "Each token has its own room, with nothing of the patient in it"
        Token = env.pool.get('sehat.opd.token')
        opd = create_opd(env, 'GEN')
        tokens = [Token.issue(create_patient(env, '98000009%02d' % i,
                    'Ravi Kumar'), opd, "Fever") for i in range(5)]
        rooms = [t.video_room for t in tokens]
        self.assertEqual(len(set(rooms)), 5)
        for token, room in zip(tokens, rooms):
            self.assertTrue(jitsi.is_room_name(room))
            patient = token.patient
            for value in [patient.patient_code, patient.portal_mobile[-10:],
                    'ravi', 'kumar']:
                self.assertNotIn(value.lower().replace('-', ''),
                    room.replace('-', ''))

    @with_sehat
    def test_answer_waits_for_both_in_the_room(self, env):
        "Call Now answered: the consultation starts when both are in"
        Token = env.pool.get('sehat.opd.token')
        token, doctor = self.called_token(env)
        token.answer()
        token = Token(token.id)
        self.assertEqual(token.state, 'called')
        self.assertTrue(token.answered_at)
        token.answer()  # answering twice changes nothing
        self.assertEqual(token.consultation_url(),
            '/%s/opd/consult' % env_database())
        status = token.video_event('patient', 'joined')
        self.assertEqual((status['state'], status['patient_in'],
                status['doctor_in']), ('called', True, False))
        status = Token(token.id).video_event('doctor', 'joined')
        self.assertEqual(status['state'], 'in_consultation')
        self.assertTrue(Token(token.id).started_at)
        status = Token(token.id).video_event('patient', 'left')
        self.assertEqual((status['state'], status['patient_in']),
            ('in_consultation', False))
        status = Token(token.id).video_event('patient', 'joined')
        self.assertTrue(status['patient_in'])
        from trytond.modules.sehat_opd.exceptions import InvalidInput
        with self.assertRaises(InvalidInput):
            Token(token.id).video_event('patient', 'dance')

    @with_sehat
    def test_new_call_starts_with_an_empty_room(self, env):
        "Who was in the room before a requeue does not count any more"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        token, doctor = self.called_token(env)
        token.video_event('patient', 'joined')
        self.assertTrue(Token(token.id).video_in('patient'))
        # back to the queue; the doctor, free again, is given it at once
        Token.requeue([Token(token.id)])
        token = Token(token.id)
        self.assertEqual(token.state, 'called')
        self.assertEqual(Presence.of(doctor).current_token, token)
        self.assertFalse(token.video_in('patient'))
        status = token.video_event('doctor', 'joined')
        self.assertEqual(status['state'], 'called')

    @with_sehat
    def test_answer_without_video_settings_starts(self, env):
        "Without Jitsi settings, Call Now starts the consultation at once"
        Token = env.pool.get('sehat.opd.token')
        token, _ = self.called_token(env)
        with mock.patch.dict(os.environ,
                {'TRYTOND_SEHAT_OPD_VIDEO__DOMAIN': ''}):
            token.answer()
        self.assertEqual(Token(token.id).state, 'in_consultation')

    @with_sehat
    def test_join_tokens(self, env):
        "Patient and doctor get tokens for the same room; others do not"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import (
            Forbidden, TokenStateError)
        token, doctor = self.called_token(env)
        patient_side = token.video_join('patient')
        token = Token(token.id)
        self.assertTrue(token.answered_at, "joining answers Call Now")
        doctor_side = token.video_join('doctor', doctor)
        self.assertEqual(patient_side['room'], token.video_room)
        self.assertEqual(doctor_side['room'], token.video_room)
        self.assertEqual(patient_side['domain'], 'meet.example.in')
        claims = {}
        for side, answer in [('patient', patient_side),
                ('doctor', doctor_side)]:
            claims[side] = jwt.decode(answer['jwt'], SECRET,
                algorithms=['HS256'], audience='jitsi', issuer='sehat_opd')
            self.assertEqual(claims[side]['room'], token.video_room)
        self.assertEqual(
            claims['patient']['context']['user']['affiliation'], 'member')
        self.assertEqual(claims['patient']['context']['user']['name'],
            'Asha Rani')
        self.assertEqual(
            claims['doctor']['context']['user']['affiliation'], 'owner')
        other = create_doctor(env, 'dr.other', [token.opd])
        with self.assertRaises(Forbidden):
            token.video_join('doctor', other)
        Token(token.id).video_event('patient', 'joined')
        Token(token.id).video_event('doctor', 'joined')
        Token.complete([Token(token.id)])
        self.assertEqual(Token(token.id).state, 'completed')
        with self.assertRaises(TokenStateError):
            Token(token.id).video_join('patient')
        with self.assertRaises(TokenStateError):
            Token(token.id).video_join('doctor', doctor)

    @with_sehat
    def test_waiting_token_gets_no_room(self, env):
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import TokenStateError
        opd = create_opd(env, 'GEN')
        token = Token.issue(create_patient(env, '9800000950'), opd, "a")
        with self.assertRaises(TokenStateError):
            token.video_join('patient')

    @with_sehat
    def test_patient_token_expires_with_the_consultation(self, env):
        "The patient's token never outlives the day or the time limit"
        Token = env.pool.get('sehat.opd.token')
        token, _ = self.called_token(env)
        token.opd.consultation_limit = 30
        token.opd.save()
        now = dt.datetime.now()
        started = now - dt.timedelta(minutes=25)
        Token.write([token], {'started_at': started})
        token = Token(token.id)
        expires = token.video_expiry('patient', now, 3600)
        self.assertEqual(expires, jitsi.timestamp(
                max(started + dt.timedelta(minutes=30),
                    now + dt.timedelta(minutes=10))))
        self.assertLessEqual(expires,
            jitsi.timestamp(token.video_day_end()))
        doctor_expires = token.video_expiry('doctor', now, 3600)
        self.assertEqual(doctor_expires, min(
                jitsi.timestamp(now) + 3600,
                jitsi.timestamp(token.video_day_end())))
        # the day's end is the OPD's local midnight
        day_end = token.video_day_end()
        local = token.opd.local_now(day_end)
        self.assertEqual((local.hour, local.minute), (0, 0))
        self.assertEqual(local.date(), token.date + dt.timedelta(days=1))

    @with_sehat
    def test_start_without_video(self, env):
        "A consultation answered can go on without video"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import TokenStateError
        token, _ = self.called_token(env)
        with self.assertRaises(TokenStateError):
            Token.start_without_video([token])
        token.answer()
        Token.start_without_video([Token(token.id)])
        self.assertEqual(Token(token.id).state, 'in_consultation')

    @with_sehat
    def test_open_console_leads_to_consultation(self, env):
        "The back office button opens the consultation page when active"
        Token = env.pool.get('sehat.opd.token')
        opd = create_opd(env, 'GEN')
        waiting = Token.issue(create_patient(env, '9800000960'), opd, "a")
        action = Token.open_console([waiting])
        self.assertTrue(action['url'].endswith(
                '/opd/doctor/?token=%s' % waiting.id))
        token, _ = self.called_token(env)
        action = Token.open_console([token])
        self.assertEqual(action['url'], '/%s/opd/doctor/consult/%s' % (
                env_database(), token.id))
        self.assertEqual(token.backoffice_url(),
            '/#%s/model/sehat.opd.token/%s' % (env_database(), token.id))

    @with_sehat
    def test_gateway_settings(self, env):
        "Administrators see the video settings, the secret flagged"
        Configuration = env.pool.get('sehat.opd.configuration')
        settings = {(s, o): (v, secret)
            for s, o, v, secret in Configuration.gateway_settings()}
        self.assertEqual(settings['sehat_opd_video', 'domain'],
            ('meet.example.in', False))
        self.assertEqual(settings['sehat_opd_video', 'app_secret'],
            (SECRET, True))
        self.assertEqual(settings['sehat_opd_video', 'audience'],
            ('jitsi', False))
        self.assertIn(('sehat_opd', 'mode'), settings)


def env_database():
    from trytond.transaction import Transaction
    return Transaction().database.name


del ModuleTestCase
