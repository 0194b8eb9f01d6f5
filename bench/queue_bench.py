#!/usr/bin/env python3
"""Speed of the queue, in one run, under gunicorn on PostgreSQL.

    .venv/bin/python bench/queue_bench.py [--seconds 10] [--rounds 3]

1. Builds (or reuses) the database `sehat_bench` with the demo data
   (scripts/setup_db.py), then adds fixture data straight into it
   (tests/queue_data.py): an OPD with 10 waiting patients, one with 10,000,
   64 patients without a token, 32 doctors and 20 waiting patients.
2. Starts trytond under gunicorn with threaded workers (the production
   command of docker/entrypoint.sh: gthread, 2 workers x 32 threads) and
   bench/trytond.conf.
3. Measures with wrk (bench/bearer.lua sets the patients' Bearer headers)
   three targets:
   - GET /api/v1/health (one record read in a transaction: the floor)
   - GET /api/v1/tokens/current of patients of the 10-waiting OPD
   - GET /api/v1/tokens/current of patients of the 10,000-waiting OPD
   first each alone, alternating in rounds, then the three at once (so
   that the other load of a shared machine falls on all of them at the
   same moments), and reports current/health (target >= 0.7) and
   10,000/10 (target >= 0.8) both ways.
4. 64 parallel POST /tokens from 64 patients: 64 distinct numbers, no
   error; 32 doctors pressing "Call next" at once on 20 waiting: 20 calls,
   each token once, each doctor at most one.
Figures go to stdout and bench/results/queue.json (not kept in git).
"""
import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import threading
import time
from collections import Counter

import requests

from harness import BENCH, Gunicorn, build_database, env
import queue_data  # noqa: E402 - harness puts tests/ on the path

DATABASE = 'sehat_bench'


def fixtures():
    "Fresh OPDs and people for this run."
    queue_data.configure(env())
    tag = secrets.token_hex(2).upper()
    data = {}
    small = queue_data.make_opd(DATABASE, 'BS' + tag)
    small_patients = queue_data.make_patients(DATABASE, 10, '10')
    queue_data.waiting_tokens(
        DATABASE, [p['id'] for p in small_patients], small)
    data['small'] = [p['session'] for p in small_patients]

    large = queue_data.make_opd(DATABASE, 'BL' + tag)
    started = time.monotonic()
    queue_data.bulk_waiting(DATABASE, large, 9990, tag)
    large_patients = queue_data.make_patients(DATABASE, 10, '11')
    queue_data.waiting_tokens(
        DATABASE, [p['id'] for p in large_patients], large)
    data['large'] = [p['session'] for p in large_patients]
    print('fixtures: 10,000 waiting in %.0f s' % (time.monotonic() - started),
        flush=True)

    data['issue_opd'] = queue_data.make_opd(DATABASE, 'BI' + tag)
    data['issuers'] = [p['session'] for p in
        queue_data.make_patients(DATABASE, 64, '64')]

    call_opd = queue_data.make_opd(DATABASE, 'BC' + tag)
    waiting = queue_data.make_patients(DATABASE, 20, '20')
    data['call_tokens'] = queue_data.waiting_tokens(
        DATABASE, [p['id'] for p in waiting], call_opd)
    doctors = queue_data.make_doctors(DATABASE, 32, call_opd, 'bench')
    queue_data.set_online(DATABASE, [d['id'] for d in doctors], call_opd)
    data['doctors'] = [d['session'] for d in doctors]
    data['doctor_ids'] = [d['id'] for d in doctors]
    data['call_opd'] = call_opd
    return data


def wrk_command(url, seconds, connections, threads=2):
    return [shutil.which('wrk') or '/usr/bin/wrk', '-t%s' % threads,
        '-c%s' % connections, '-d%ss' % seconds, '--latency',
        '-s', str(BENCH / 'bearer.lua'), url]


def wrk(url, keys, seconds, connections=16):
    "Requests per second of `url` (wrk, Bearer keys in turn)."
    output = subprocess.run(wrk_command(url, seconds, connections),
        env=dict(os.environ, KEYS=','.join(keys)),
        check=True, capture_output=True, text=True).stdout
    return parse_wrk(url, output)


def wrk_together(targets, seconds, connections=6):
    """Run one wrk per (name, url, keys) at the same time: every target
    meets the same load of the machine; return {name: (rate, p99)}."""
    processes = {name: subprocess.Popen(
            wrk_command(url, seconds, connections, threads=1),
            env=dict(os.environ, KEYS=','.join(keys)),
            stdout=subprocess.PIPE, text=True)
        for name, url, keys in targets}
    urls = {name: url for name, url, _ in targets}
    return {name: parse_wrk(urls[name], process.communicate()[0])
        for name, process in processes.items()}


def parse_wrk(url, output):
    rate = float(re.search(r'Requests/sec:\s+([\d.]+)', output).group(1))
    errors = re.search(r'Non-2xx or 3xx responses: (\d+)', output)
    if errors:
        raise RuntimeError('%s: %s errors\n%s' % (url, errors.group(1), output))
    p99 = re.search(r'99%\s+([\d.]+\w+)', output)
    return rate, p99.group(1) if p99 else None


def race(count, call):
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exception:  # noqa: BLE001 - counted as error
            results[i] = exception
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=3)
    options = parser.parse_args()

    build_database(DATABASE)
    data = fixtures()
    server = Gunicorn(DATABASE)
    results = {}
    try:
        server.wait()
        health = server.base + '/health'
        current = server.base + '/tokens/current'
        # warm every worker's caches (pool, snapshots) before measuring
        wrk(health, data['small'], 3)
        wrk(current, data['small'] + data['large'], 3)
        targets = [
            ('health', health, data['small']),
            ('current_10', current, data['small']),
            ('current_10000', current, data['large'])]
        # 1. each target alone, in alternating rounds
        rates = {name: [] for name, _, _ in targets}
        for round_ in range(options.rounds):
            for name, url, keys in targets:
                rate, p99 = wrk(url, keys, options.seconds)
                rates[name].append(rate)
                print('round %d %-14s %8.1f req/s  p99 %s' % (
                        round_ + 1, name, rate, p99), flush=True)
        median = {name: statistics.median(values)
            for name, values in rates.items()}
        results['alone'] = {'rates': rates, 'median': median,
            'current_vs_health': median['current_10'] / median['health'],
            'large_vs_small': median['current_10000'] / median['current_10']}
        # 2. the three at once (a third of the connections each): the
        # machine's other load falls on all of them at the same moments
        together = {'current_vs_health': [], 'large_vs_small': []}
        for round_ in range(options.rounds):
            measured = wrk_together(targets, options.seconds)
            print('together %d  %s' % (round_ + 1, '  '.join(
                        '%s %.1f req/s' % (name, rate)
                        for name, (rate, _) in measured.items())), flush=True)
            together['current_vs_health'].append(
                measured['current_10'][0] / measured['health'][0])
            together['large_vs_small'].append(
                measured['current_10000'][0] / measured['current_10'][0])
        results['together'] = {name: statistics.median(values)
            for name, values in together.items()}
        results['together']['rounds'] = together

        issued, seconds = race(64, lambda i: requests.post(
                server.base + '/tokens',
                json={'opd': data['issue_opd'], 'complaint': 'Fever'},
                headers={'Authorization': 'Bearer ' + data['issuers'][i]},
                timeout=120))
        ok = [r for r in issued if getattr(r, 'status_code', None) == 201]
        numbers = sorted(r.json()['token_number'] for r in ok)
        results['issue_64'] = {
            'created': len(ok), 'errors': 64 - len(ok),
            'distinct_numbers': len(set(numbers)),
            'numbers_1_to_64': numbers == list(range(1, 65)),
            'seconds': round(seconds, 2)}

        called, seconds = race(32, lambda i: requests.post(
                server.base + '/doctor/call-next',
                headers={'Authorization': 'Bearer ' + data['doctors'][i]},
                timeout=120))
        statuses = Counter(getattr(r, 'status_code', 'error') for r in called)
        tokens = [r.json()['token']['id'] for r in called
            if getattr(r, 'status_code', None) == 200]
        rows = queue_data.sql(DATABASE, 'SELECT healthprof FROM '
            "sehat_opd_token WHERE opd = %s AND state = 'called'",
            data['call_opd'])
        results['call_next_32_on_20'] = {
            'called': statuses.get(200, 0),
            'queue_empty': statuses.get(409, 0),
            'errors': sum(n for s, n in statuses.items() if s not in {200, 409}),
            'tokens_called_once': sorted(tokens) == sorted(
                data['call_tokens']),
            'doctors_with_one': len({r[0] for r in rows}) == len(rows) == 20,
            'seconds': round(seconds, 2)}
    finally:
        server.stop()

    print()
    for mode in ['alone', 'together']:
        print('%-8s GET /tokens/current vs /health: %.2f (target >= 0.70)'
            % (mode, results[mode]['current_vs_health']))
        print('%-8s 10,000 waiting vs 10 waiting:   %.2f (target >= 0.80)'
            % (mode, results[mode]['large_vs_small']))
    print('64 parallel POST /tokens:       %s' % results['issue_64'])
    print('32 doctors Call next on 20:     %s' % results['call_next_32_on_20'])
    results['when'] = time.strftime('%Y-%m-%d %H:%M:%S')
    results['cpus'] = os.cpu_count()
    (BENCH / 'results').mkdir(exist_ok=True)
    (BENCH / 'results' / 'queue.json').write_text(
        json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
