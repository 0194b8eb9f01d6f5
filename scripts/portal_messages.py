#!/usr/bin/env python3
"""Extract the portal's texts from the templates into locale/portal/*.po.

Usage: portal_messages.py [--check]

Every `_('...')` of each module's templates/ becomes an entry of the
module's locale/portal/hi.po; existing translations are kept, texts no
longer used are dropped. With --check nothing is written: the exit status
says whether a text is missing or untranslated (the test suite runs it).
"""
import re
import sys
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
MODULES = ['sehat_opd', 'sehat_opd_video', 'sehat_opd_sms']
LANGUAGES = ['hi']
# _('text') or _("text"), possibly followed by keyword values
PATTERN = re.compile(r'''_\(\s*(?P<q>['"])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q)''',
    re.S)


def extract(module):
    texts = {}
    templates = ROOT / module / 'templates'
    if not templates.is_dir():
        return texts
    for path in sorted(templates.rglob('*.html')):
        source = path.read_text(encoding='utf-8')
        for match in PATTERN.finditer(source):
            text = match.group('text').encode().decode('unicode_escape') \
                if '\\' in match.group('text') else match.group('text')
            line = source.count('\n', 0, match.start()) + 1
            texts.setdefault(text, []).append(
                (str(path.relative_to(ROOT / module)), line))
    return texts


def main():
    check = '--check' in sys.argv
    problems = []
    for module in MODULES:
        texts = extract(module)
        if not texts:
            continue
        for language in LANGUAGES:
            path = ROOT / module / 'locale' / 'portal' / ('%s.po' % language)
            old = polib.pofile(str(path)) if path.exists() else None
            known = {e.msgid: e.msgstr for e in old} if old else {}
            po = polib.POFile()
            po.metadata = {
                'Content-Type': 'text/plain; charset=utf-8',
                'Language': language,
                }
            for text, places in texts.items():
                po.append(polib.POEntry(
                        msgid=text, msgstr=known.get(text, ''),
                        occurrences=places))
                if not known.get(text):
                    problems.append('%s [%s] untranslated: %s' % (
                            module, language, text))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                po.save(str(path))
    for problem in problems:
        print(problem)
    return 1 if (check and problems) else 0


if __name__ == '__main__':
    sys.exit(main())
