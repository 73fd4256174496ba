#!/usr/bin/env bash
# test/e2e/untyped_calls.sh: every call of leadintake_from_dialer written in the repository
# (README.md, SECURITY.md, docs/, sql/, expected/, test/, scripts/) gives its argument a
# type: no bare string literal (nor NULL, nor format()'s %L) without `::jsonb` after it.
# Prints TAP; a failure names each file and line. Needs python3 only (no database).
#
# Why (issue 13, item 8; SECURITY.md "Calling leadintake_from_dialer"): an untyped literal
# is of type unknown, and PostgreSQL's function resolution prefers an exact match for
# unknown, text, over the conversion to jsonb: where `public` is writable (clusters upgraded
# from before PostgreSQL 15), anyone can plant public.leadintake_from_dialer(text), and
# the DBA's untyped call runs it with the DBA's rights (test/pgtap/overload.sql shows it).
# Examples are copied: each must be safe to copy.
#
# A call that is untyped on purpose (the test that shows the hijack, the SECURITY.md
# sentence that names the danger) carries the word untyped-call-ok on the call's line.

set -uo pipefail

ROOT=${LEADINTAKE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT" || exit 1

python3 - <<'EOF'
import os
import re
import sys

NAME = "leadintake_from_" + "dialer"    # split: this file's own text is no call
CALL = re.compile(re.escape(NAME) + r"\s*\(")
LITERAL_START = re.compile(r"[Ee]?'|\$([A-Za-z_][A-Za-z0-9_]*)?\$|NULL\b|%L", re.I)
JSONB_CAST = re.compile(r"\s*::\s*jsonb\b", re.I)
OK_MARK = "untyped-call-ok"
AREAS = ["README.md", "SECURITY.md", "docs", "sql", "expected", "test", "scripts"]
SKIP_DIRS = {os.path.join("test", "results"), os.path.join("test", "fuzz", "build")}


def end_of_quoted(text, i, escapes):
    """Index just past the SQL quoted string starting at text[i] == "'"."""
    i += 1
    while i < len(text):
        c = text[i]
        if escapes and c == "\\":
            i += 2
            continue
        if c == "'":
            if text.startswith("''", i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def end_of_literal(text, i):
    """Index just past the literal (or NULL, or %L) at text[i], or None when none is there."""
    m = LITERAL_START.match(text, i)
    if not m:
        return None
    tok = m.group(0)
    if tok.upper() in ("NULL", "%L"):
        return m.end()
    if tok.startswith("$"):
        close = text.find(tok, m.end())
        return len(text) if close < 0 else close + len(tok)
    j = end_of_quoted(text, m.end() - 1, tok[0] in "Ee")
    # 'a'<newline>'b' is one literal in SQL
    while True:
        k = re.match(r"[ \t]*\n\s*'", text[j:])
        if not k:
            return j
        j = end_of_quoted(text, j + k.end() - 1, False)


def untyped_calls(text):
    """Line numbers of the calls whose argument is an untyped literal."""
    bad = []
    for m in CALL.finditer(text):
        arg = m.end() + len(text[m.end():]) - len(text[m.end():].lstrip())
        end = end_of_literal(text, arg)
        if end is None or JSONB_CAST.match(text, end):
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.start())
        line = text[line_start:line_end if line_end >= 0 else len(text)]
        if OK_MARK not in line:
            bad.append((text.count("\n", 0, m.start()) + 1, line.strip()))
    return bad


def files(area):
    if os.path.isfile(area):
        yield area
        return
    for d, dirs, names in os.walk(area):
        dirs[:] = sorted(x for x in dirs if os.path.join(d, x) not in SKIP_DIRS)
        for n in sorted(names):
            yield os.path.join(d, n)


n = 0
failed = 0


def tap(ok, desc, diags=()):
    global n, failed
    n += 1
    failed += not ok
    print(("ok %d - %s" if ok else "not ok %d - %s") % (n, desc))
    for d in diags:
        print("#   " + d)


print("1..%d" % (3 + len(AREAS)))

# the scanner itself, on calls written every way the repository writes them
f = NAME
bad_samples = [
    "SELECT %s('{\"user\": \"a\"}');" % f,
    "SELECT %s( '{}' )" % f,
    "SELECT %s('{\"user\": \"a\",\n  \"lead_id\": \"x\"}')->>'id'" % f,
    "SELECT %s('{\"a\":' \n  '1}')" % f,
    "SELECT %s(E'{\"a\": \"\\'\"}')" % f,
    "psql -c \"SELECT %s('{\\\"user\\\":\\\"a\\\"}')\"" % f,
    "SELECT %s('{}')::jsonb" % f,
    "SELECT %s('{}' || '')" % f,
    "SELECT %s(NULL)" % f,
    "format('SELECT %s(%%L)', p)" % f,
    "SELECT public.%s($$ {} $$)" % f,
]
good_samples = [
    "SELECT %s('{\"user\": \"a\"}'::jsonb);" % f,
    "SELECT %s('{\"user\": \"it''s\",\n \"x\": 1}' :: JSONB)" % f,
    "SELECT %s(p) FROM staging" % f,
    "SELECT %s(jsonb_build_object('user', 'a'))" % f,
    "SELECT %s(('{\"a\": \"' || x || '\"}')::jsonb)" % f,
    "SELECT %s(NULL::jsonb)" % f,
    "format('SELECT %s(%%L::jsonb)', p)" % f,
    "SELECT %s($1)" % f,
    "`%s(jsonb)` is the DBA's entry" % f,
    "SELECT %s('{}') -- untyped-call-ok: shows the danger" % f,
]
missed = [s for s in bad_samples if not untyped_calls(s)]
tap(not missed, "the check finds an untyped literal however the call is written",
    ["not found: " + s for s in missed])
wrong = [s for s in good_samples if untyped_calls(s)]
tap(not wrong, "the check accepts typed arguments, other expressions and marked calls",
    ["flagged: " + s for s in wrong])

total = 0
results = []
for area in AREAS:
    found = []
    for path in files(area):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        total += len(CALL.findall(text))
        found += ["%s:%d: %s" % (path, line, src[:160]) for line, src in untyped_calls(text)]
    results.append((area, found))
tap(total >= 100, "the check sees the repository's calls (%d found)" % total)
for area, found in results:
    tap(not found, "no untyped literal argument in %s%s" % (area, "" if area.endswith(".md") else "/"),
        found)
sys.exit(1 if failed else 0)
EOF
