#!/usr/bin/env python3
"""Extract the texts patients read into each module's Hindi catalogs.

Usage: portal_messages.py [--check]

- Every `_('...')` of a module's templates/ becomes an entry of the
  module's locale/portal/hi.po (the portal pages' catalog).
- Every ir.message of a module's message.xml becomes an entry of the
  module's locale/hi.po, in Tryton's format
  (msgctxt "model:ir.message,text:<id>"); other entries of that file (field
  labels, selections) are kept as they are.

Existing translations are kept, texts no longer used are dropped. With
--check nothing is written: the exit status says whether a text is missing,
untranslated, or translated with other %(placeholders)s than its English
(the test suite runs it).
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
MODULES = ['sehat_opd', 'sehat_opd_video', 'sehat_opd_sms']
LANGUAGES = ['hi']
# _('text') or _("text"), possibly followed by keyword values
PATTERN = re.compile(r'''_\(\s*(?P<q>['"])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q)''',
    re.S)
PLACEHOLDER = re.compile(r'%\((\w+)\)[sd]')
MESSAGE_CONTEXT = 'model:ir.message,text:'


def extract(module):
    "{text: [(template, line)]} of the module's templates."
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


def extract_messages(module):
    "{xml id: English text} of the module's message.xml."
    path = ROOT / module / 'message.xml'
    if not path.exists():
        return {}
    messages = {}
    for record in ET.parse(str(path)).iter('record'):
        if record.get('model') != 'ir.message':
            continue
        for field in record.iter('field'):
            if field.get('name') == 'text':
                messages[record.get('id')] = field.text or ''
    return messages


def placeholders_differ(msgid, msgstr):
    return sorted(PLACEHOLDER.findall(msgid)) != sorted(
        PLACEHOLDER.findall(msgstr))


def _new_po(language):
    po = polib.POFile()
    po.metadata = {
        'Content-Type': 'text/plain; charset=utf-8',
        'Language': language,
        }
    return po


def portal_catalog(module, language, problems):
    "The module's portal catalog, updated from its templates."
    texts = extract(module)
    if not texts:
        return None, None
    path = ROOT / module / 'locale' / 'portal' / ('%s.po' % language)
    old = polib.pofile(str(path)) if path.exists() else None
    known = {e.msgid: e.msgstr for e in old} if old else {}
    po = _new_po(language)
    for text, places in texts.items():
        msgstr = known.get(text, '')
        po.append(polib.POEntry(
                msgid=text, msgstr=msgstr, occurrences=places))
        if not msgstr:
            problems.append('%s portal [%s] untranslated: %s' % (
                    module, language, text))
        elif placeholders_differ(text, msgstr):
            problems.append('%s portal [%s] placeholders differ: %s' % (
                    module, language, text))
    return path, po


def message_catalog(module, language, problems):
    "The module's Tryton catalog, its ir.message entries updated."
    messages = extract_messages(module)
    if not messages:
        return None, None
    path = ROOT / module / 'locale' / ('%s.po' % language)
    old = polib.pofile(str(path)) if path.exists() else []
    known = {}
    po = _new_po(language)
    for entry in old:
        if (entry.msgctxt or '').startswith(MESSAGE_CONTEXT):
            known[entry.msgctxt] = entry
        else:
            po.append(entry)
    for xml_id, text in messages.items():
        context = MESSAGE_CONTEXT + xml_id
        entry = known.get(context)
        # a translation of an older English text is no translation
        msgstr = entry.msgstr if entry and entry.msgid == text else ''
        po.append(polib.POEntry(msgctxt=context, msgid=text, msgstr=msgstr))
        if not msgstr:
            problems.append('%s message [%s] untranslated: %s: %s' % (
                    module, language, xml_id, text))
        elif placeholders_differ(text, msgstr):
            problems.append('%s message [%s] placeholders differ: %s' % (
                    module, language, xml_id))
    return path, po


def main():
    check = '--check' in sys.argv
    problems = []
    for module in MODULES:
        for language in LANGUAGES:
            for build in (portal_catalog, message_catalog):
                path, po = build(module, language, problems)
                if po is not None and not check:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    po.save(str(path))
    for problem in problems:
        print(problem)
    return 1 if (check and problems) else 0


if __name__ == '__main__':
    sys.exit(main())
