#!/usr/bin/env python3
"""A day of OPD, compressed, under gunicorn on PostgreSQL.

    .venv/bin/python bench/load_day.py                 # 3-minute day, ~10 min
    .venv/bin/python bench/load_day.py --minutes 10 --patients 500 --doctors 12
    .venv/bin/python bench/load_day.py --minutes 1 --skip-capacity  # a try
    .venv/bin/python bench/load_day.py --skip-day --capacity-threads 32

1. Builds (or reuses) the database `sehat_load` with the demo data
   (bench/harness.py, as queue_bench.py does), then writes the day's people
   into it (tests/queue_data.py): `--opds` OPDs open round the clock,
   `--doctors` doctors shared among them, with back-office logins allowed
   to prescribe, the patients who come already registered (each with a
   session), and settings for one client address sending every OTP. The
   server texts through the fake SMS gateway of the tests on 127.0.0.1
   (sehat_opd_sms/tests/fake_gateway.py), from a thread as in production.
2. Starts trytond under gunicorn as docker/entrypoint.sh does: gthread,
   2 workers, `--threads` per worker for the day (128: each open waiting
   room holds one; the image's default is 32, see step 5), `--maxconn`.
3. The day (`--minutes`): patients arrive over its first 60 %; some
   (`--register`) register through the real OTP flow (the OTP read from
   the gateway, verified, POST /patients, OTP login, cookie session and
   CSRF token, the pages they load), the others use their sessions as an
   app would (Bearer). Each takes a token, long-polls GET
   /tokens/current/wait as waiting.js does, answers Call Now, joins the
   video room, chats, follows GET /tokens/current/consultation (as
   consult.js) until it is over; some fetch the prescription's PDF.
   Doctors go online, follow GET /doctor/wait (console.js) with
   heartbeats, open the patient, join, chat, then write the record and
   sign and issue the e-prescription through the back office's JSON-RPC
   (as tests/test_prescription_browser.py). A probe reads GET /health and
   GET /tokens/current (patients of a quiet OPD) all day. At closing the
   patients still waiting give up; the database is then checked: every
   token accounted for, numbers 1..n per OPD, every consultation
   completed with its prescription issued, every doctor offline.
4. The floor: GET /health and GET /tokens/current in turn from 8 busy
   clients (`--floor-seconds`): the same load on both, the ratio of their
   mean times is the ratio of their rates.
5. Capacity (`--capacity-threads`: a search per gunicorn thread count):
   the patients long-polling one OPD are stepped up (`--steps`) while the
   queue changes every `--event-interval` s (a token taken or cancelled:
   every waiting room wakes and reads its status) and probes read GET
   /tokens/current and GET /health `--probe-rate` times a second each; a
   step holds while the probes' p95 stays under 300 ms without errors.
Throughout, the gunicorn workers' memory (RSS), the CPU of the server,
of its PostgreSQL backends, of this client and of the whole machine, and
the server's connections are sampled every second (bench/load_measure.py).
Figures go to stdout and bench/results/load_day.json, the server's log to
bench/results/load_day-server.log (not kept in git).
"""
import argparse
import json
import os
import random
import secrets
import shlex
import sys
import threading
import time


from harness import BENCH, Gunicorn, build_database, env
import queue_data  # noqa: E402 - harness puts tests/ on the path
from conftest import (  # noqa: E402 - the e2e tests' gateway and values
    JITSI_APP_ID, JITSI_SECRET, FakeGateway, registration, sms_env)
from load_actors import (
    Day, Doctor, FlowError, Http, Probe, Recorder, Waiter, churn_queue,
    doctor_day, patient_day, percentile)
from load_measure import Sampler, ms, phase_report, print_table

DATABASE = 'sehat_load'
PASSWORD = 'load-day-Doctor-2026'
P95_LIMIT = 0.3
SERVER_LOG = BENCH / 'results' / 'load_day-server.log'


def server_env(gateway, options):
    """SMS to the fake gateway (sent from a thread), Jitsi JWTs, the pool,
    the server's log level."""
    values = sms_env(gateway)
    del values['TRYTOND_SEHAT_OPD_SMS__DISPATCH']  # production: a thread
    values.update({
            'TRYTOND_DATABASE__MAXCONN': str(options.maxconn),
            'TRYTOND_DATABASE__MINCONN': str(options.minconn),
            'TRYTOND_LOGGING_LEVEL': str(options.log_level),
            'TRYTOND_SEHAT_OPD_VIDEO__MODE': 'jwt',
            'TRYTOND_SEHAT_OPD_VIDEO__DOMAIN': 'meet.sehat.invalid',
            'TRYTOND_SEHAT_OPD_VIDEO__APP_ID': JITSI_APP_ID,
            'TRYTOND_SEHAT_OPD_VIDEO__APP_SECRET': JITSI_SECRET,
            'TRYTOND_SEHAT_OPD_VIDEO__AUDIENCE': 'jitsi',
            'TRYTOND_SEHAT_OPD_VIDEO__SUBJECT': 'meet.jitsi',
            })
    return values


# Fixtures ------------------------------------------------------------------

def settings():
    """Every OTP comes from 127.0.0.1 here: lift the per-address limit.
    The OPDs of earlier runs are closed (GET /opds lists every open OPD:
    the portal's list stays the demo's and this run's)."""
    from trytond.transaction import Transaction
    with queue_data.transaction(DATABASE) as pool:
        Configuration = pool.get('sehat.opd.configuration')
        OPD = pool.get('sehat.opd')
        earlier = OPD.search([('code', 'like', 'L_%')])
        if earlier:
            OPD.write(earlier, {'active': False})
    # the first write creates the singleton, which locks its table
    with Transaction().start(DATABASE, 0, _lock_tables=[
                Configuration._table]) as transaction:
        Configuration.write([Configuration(1)], {
                'otp_per_address_hour': 10000})
        transaction.commit()


def new_mobiles(count):
    "Fresh 10-digit mobiles for patients who register on the day."
    base = secrets.randbelow(10 ** 6)
    return ['+9196%02d%06d' % (os.getpid() % 100, (base + i) % 10 ** 6)
        for i in range(count)]


def patients_in_line(count, opd, tag):
    "`count` patients with sessions, each waiting in the OPD's queue."
    patients = []
    for start in range(0, count, 200):
        patients += queue_data.make_patients(
            DATABASE, min(200, count - start), tag)
    queue_data.waiting_tokens(DATABASE, [p['id'] for p in patients], opd)
    return patients


# Phases --------------------------------------------------------------------

def run_day(options, server, gateway, recorder, sampler, tag):
    opds = [queue_data.make_opd(DATABASE, 'LD%s%s' % (tag, i))
        for i in range(options.opds)]
    doctors = []
    for i, opd in enumerate(opds):
        count = len(range(i, options.doctors, options.opds))
        for doctor in queue_data.make_doctors(DATABASE, count, opd, 'ld',
                password=PASSWORD, prescriber=True):
            doctors.append(dict(doctor, password=PASSWORD, opd=opd))
    quiet = queue_data.make_opd(DATABASE, 'LQ' + tag)
    probe_keys = [p['session'] for p in patients_in_line(10, quiet, '51')]
    registered = options.patients - options.register
    people = []
    for start in range(0, registered, 200):
        people += queue_data.make_patients(
            DATABASE, min(200, registered - start), '52')
    people += [{'mobile': m, 'fields': registration(m[-10:])}
        for m in new_mobiles(options.register)]
    random.Random(tag).shuffle(people)
    for i, person in enumerate(people):
        person['opd'] = opds[i % len(opds)]
    day = Day(recorder, server.root, DATABASE, opds, gateway, options)
    seconds = options.minutes * 60
    started = time.monotonic()
    recorder.set_phase('day')
    probe = Probe(recorder, server, DATABASE, probe_keys,
        options.probe_rate)
    probe.start()
    consoles = [Doctor(day, d) for d in doctors]
    threads = [threading.Thread(target=doctor_day, args=(day, d))
        for d in consoles]
    for thread in threads:
        thread.start()
    # one generator for all: a generator seeded anew for each patient gave
    # them all the same arrival time (150 patients at once)
    rng = random.Random(tag)
    arrivals = sorted(rng.uniform(0, seconds * 0.6) for _ in people)
    for person, at in zip(people, arrivals):
        time.sleep(max(0, started + at - time.monotonic()))
        thread = threading.Thread(target=patient_day, args=(day, person))
        thread.start()
        threads.append(thread)
    time.sleep(max(0, started + seconds - time.monotonic()))
    day.closing.set()
    wake(opds)
    for thread in threads:
        thread.join(120)
    day.ended.set()
    probe.stop.set()
    elapsed = time.monotonic() - started
    report = phase_report(recorder, sampler, 'day', elapsed)
    report['checks'] = day_checks(opds, recorder, gateway)
    report['ratio_p50_current_vs_health'] = ratio(
        report['endpoints'], 'p50_ms')
    return report, probe_keys


def wake(opds):
    """Closing time: wake every waiting room and console of the OPDs at
    once (a queue change) rather than at the end of their long polls."""
    with queue_data.transaction(DATABASE) as pool:
        Queue = pool.get('sehat.opd.queue')
        Queue.bump([q.id for q in Queue.search([('opd', 'in', opds)])])


def ratio(table, key):
    health = table.get('GET /health', {}).get(key)
    current = table.get('GET /tokens/current', {}).get(key)
    return round(current / health, 2) if health and current else None


def day_checks(opds, recorder, gateway):
    """Nothing lost: the tokens, the doctors, the prescriptions and the
    texts of the day, read in the database."""
    opds = tuple(opds)
    states = dict(queue_data.sql(DATABASE, 'SELECT state, count(*) FROM '
            'sehat_opd_token WHERE opd IN %s GROUP BY state', opds))
    numbers = queue_data.sql(DATABASE, 'SELECT opd, array_agg(number '
        'ORDER BY number) FROM sehat_opd_token WHERE opd IN %s '
        'GROUP BY opd', opds)
    rx = queue_data.sql(DATABASE, 'SELECT count(*) FROM sehat_opd_token t '
        'JOIN gnuhealth_prescription_order o ON o.id = t.prescription '
        "WHERE t.opd IN %s AND o.sehat_state = 'issued' "
        'AND t.state = %s', opds, 'completed')[0][0]
    busy = queue_data.sql(DATABASE, 'SELECT count(*) FROM sehat_opd_presence '
        'WHERE opd IN %s AND (online OR current_token IS NOT NULL)',
        opds)[0][0]
    events = recorder.events['day']
    return {
        'token_states': states,
        'tokens_issued_vs_created': [events.get('token', 0),
            sum(len(n) for _, n in numbers)],
        'numbers_1_to_n': all(n == list(range(1, len(n) + 1))
            for _, n in numbers),
        'active_left': sum(states.get(s, 0)
            for s in ('waiting', 'called', 'in_consultation')),
        'completed_with_issued_prescription': [
            states.get('completed', 0), rx],
        'doctors_still_online_or_busy': busy,
        'sms_accepted': len(gateway.accepted),
        'sms_duplicates_refused_by_key': len(gateway.duplicates),
        }


def run_floor(options, server, recorder, sampler, keys):
    """GET /health and GET /tokens/current in turn from 8 busy clients:
    the same load on both; their mean times' ratio is the ratio of rates."""
    recorder.set_phase('floor')
    stop = threading.Event()

    def client(i):
        http = Http(recorder, server.root, DATABASE)
        n = i
        while not stop.is_set():
            try:
                if n % 2:
                    http.bearer = None
                    http.get('/health', endpoint='GET /health')
                else:
                    http.bearer = keys[n % len(keys)]
                    http.get('/tokens/current',
                        endpoint='GET /tokens/current')
            except FlowError:
                time.sleep(0.1)
            n += 1
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(options.floor_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    report = phase_report(recorder, sampler, 'floor',
        time.monotonic() - started)
    health = recorder.times['floor']['GET /health']
    current = recorder.times['floor']['GET /tokens/current']
    report['ratio_current_vs_health'] = round(
        (sum(health) / len(health)) / (sum(current) / len(current)), 2)
    return report


def run_capacity(options, threads_per_worker, gateway, recorder, tag):
    """Step up the number of patients long-polling one OPD until the
    probes' p95 reaches 300 ms or errors appear."""
    server = Gunicorn(DATABASE, workers=options.workers,
        threads=threads_per_worker, extra=server_env(gateway, options),
        log=SERVER_LOG)
    sampler = Sampler(server, recorder, DATABASE)
    stop = threading.Event()
    steps, waiters, wakes, events = [], [], [], []
    try:
        server.wait()
        sampler.start()
        opd = queue_data.make_opd(DATABASE, 'LC%s%s' % (tag,
                threads_per_worker))
        probes = [p['session'] for p in patients_in_line(8, opd, '53')]
        churn = [p['session'] for p in queue_data.make_patients(
                DATABASE, 2, '54')]
        for waiting in options.steps:
            recorder.set_phase('setup')
            more = waiting - len(waiters)
            for patient in patients_in_line(more, opd, '55'):
                waiter = Waiter(recorder, server, DATABASE,
                    patient['session'], stop, wakes)
                waiter.start()
                waiters.append(waiter)
            for waiter in waiters:
                waiter.polling.wait(60)
            time.sleep(options.settle_seconds)
            phase = 'capacity %s x %s, %s waiting' % (
                options.workers, threads_per_worker, waiting)
            recorder.set_phase(phase)
            probe = Probe(recorder, server, DATABASE, probes,
                options.probe_rate)
            started = time.monotonic()
            del wakes[:]
            del events[:]
            probe.start()
            churner = threading.Thread(target=churn_queue, args=(
                    recorder, server, DATABASE, opd, churn,
                    options.event_interval, started + options.step_seconds,
                    events))
            churner.start()
            churner.join()
            probe.stop.set()
            time.sleep(1)
            step = phase_report(recorder, sampler, phase,
                time.monotonic() - started)
            step.update(step_figures(step, waiting, wakes, events,
                    options.workers * threads_per_worker, options))
            steps.append(step)
            print_step(step)
            if not step['holds']:
                break
    finally:
        stop.set()
        sampler.stop.set()
        server.stop()
    held = [s['waiting'] for s in steps if s['holds']]
    return {'workers': options.workers, 'threads': threads_per_worker,
        'maxconn': options.maxconn, 'event_interval': options.event_interval,
        'steps': steps, 'held': max(held) if held else 0,
        'limit': steps[-1]['limit'] if steps and not steps[-1]['holds']
        else 'none reached'}


def step_figures(step, waiting, wakes, events, threads, options):
    """Wake-up times (after the answer to the change that woke a waiting
    room: its commit comes just before), requests per wake-up, whether it
    holds and why not."""
    delays = []
    for woke in wakes:
        before = [end for start, end in events if start <= woke]
        if before:
            delays.append(max(0, woke - (before[-1] or woke)))
    table = step['endpoints']
    polls = table.get('GET /tokens/current/wait', {}).get('count', 0)
    p95 = max(table.get(e, {}).get('p95_ms') or 0
        for e in ('GET /tokens/current', 'GET /health')) / 1000
    holds = p95 < P95_LIMIT and step['errors'] == 0
    server = step['server']
    cores = sum(server.get('cpu_cores', {}).get(n, 0)
        for n in ('server', 'postgres', 'client'))
    if holds:
        limit = None
    elif waiting + 8 >= threads:
        limit = 'threads (%s long polls for %s threads)' % (
            waiting, threads)
    elif (options.minconn < options.maxconn and server.get(
            'connections_max', 0) >= options.workers * options.maxconn):
        limit = 'database connections (%s)' % server['connections_max']
    elif cores >= 0.85 * (os.cpu_count() or 2):
        limit = 'CPU (%.2f of %s cores busy)' % (cores, os.cpu_count())
    else:
        limit = ('the wake-up bursts: %d status reads per change, in %.1f s '
            'at p95' % (round(waiting * (
                table.get('GET /tokens/current/wait', {}).get('count', 0)
                / max(1, len(events)) / max(1, waiting)) * 2),
                (percentile(delays, 0.95) or 0)))
    return {
        'waiting': waiting,
        'queue_changes': len(events),
        'wake_ms': {'p50': ms(percentile(delays, 0.5)),
            'p95': ms(percentile(delays, 0.95)),
            'max': ms(max(delays)) if delays else None},
        'wakes_per_change': round(len(wakes) / len(events) / waiting, 2)
        if events else None,
        'polls_per_change_per_patient': round(
            polls / len(events) / waiting, 2) if events else None,
        'p95_probe_ms': ms(p95),
        'holds': holds,
        'limit': limit,
        }


def print_step(step):
    server = step['server']
    print('capacity: %4d waiting  p95 %6.1f ms  wake p95 %s ms  '
        'polls/change/patient %s  errors %d  cpu %s  conns %s  rss %s MB  '
        '%s' % (step['waiting'], step['p95_probe_ms'],
            step['wake_ms']['p95'], step['polls_per_change_per_patient'],
            step['errors'], server.get('cpu_cores'),
            server.get('connections_max'), server.get('rss_mb', {}).get('end'),
            'holds' if step['holds'] else 'LIMIT: ' + step['limit']),
        flush=True)


# Main --------------------------------------------------------------------

def day_and_floor(options, server, gateway, recorder, sampler, tag, results):
    day, probe_keys = run_day(
        options, server, gateway, recorder, sampler, tag)
    results['day'] = day
    print_table('day (%.0f s): %.1f requests/s, %d errors  '
        '(* long poll: time includes waiting)' % (
            day['seconds'], day['rps'], day['errors']), day['endpoints'])
    print('people:', day['events'])
    print('checks:', day['checks'])
    print('server:', day['server'])
    floor = run_floor(options, server, recorder, sampler, probe_keys)
    results['floor'] = floor
    print_table('floor (%.0f s)' % floor['seconds'], floor['endpoints'])
    print('GET /tokens/current vs GET /health: %.2f of the rate '
        '(floor), p50 ratio in the day %s' % (
            floor['ratio_current_vs_health'],
            day['ratio_p50_current_vs_health']))
    print('server:', floor['server'])


def numbers(text):
    return [int(v) for v in text.split(',') if v.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=3,
        help='length of the compressed day')
    parser.add_argument('--patients', type=int, default=150)
    parser.add_argument('--register', type=int, default=20,
        help='patients among them who register through the OTP flow')
    parser.add_argument('--doctors', type=int, default=6)
    parser.add_argument('--opds', type=int, default=3,
        help='OPDs sharing the patients and the doctors')
    parser.add_argument('--consult-seconds', type=float, nargs=2,
        default=[3, 8], metavar=('MIN', 'MAX'))
    parser.add_argument('--consult-timeout', type=float, default=150)
    parser.add_argument('--cancel-share', type=float, default=0.05)
    parser.add_argument('--pdf-share', type=float, default=0.5)
    parser.add_argument('--probe-rate', type=float, default=4,
        help='probe reads of each target per second')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--threads', type=int, default=128,
        help='gunicorn threads per worker for the day and the floor: each '
        'waiting room holds one (docker/entrypoint.sh defaults to 32)')
    parser.add_argument('--maxconn', type=int, default=30,
        help='[database] maxconn per process (docker/compose.yml: 40; '
        'here the PostgreSQL server, max_connections 100, is shared)')
    parser.add_argument('--minconn', type=int, default=30,
        help='[database] minconn: connections the pool keeps open; any '
        'other is closed as it is given back, so with trytond\'s default '
        '(1) nearly every request opens a PostgreSQL connection '
        '(docker/compose.yml: as many as maxconn)')
    parser.add_argument('--log-level', type=int, default=40,
        help='of the server, in bench/results/load_day-server.log '
        '(20: also the waits for a database connection)')
    parser.add_argument('--floor-seconds', type=float, default=20)
    parser.add_argument('--skip-day', action='store_true',
        help='only the capacity search')
    parser.add_argument('--skip-capacity', action='store_true')
    parser.add_argument('--capacity-threads', type=numbers,
        default=[32, 256],
        help='gunicorn threads per worker of each capacity search')
    parser.add_argument('--steps', type=numbers,
        default=[50, 100, 200, 400, 800])
    parser.add_argument('--step-seconds', type=float, default=20)
    parser.add_argument('--settle-seconds', type=float, default=5)
    parser.add_argument('--event-interval', type=float, default=5)
    options = parser.parse_args()
    options.register = min(options.register, options.patients)

    results = {
        'when': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
        'command': ' '.join(shlex.quote(a) for a in sys.argv),
        'cpus': os.cpu_count(), 'load_average_start': os.getloadavg(),
        'options': vars(options)}
    build_database(DATABASE)
    (BENCH / 'results').mkdir(exist_ok=True)
    SERVER_LOG.write_bytes(b'')
    queue_data.configure(env())
    settings()
    tag = secrets.token_hex(2).upper()
    gateway = FakeGateway().start()
    recorder = Recorder()
    if not options.skip_day:
        server = Gunicorn(DATABASE, workers=options.workers,
            threads=options.threads, extra=server_env(gateway, options),
            log=SERVER_LOG)
        sampler = Sampler(server, recorder, DATABASE)
        try:
            server.wait()
            sampler.start()
            day_and_floor(options, server, gateway, recorder, sampler, tag,
                results)
        finally:
            sampler.stop.set()
            server.stop()
    results['capacity'] = []
    if not options.skip_capacity:
        for threads in options.capacity_threads:
            search = run_capacity(options, threads, gateway, recorder, tag)
            results['capacity'].append(search)
            print('capacity with %s x %s threads: %s waiting held; %s' % (
                    options.workers, threads, search['held'],
                    search['limit']), flush=True)
    gateway.stop()
    results['load_average_end'] = os.getloadavg()
    (BENCH / 'results').mkdir(exist_ok=True)
    (BENCH / 'results' / 'load_day.json').write_text(
        json.dumps(results, indent=2, default=str))
    print('\nwritten to bench/results/load_day.json')


if __name__ == '__main__':
    main()
