#!/usr/bin/env python3
"""Resolve a git merge conflict in .po files by taking the union of both
sides' translations (then scripts/portal_messages.py rebuilds the file).

Usage: merge_po.py PATH [PATH...]   (run during a conflicted merge)
"""
import subprocess
import sys

import polib


def side(path, stage):
    try:
        text = subprocess.run(['git', 'show', ':%s:%s' % (stage, path)],
            check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError:
        return None
    return polib.pofile(text)


for path in sys.argv[1:]:
    ours, theirs = side(path, 2), side(path, 3)
    merged = ours or theirs
    known = {(e.msgctxt, e.msgid): e for e in merged}
    for other in (ours, theirs):
        for entry in other or []:
            key = (entry.msgctxt, entry.msgid)
            if key not in known:
                merged.append(entry)
                known[key] = entry
            elif entry.msgstr and not known[key].msgstr:
                known[key].msgstr = entry.msgstr
    merged.save(path)
    print('merged', path, len(merged))
