#!/usr/bin/env python3
"""Long fuzzing run of the patient API (tests/test_fuzz.py, more examples).

Usage: bench/fuzz.py [--examples 500] [--only REGEX] [--seed N]

Runs the fuzz of `make test` with `--examples` generated requests per
operation instead of 20 (plus schemathesis' boundary cases), against a real
server on a fresh copy of the test database, then prints how each operation
answered and writes bench/results/fuzz.json. `--only` keeps the operations
whose path matches REGEX (e.g. '^/tokens'); `--seed` explores other inputs
than the fixed ones of `make test` (whose run is derandomized). Exits
non-zero when any check failed; pytest's report above the table says which
request failed and how to replay it (curl).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'bench' / 'results'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--examples', type=int, default=500)
    parser.add_argument('--only', help='regex of the paths to fuzz')
    parser.add_argument('--seed', type=int,
        help='explore with this seed instead of the fixed examples')
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = RESULTS / 'fuzz.json'
    if report.exists():
        report.unlink()
    env = dict(os.environ,
        SEHAT_FUZZ_EXAMPLES=str(args.examples),
        SEHAT_FUZZ_REPORT=str(report),
        TRYTOND_CONFIG=os.environ.get(
            'TRYTOND_CONFIG', str(ROOT / 'trytond.conf')))
    if args.only:
        env['SEHAT_FUZZ_ONLY'] = args.only
    # pytest's own folder: the server's log stays there after the run
    # (the shared /tmp/pytest-of-<user> keeps only the last three runs)
    command = [sys.executable, '-m', 'pytest', '-q', '-x',
        '--basetemp', str(RESULTS / 'pytest'),
        str(ROOT / 'tests' / 'test_fuzz.py')]
    if args.seed is not None:
        command.append('--hypothesis-seed=%s' % args.seed)
        env['SEHAT_FUZZ_RANDOM'] = '1'
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env)
    elapsed = time.monotonic() - started
    log = RESULTS / 'pytest' / 'server0' / 'trytond.log'
    if not report.exists():
        print('no report: the run did not get to the end of the fuzz')
        return result.returncode or 1
    if result.returncode:
        print('the server\'s log: %s' % log)
    data = json.loads(report.read_text())
    answers = data['answers']
    total = sum(sum(c.values()) for c in answers.values())
    print('\n%-48s %7s  answers by status' % ('operation', 'requests'))
    for label in sorted(answers, key=lambda x: x.split(' ', 1)[::-1]):
        counts = answers[label]
        print('%-48s %7d  %s' % (label, sum(counts.values()), ', '.join(
                    '%s: %s' % item for item in sorted(counts.items()))))
    print('\n%d operations, %d requests in %.0f s (%d examples each, '
        'the world rebuilt %d times): %s' % (len(answers), total, elapsed,
            data['examples'], data['tokens'],
            'all checks passed' if result.returncode == 0 else 'FAILED'))
    data.update(seconds=round(elapsed), requests=total,
        passed=result.returncode == 0)
    report.write_text(json.dumps(data, indent=1))
    return result.returncode


if __name__ == '__main__':
    sys.exit(main())
