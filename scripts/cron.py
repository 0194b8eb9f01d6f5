#!/usr/bin/env python3
"""Run the scheduled jobs (ir.cron) of a SQLite database, one transaction each.

Usage: cron.py -c trytond.conf -d DATABASE [-1]

trytond-cron keeps one outer transaction open while it runs every due job
and writes each job's next call in it; SQLite has a single writer, so after
the first job every job that writes waits for that transaction and fails
("database is locked"). This runner calls the same jobs (Cron.run_once and
compute_next_call) but commits each job with its next call, so the demo's
jobs (missed calls, stale doctors, end of day, outbox) run on SQLite too.
PostgreSQL deployments use trytond-cron.
"""
import argparse
import datetime as dt
import logging
import os
import time

logger = logging.getLogger('sehat_opd.cron')


def run_due(pool, database):
    from trytond.transaction import Transaction
    Cron = pool.get('ir.cron')
    now = dt.datetime.now()
    with Transaction().start(database, 0, readonly=True):
        due = [c.id for c in Cron.search(['OR',
                    ('next_call', '<=', now), ('next_call', '=', None)])]
    for cron_id in due:
        with Transaction().start(
                database, 0, context={'_skip_warnings': True}) as transaction:
            cron = Cron(cron_id)
            started = time.monotonic()
            try:
                cron.run_once()
            except Exception:
                transaction.rollback()
                logger.exception('%s failed', cron.method)
                cron = Cron(cron_id)
            cron.next_call = cron.compute_next_call(now)
            cron.save()
            transaction.commit()
            logger.info('%s in %i ms', cron.method,
                (time.monotonic() - started) * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('-c', '--config', required=True)
    parser.add_argument('-d', '--database', required=True)
    parser.add_argument('-1', dest='once', action='store_true',
        help='run the due jobs once and exit')
    options = parser.parse_args()
    os.environ['TRYTOND_CONFIG'] = options.config
    logging.basicConfig(level=logging.WARNING,
        format='%(process)s [%(asctime)s] %(levelname)s %(name)s %(message)s')
    from trytond.config import config
    config.update_etc(options.config)
    from trytond.pool import Pool
    Pool.start()
    pool = Pool(options.database)
    pool.init()
    while True:
        run_due(pool, options.database)
        if options.once:
            break
        time.sleep(60 - dt.datetime.now().second)


if __name__ == '__main__':
    main()
