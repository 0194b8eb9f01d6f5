#!/usr/bin/env python3
"""PDF render rate of the e-prescription (sehat_opd/rx_pdf.py).

Usage: bench/pdf_render.py [--seconds 10] [--medicines 3] [--hindi]

Draws the same prescription content again and again in one process for
`--seconds` (after a warm-up, so font registration is not counted), and
prints PDFs/s, pages/s and the mean time per PDF. Signing adds the content
hash and the PDF's hash to this (microseconds), so this is the cost of
"Sign and issue" outside the database.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'sehat_opd' / 'tests'))

from pypdf import PdfReader  # noqa: E402

from trytond.modules.sehat_opd import rx_pdf, telemedicine  # noqa: E402
from rx_sample import sample_content  # noqa: E402

URL = 'https://opd.example.in/sehat/opd/verify/Zk3v9QpW2mXc7LrT1yHbNa'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10)
    parser.add_argument('--medicines', type=int, default=3)
    parser.add_argument('--hindi', action='store_true',
        help='patient name in Devanagari (shaped by HarfBuzz)')
    args = parser.parse_args()
    content = sample_content(medicines=args.medicines,
        name='प्रिया शर्मा' if args.hindi else 'Priya Sharma')
    digest = telemedicine.content_hash(content)
    data = rx_pdf.render(content, URL, digest)  # warm-up: fonts, caches
    pages = len(PdfReader(__import__('io').BytesIO(data)).pages)
    count = 0
    cpu = time.process_time()
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        data = rx_pdf.render(content, URL, telemedicine.content_hash(content))
        telemedicine.bytes_hash(data)
        count += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    print('medicines=%d hindi=%s pages/pdf=%d size=%d bytes' % (
            args.medicines, args.hindi, pages, len(data)))
    print('%d PDFs in %.1f s: %.1f PDFs/s, %.1f pages/s, %.1f ms per PDF' % (
            count, elapsed, count / elapsed, count * pages / elapsed,
            1000 * elapsed / count))
    # on a shared machine the wall clock counts the other processes too
    print('CPU: %.1f ms per PDF, i.e. %.1f pages/s per core' % (
            1000 * cpu / count, count * pages / cpu))


if __name__ == '__main__':
    main()
