"""The queue engine: every token transition, the refusals of issuing,
missed calls, the cron jobs, presence and automatic assignment."""
import datetime as dt
import unittest

from trytond.tests.test_tryton import activate_module

from .tools import (
    create_doctor, create_opd, create_patient, set_opd_open, with_sehat)


def _mobiles(prefix):
    "Distinct 10-digit mobiles for one test."
    counter = iter(range(100))
    return lambda: '98%s%06d' % (prefix, next(counter))


class QueueTestCase(unittest.TestCase):
    "Tokens, assignment and the waiting room"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        activate_module('sehat_opd')

    @staticmethod
    def _pass_deadline(Token, token):
        Token.write([Token(token.id)], {
                'call_deadline': dt.datetime.now() - dt.timedelta(seconds=1)})

    @staticmethod
    def _reload(Token, *tokens):
        return [Token(t.id) for t in tokens]

    # Issuing -------------------------------------------------------------

    @with_sehat
    def test_issue_creates_appointment_and_queue(self, env):
        "A token is numbered in the day's queue and books an appointment"
        Token = env.pool.get('sehat.opd.token')
        Queue = env.pool.get('sehat.opd.queue')
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('10')
        token = Token.issue(create_patient(env, mobile()), opd, " Fever ")
        queue, = Queue.search([('opd', '=', opd.id)])
        self.assertEqual(token.queue, queue)
        self.assertEqual(token.date, opd.today())
        self.assertEqual(token.complaint, "Fever")
        self.assertEqual(token.state, 'waiting')
        self.assertEqual(queue.last_number, 1)
        self.assertEqual(token.appointment.state, 'confirmed')
        self.assertEqual(token.appointment.comments, "Fever")
        self.assertEqual(token.appointment.institution, opd.institution)
        self.assertGreater(queue.version, 0)

    @with_sehat
    def test_waiting_cap(self, env):
        "The waiting room cap refuses tokens while it is full, not after"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import QueueFull
        opd = create_opd(env, 'GEN', waiting_cap=2)
        mobile = _mobiles('11')
        first = Token.issue(create_patient(env, mobile()), opd, "a")
        Token.issue(create_patient(env, mobile()), opd, "b")
        late = create_patient(env, mobile())
        with self.assertRaises(QueueFull) as cm:
            Token.issue(late, opd, "c")
        self.assertEqual(cm.exception.field, 'opd')
        Token.cancel([first])
        self.assertEqual(Token.issue(late, opd, "c").number, 3)

    @with_sehat
    def test_daily_cap_counts_cancelled(self, env):
        "The day's cap counts every number issued, cancelled ones too"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import QueueFull
        opd = create_opd(env, 'GEN', daily_token_cap=1)
        mobile = _mobiles('12')
        token = Token.issue(create_patient(env, mobile()), opd, "a")
        Token.cancel([token])
        with self.assertRaises(QueueFull):
            Token.issue(create_patient(env, mobile()), opd, "b")

    @with_sehat
    def test_inactive_opd_refused(self, env):
        "An OPD taken out of service issues no token"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import OPDClosed
        opd = create_opd(env, 'GEN')
        opd.active = False
        opd.save()
        with self.assertRaises(OPDClosed):
            Token.issue(create_patient(env, _mobiles('13')()), opd, "a")

    @with_sehat
    def test_refusal_writes_nothing(self, env):
        "A refused request leaves no token and no appointment behind"
        Token = env.pool.get('sehat.opd.token')
        Appointment = env.pool.get('gnuhealth.appointment')
        from trytond.modules.sehat_opd.exceptions import UploadError
        opd = create_opd(env, 'GEN')
        patient = create_patient(env, _mobiles('14')())
        appointments = Appointment.search_count([])
        with self.assertRaises(UploadError):
            Token.issue(patient, opd, "a",
                files=[('virus.pdf', b'MZ\x90\x00' + b'\x00' * 64)])
        self.assertEqual(Token.search_count([]), 0)
        self.assertEqual(Appointment.search_count([]), appointments)

    @with_sehat
    def test_closed_message_names_opening(self, env):
        "The refusal of a closed OPD names the next opening"
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import OPDClosed
        opd = create_opd(env, 'GEN', always=False)
        set_opd_open(opd, False)
        opening = opd.next_opening()
        with self.assertRaises(OPDClosed) as cm:
            Token.issue(create_patient(env, _mobiles('15')()), opd, "a")
        self.assertIn(opening.strftime('%H:%M'), cm.exception.message)
        self.assertIn(opening.strftime('%d %b %Y'), cm.exception.message)

    # Transitions ---------------------------------------------------------

    @with_sehat
    def test_full_consultation(self, env):
        "waiting -> called -> in_consultation -> completed"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.full', [opd])
        token = Token.issue(create_patient(env, _mobiles('20')()), opd, "a")
        self.assertEqual(token.state, 'waiting')
        Presence.of(doctor).go_online(opd)
        token, = self._reload(Token, token)
        self.assertEqual(token.state, 'called')
        self.assertEqual(token.healthprof, doctor)
        self.assertIsNotNone(token.call_deadline)
        self.assertAlmostEqual(
            (token.call_deadline - token.called_at).total_seconds(),
            opd.call_window, delta=1)
        self.assertIsNone(token.consultation_url())
        self.assertIsNone(token.doctor_consultation_url())
        token.answer()
        token, = self._reload(Token, token)
        self.assertEqual(token.state, 'in_consultation')
        self.assertIsNotNone(token.answered_at)
        self.assertIsNotNone(token.started_at)
        self.assertTrue(Presence.of(doctor).current_token)
        Token.complete([token])
        token, = self._reload(Token, token)
        self.assertEqual(token.state, 'completed')
        self.assertIsNotNone(token.ended_at)
        self.assertEqual(token.appointment.state, 'done')
        self.assertFalse(Presence.of(doctor).current_token)

    @with_sehat
    def test_cancel_waiting_and_called(self, env):
        "A patient may cancel while waiting or called; a called one frees "
        "the doctor, who gets the next patient"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.cancel', [opd])
        mobile = _mobiles('21')
        first, second, third = [
            Token.issue(create_patient(env, mobile()), opd, "x")
            for _ in range(3)]
        Token.cancel([third])
        self.assertEqual(Token(third.id).state, 'cancelled')
        self.assertEqual(Token(third.id).appointment.state, 'user_cancelled')
        Presence.of(doctor).go_online(opd)
        self.assertEqual(Token(first.id).state, 'called')
        Token.cancel([Token(first.id)])
        first, second = self._reload(Token, first, second)
        self.assertEqual(first.state, 'cancelled')
        self.assertEqual(second.state, 'called')
        self.assertEqual(Presence.of(doctor).current_token, second)

    @with_sehat
    def test_refused_transitions(self, env):
        "No move outside the workflow: answering a waiting token fails, "
        "cancelling a consultation or completing a waiting token does nothing"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        from trytond.modules.sehat_opd.exceptions import TokenStateError
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('22')
        waiting = Token.issue(create_patient(env, mobile()), opd, "a")
        with self.assertRaises(TokenStateError):
            waiting.answer()
        Token.complete([waiting])
        self.assertEqual(Token(waiting.id).state, 'waiting')
        doctor = create_doctor(env, 'dr.refuse', [opd])
        Presence.of(doctor).go_online(opd)
        token = Token(waiting.id)
        token.answer()
        Token.cancel([Token(token.id)])
        self.assertEqual(Token(token.id).state, 'in_consultation')
        Token.complete([Token(token.id)])
        Token.expire([Token(token.id)])
        Token.cancel([Token(token.id)])
        self.assertEqual(Token(token.id).state, 'completed')

    @with_sehat
    def test_answer_after_window_refused(self, env):
        "Call Now cannot be answered once its window has passed"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        from trytond.modules.sehat_opd.exceptions import TokenStateError
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.late', [opd])
        token = Token.issue(create_patient(env, _mobiles('23')()), opd, "a")
        Presence.of(doctor).go_online(opd)
        self._pass_deadline(Token, token)
        with self.assertRaises(TokenStateError):
            Token(token.id).answer()

    @with_sehat
    def test_dropped_consultation_requeued_at_head(self, env):
        "in_consultation -> waiting: a dropped call keeps the token"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.drop', [opd])
        mobile = _mobiles('24')
        token = Token.issue(create_patient(env, mobile()), opd, "a")
        Presence.of(doctor).go_online(opd)
        Token(token.id).answer()
        Presence.of(doctor).go_offline()
        other = Token.issue(create_patient(env, mobile()), opd, "b")
        Token.requeue([Token(token.id)], front=True)
        token = Token(token.id)
        self.assertEqual(token.state, 'waiting')
        self.assertIsNone(token.healthprof)
        self.assertEqual(token.missed_calls, 0)
        self.assertEqual(Token.status(token.patient.id)['position'], 1)
        self.assertEqual(Token.status(other.patient.id)['position'], 2)
        self.assertFalse(Presence.of(doctor).current_token)

    # Missed calls --------------------------------------------------------

    @with_sehat
    def test_missed_call_alone_is_not_recalled_at_once(self, env):
        "A patient alone in line who missed the call is back in line for "
        "a while; the doctor may still call them, and the heartbeat does "
        "once the pause is over"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.pause', [opd])
        token = Token.issue(create_patient(env, _mobiles('30')()), opd, "a")
        presence = Presence.of(doctor)
        presence.go_online(opd)
        self._pass_deadline(Token, token)
        self.assertEqual(Token.requeue_missed(), [Token(token.id)])
        token = Token(token.id)
        self.assertEqual(token.state, 'waiting')
        self.assertEqual(token.missed_calls, 1)
        status = Token.status(token.patient.id)
        self.assertEqual((status['position'], status['waiting']), (1, 1))
        self.assertFalse(Presence.of(doctor).current_token)
        # a heartbeat within the pause does not call them
        Presence.of(doctor).heartbeat()
        self.assertEqual(Token(token.id).state, 'waiting')
        # after it, it does
        Token.write([token], {
                'recall_after': dt.datetime.now() - dt.timedelta(seconds=1)})
        Presence.of(doctor).heartbeat()
        self.assertEqual(Token(token.id).state, 'called')
        self.assertIsNone(Token(token.id).recall_after)

    @with_sehat
    def test_call_next_ignores_pause(self, env):
        "The doctor's own 'Call next patient' calls a paused patient"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.explicit', [opd])
        token = Token.issue(create_patient(env, _mobiles('31')()), opd, "a")
        Presence.of(doctor).go_online(opd)
        self._pass_deadline(Token, token)
        Token.requeue_missed()
        self.assertEqual(Token(token.id).state, 'waiting')
        called = Presence.of(doctor).call_next()
        self.assertEqual(called, Token(token.id))
        self.assertEqual(Token(token.id).state, 'called')

    @with_sehat
    def test_missed_call_goes_behind_others(self, env):
        "A missed call goes to the end of the line and the doctor gets the "
        "next patient"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.behind', [opd])
        mobile = _mobiles('32')
        late, second, third = [
            Token.issue(create_patient(env, mobile()), opd, "x")
            for _ in range(3)]
        Presence.of(doctor).go_online(opd)
        self._pass_deadline(Token, late)
        Token.requeue_missed(opd)
        late, second, third = self._reload(Token, late, second, third)
        self.assertEqual(second.state, 'called')
        self.assertEqual(Token.status(third.patient.id)['position'], 1)
        self.assertEqual(Token.status(late.patient.id)['position'], 2)

    @with_sehat
    def test_requeue_missed_of_one_token(self, env):
        "Settling one patient's missed call leaves the others' alone"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('33')
        first, second = [
            Token.issue(create_patient(env, mobile()), opd, "x")
            for _ in range(2)]
        for login in ['dr.one', 'dr.two']:
            Presence.of(create_doctor(env, login, [opd])).go_online(opd)
        self._pass_deadline(Token, first)
        self._pass_deadline(Token, second)
        self.assertEqual(
            Token.requeue_missed(token_ids=[first.id]), [Token(first.id)])
        self.assertEqual(Token(second.id).state, 'called')

    @with_sehat
    def test_three_misses_expire(self, env):
        "The third missed call expires the token and frees the doctor"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.three', [opd])
        token = Token.issue(create_patient(env, _mobiles('34')()), opd, "a")
        presence = Presence.of(doctor)
        presence.go_online(opd)
        for miss in range(1, 4):
            self.assertEqual(Token(token.id).state, 'called', miss)
            self._pass_deadline(Token, token)
            Token.requeue_missed()
            if miss < 3:
                self.assertEqual(Token(token.id).missed_calls, miss)
                Presence.of(doctor).call_next()
        token = Token(token.id)
        self.assertEqual(token.state, 'expired')
        self.assertEqual(token.missed_calls, 3)
        self.assertEqual(token.appointment.state, 'no_show')
        self.assertFalse(Presence.of(doctor).current_token)
        self.assertIsNone(Token.status(token.patient.id))

    @with_sehat
    def test_answered_call_is_not_missed(self, env):
        "A call answered in time is never requeued, even past the window"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.answered', [opd])
        token = Token.issue(create_patient(env, _mobiles('35')()), opd, "a")
        Presence.of(doctor).go_online(opd)
        # as the video module does: answered, not yet in the room
        Token.write([Token(token.id)], {'answered_at': dt.datetime.now()})
        self._pass_deadline(Token, token)
        self.assertEqual(Token.requeue_missed(), [])
        self.assertEqual(Token(token.id).state, 'called')

    # End of day ----------------------------------------------------------

    @with_sehat
    def test_end_of_day_expires_every_active_state(self, env):
        "At the end of the day waiting, called and in-consultation tokens "
        "expire, completed ones stay, doctors are freed"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('40')
        tokens = [Token.issue(create_patient(env, mobile()), opd, "x")
            for _ in range(4)]
        doctors = [create_doctor(env, 'dr.eod%s' % i, [opd])
            for i in range(3)]
        for doctor in doctors:
            Presence.of(doctor).go_online(opd)
        # 0 and 1 in consultation (0 then completed), 2 called, 3 waiting
        Token(tokens[0].id).answer()
        Token(tokens[1].id).answer()
        Token.complete([Token(tokens[0].id)])
        tokens = self._reload(Token, *tokens)
        self.assertEqual([t.state for t in tokens],
            ['completed', 'in_consultation', 'called', 'called'])
        Presence.of(doctors[0]).go_offline()
        Token.requeue([tokens[3]], front=True)
        yesterday = tokens[0].date - dt.timedelta(days=1)
        Token.write(list(tokens), {'date': yesterday})
        self.assertEqual(Token.status(tokens[3].patient.id)['state'],
            'expired')
        Token.cron_expire()
        self.assertEqual([t.state for t in self._reload(Token, *tokens)],
            ['completed', 'expired', 'expired', 'expired'])
        for doctor in doctors:
            self.assertFalse(Presence.of(doctor).current_token)

    @with_sehat
    def test_new_day_new_numbers(self, env):
        "Numbers start again at 1 each day; a stale token does not block "
        "a new one"
        Token = env.pool.get('sehat.opd.token')
        Queue = env.pool.get('sehat.opd.queue')
        opd = create_opd(env, 'GEN')
        patient = create_patient(env, _mobiles('41')())
        old = Token.issue(patient, opd, "a")
        queue = old.queue
        Queue.write([queue], {'date': queue.date - dt.timedelta(days=1)})
        Token.write([old], {'date': old.date - dt.timedelta(days=1)})
        new = Token.issue(patient, opd, "b")
        self.assertEqual(Token(old.id).state, 'expired')
        self.assertEqual(new.number, 1)
        self.assertNotEqual(new.queue, queue)

    # Presence and assignment ---------------------------------------------

    @with_sehat
    def test_one_token_per_doctor(self, env):
        "Two doctors online with three waiting: one patient each, the third "
        "waits; completing gives the freed doctor the third"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('50')
        tokens = [Token.issue(create_patient(env, mobile()), opd, "x")
            for _ in range(3)]
        first, second = [create_doctor(env, 'dr.each%s' % i, [opd])
            for i in range(2)]
        Presence.of(first).go_online(opd)
        Presence.of(second).go_online(opd)
        tokens = self._reload(Token, *tokens)
        self.assertEqual([t.state for t in tokens],
            ['called', 'called', 'waiting'])
        self.assertEqual({t.healthprof for t in tokens[:2]}, {first, second})
        status = Token.status(tokens[2].patient.id)
        self.assertEqual(status['doctors_online'], 2)
        self.assertEqual(status['eta_seconds'], opd.consultation_minutes * 60)
        self.assertTrue(all(d['busy'] for d in status['doctors']))
        Token(tokens[0].id).answer()
        Token.complete([Token(tokens[0].id)])
        third = Token(tokens[2].id)
        self.assertEqual(third.state, 'called')
        self.assertEqual(third.healthprof, tokens[0].healthprof)

    @with_sehat
    def test_new_token_goes_to_free_doctor(self, env):
        "A token issued while a doctor waits free is called at once"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        doctor = create_doctor(env, 'dr.free', [opd])
        Presence.of(doctor).go_online(opd)
        token = Token.issue(create_patient(env, _mobiles('51')()), opd, "a")
        self.assertEqual(Token(token.id).state, 'called')
        self.assertEqual(Token.status(token.patient.id)['doctor']['name'],
            'Dr dr.free')

    @with_sehat
    def test_presence_rules(self, env):
        "A doctor goes online only in their OPDs, calls only when online, "
        "free and with someone waiting"
        Presence = env.pool.get('sehat.opd.presence')
        Token = env.pool.get('sehat.opd.token')
        from trytond.modules.sehat_opd.exceptions import (
            Forbidden, TokenStateError)
        opd = create_opd(env, 'GEN')
        other = create_opd(env, 'MED')
        doctor = create_doctor(env, 'dr.rules', [opd])
        presence = Presence.of(doctor)
        with self.assertRaises(Forbidden):
            presence.go_online(other)
        with self.assertRaises(TokenStateError):
            presence.call_next()
        presence.go_online(opd)
        with self.assertRaises(TokenStateError):
            Presence.of(doctor).call_next()
        mobile = _mobiles('52')
        Token.issue(create_patient(env, mobile()), opd, "a")
        self.assertTrue(Presence.of(doctor).current_token)
        Token.issue(create_patient(env, mobile()), opd, "b")
        with self.assertRaises(TokenStateError):
            Presence.of(doctor).call_next()

    @with_sehat
    def test_offline_doctor_gets_nobody(self, env):
        "Offline or silent doctors are not given patients"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        quiet = create_doctor(env, 'dr.quiet', [opd])
        gone = create_doctor(env, 'dr.gone', [opd])
        Presence.of(quiet).go_online(opd)
        Presence.write([Presence.of(quiet)], {
                'last_heartbeat': dt.datetime.now() - dt.timedelta(hours=1)})
        Presence.of(gone).go_online(opd)
        Presence.of(gone).go_offline()
        token = Token.issue(create_patient(env, _mobiles('53')()), opd, "a")
        self.assertEqual(Token(token.id).state, 'waiting')
        self.assertEqual(Token.status(token.patient.id)['doctors_online'], 0)
        self.assertIsNone(Token.status(token.patient.id)['eta_seconds'])

    @with_sehat
    def test_stale_presence_keeps_consultation(self, env):
        "Dropping a silent doctor sends a called patient to the head of the "
        "line but leaves a consultation in progress alone"
        Token = env.pool.get('sehat.opd.token')
        Presence = env.pool.get('sehat.opd.presence')
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('54')
        consulting, called = [
            Token.issue(create_patient(env, mobile()), opd, "x")
            for _ in range(2)]
        first, second = [create_doctor(env, 'dr.stale%s' % i, [opd])
            for i in range(2)]
        Presence.of(first).go_online(opd)
        Token(consulting.id).answer()
        Presence.of(second).go_online(opd)
        self.assertEqual(Token(called.id).state, 'called')
        Presence.write([Presence.of(first), Presence.of(second)], {
                'last_heartbeat': dt.datetime.now() - dt.timedelta(hours=1)})
        dropped = Presence.drop_stale()
        self.assertEqual(len(dropped), 2)
        self.assertEqual(Token(consulting.id).state, 'in_consultation')
        self.assertEqual(Token(called.id).state, 'waiting')
        self.assertEqual(Token(called.id).missed_calls, 0)
        self.assertEqual(Token.status(called.patient.id)['position'], 1)

    @with_sehat
    def test_status_follows_queue_version(self, env):
        "The waiting-room status changes with the queue (cached snapshots "
        "are per version)"
        Token = env.pool.get('sehat.opd.token')
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('55')
        first = Token.issue(create_patient(env, mobile()), opd, "a")
        second = Token.issue(create_patient(env, mobile()), opd, "b")
        before = Token.status(second.patient.id)
        self.assertEqual((before['position'], before['waiting']), (2, 2))
        Token.cancel([first])
        after = Token.status(second.patient.id)
        self.assertGreater(after['version'], before['version'])
        self.assertEqual((after['position'], after['waiting']), (1, 1))

    @with_sehat
    def test_console_queue_lists_files(self, env):
        "The console's queue shows each patient's records"
        Token = env.pool.get('sehat.opd.token')
        from .test_module import _png
        opd = create_opd(env, 'GEN')
        mobile = _mobiles('56')
        with_file = Token.issue(create_patient(env, mobile()), opd, "a",
            files=[('scan.png', _png())])
        Token.issue(create_patient(env, mobile()), opd, "b")
        queue = Token.console_queue(opd)
        self.assertEqual([t['id'] for t in queue][0], with_file.id)
        self.assertEqual(len(queue[0]['files']), 1)
        self.assertEqual(queue[0]['files'][0]['type'], 'image/png')
        self.assertEqual(queue[1]['files'], [])
