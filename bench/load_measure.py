"""What bench/load_day.py measures besides the requests' times: the
server's memory and CPU, sampled every second, and the tables of figures
by phase and endpoint."""
import os
import sys
import threading
import time

import psutil

from load_actors import POLLS, percentile


class Sampler(threading.Thread):
    """Every second: the workers' RSS, CPU times (server, PostgreSQL, this
    client, the whole machine), the server's connections, the number of
    requests so far."""

    def __init__(self, server, recorder, database):
        super().__init__(daemon=True)
        self.server = server
        self.recorder = recorder
        self.database_name = database
        self.samples = []
        self.stop = threading.Event()
        self.connection = None

    def database(self):
        """The server's backends now (pids), and when PostgreSQL last
        started (other engineers' fault drills restart it on a shared
        machine)."""
        import psycopg2
        if self.connection is None or self.connection.closed:
            self.connection = psycopg2.connect(dbname='postgres')
            self.connection.autocommit = True
        try:
            with self.connection.cursor() as cursor:
                cursor.execute('SELECT pid FROM pg_stat_activity '
                    'WHERE datname = %s', (self.database_name,))
                backends = [pid for pid, in cursor]
                cursor.execute('SELECT pg_postmaster_start_time()')
                started, = cursor.fetchone()
                return backends, started.isoformat()
        except psycopg2.Error:
            self.connection.close()
            return [], 'unreachable'

    @staticmethod
    def cpu(pids):
        "{pid: CPU seconds so far} of the processes still there."
        times = {}
        for pid in pids:
            try:
                cpu = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            times[pid] = cpu.user + cpu.system
        return times

    def sample(self):
        workers = []
        try:
            master = psutil.Process(self.server.process.pid)
            workers = [master.pid] + [c.pid for c in master.children()]
        except psutil.Error:
            pass
        backends, postgres_started = self.database()
        threads = 0
        for pid in workers[1:]:
            try:
                threads += psutil.Process(pid).num_threads()
            except psutil.Error:
                pass
        return {
            't': time.monotonic(), 'phase': self.recorder.phase,
            'requests': self.recorder.count,
            'rss': self.server.worker_rss(),
            'cpu_server': self.cpu(workers),
            'cpu_postgres': self.cpu(backends),
            'cpu_client': self.cpu([os.getpid()]),
            'connections': len(backends),
            'postgres_started': postgres_started,
            'cpu_machine': machine_busy(),
            'threads': threads,
            }

    def run(self):
        while not self.stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception as exception:  # noqa: BLE001 - keep sampling
                print('sampler:', exception, file=sys.stderr)
            self.stop.wait(1)

    def summary(self, phase):
        "Memory, CPU and connections of one phase."
        rows = [s for s in self.samples if s['phase'] == phase]
        if len(rows) < 2:
            return {}
        first, last = rows[0], rows[-1]
        seconds = last['t'] - first['t']
        mb = 1024 * 1024
        totals = [sum(r['rss'].values()) / mb for r in rows]
        requests = [r['requests'] for r in rows]
        restarted = set(first['rss']) != set(last['rss'])
        # least squares: MB of RSS per request over the phase
        mean_r = sum(requests) / len(rows)
        mean_m = sum(totals) / len(rows)
        spread = sum((r - mean_r) ** 2 for r in requests)
        slope = (sum((r - mean_r) * (m - mean_m)
                for r, m in zip(requests, totals)) / spread) if spread else 0
        done = last['requests'] - first['requests']
        # the second half: caches and pools fill at first, a leak goes on
        half = rows[len(rows) // 2:]
        later = half[-1]['requests'] - half[0]['requests']
        return {
            'seconds': round(seconds, 1),
            'requests': done,
            'rss_mb': {'start': round(totals[0], 1),
                'end': round(totals[-1], 1), 'max': round(max(totals), 1)},
            'rss_mb_per_worker_end': [round(v / mb, 1)
                for v in last['rss'].values()],
            'growth_mb_per_1000_requests': {
                'end_minus_start': round(
                    (totals[-1] - totals[0]) * 1000 / done, 3) if done else None,
                'fitted': round(slope * 1000, 3),
                'second_half': round((sum(half[-1]['rss'].values())
                        - sum(half[0]['rss'].values())) / mb * 1000 / later,
                    3) if later else None},
            'workers_restarted': restarted,
            # each gunicorn thread is started at first need and kept: the
            # memory follows the most threads ever busy at once
            'worker_threads': {'start': first['threads'],
                'end': last['threads']},
            'cpu_cores': {name: round(cpu_used(rows, 'cpu_' + name) / seconds,
                    2) for name in ('server', 'postgres', 'client', 'machine')}
            if seconds else {},
            'connections_max': max(r['connections'] or 0 for r in rows),
            'postgres_restarted': len({r['postgres_started']
                    for r in rows}) > 1,
            }


def machine_busy():
    "{0: CPU seconds the whole machine has not been idle so far}."
    times = psutil.cpu_times()
    return {0: sum(times) - times.idle - getattr(times, 'iowait', 0)}


def cpu_used(rows, key):
    """CPU seconds used over the samples `rows` by the processes sampled
    under `key` (each from its first sample in `rows`: PostgreSQL backends
    come and go)."""
    first, last = {}, {}
    for row in rows:
        for pid, seconds in row[key].items():
            first.setdefault(pid, seconds)
            last[pid] = seconds
    return sum(last[pid] - first[pid] for pid in last)


# Reporting -----------------------------------------------------------------

def endpoint_table(recorder, phase, seconds):
    result = {}
    for endpoint, values in sorted(recorder.times[phase].items()):
        statuses = dict(recorder.statuses[phase][endpoint])
        result[endpoint] = {
            'count': len(values),
            'rps': round(len(values) / seconds, 2) if seconds else None,
            'p50_ms': ms(percentile(values, 0.50)),
            'p95_ms': ms(percentile(values, 0.95)),
            'p99_ms': ms(percentile(values, 0.99)),
            'max_ms': ms(max(values)),
            'long_poll': endpoint in POLLS,
            'statuses': {str(k): v for k, v in statuses.items()},
            'errors': sum(v for k, v in statuses.items()
                if k in ('error', 'rpc-error') or (
                    isinstance(k, int) and k >= 500)),
            }
    return result


def ms(value):
    return None if value is None else round(value * 1000, 1)


def print_table(title, table):
    print('\n%s' % title)
    print('  %-46s %7s %7s %8s %8s %8s %6s' % (
            'endpoint', 'count', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'err'))
    for endpoint, row in table.items():
        print('  %-46s %7d %7.2f %8.1f %8.1f %8.1f %6d' % (
                endpoint + (' *' if row['long_poll'] else ''), row['count'],
                row['rps'] or 0, row['p50_ms'], row['p95_ms'],
                row['p99_ms'], row['errors']))


def phase_report(recorder, sampler, phase, seconds):
    table = endpoint_table(recorder, phase, seconds)
    return {
        'seconds': round(seconds, 1),
        'requests': sum(r['count'] for r in table.values()),
        'rps': round(sum(r['count'] for r in table.values()) / seconds, 1),
        'errors': sum(r['errors'] for r in table.values()),
        'endpoints': table,
        'events': dict(recorder.events[phase]),
        'server': sampler.summary(phase),
        }
