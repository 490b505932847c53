"""The reference side of tests/cron_croniter.rs: Python's croniter, with
implement_cron_bug=True, which combines the two day fields as cronie does
(AND when either field's text starts with "*", else OR).

Reads JSON lines {"expr": ..., "start": UNIX_SECONDS, "count": N} on stdin
and answers each with one line: {"next": [UNIX_SECONDS, ...]} with up to N
fire times strictly after start, in UTC, and "never": true when croniter
found no further time within 401 years; or {"error": "..."} when croniter
refuses the expression. The first line out is {"croniter": VERSION}.

The only rewrite: cronq writes the last Friday of the month "5L" (Quartz),
croniter "L5".
"""

import json
import re
import sys
from datetime import datetime, timezone
from importlib.metadata import version

from croniter import CroniterBadDateError, CroniterError, croniter

LAST_WEEKDAY = re.compile(r"^([0-7])[lL]$")


def croniter_syntax(expr):
    fields = re.findall(r"[^ \t]+", expr)
    if len(fields) == 5:
        m = LAST_WEEKDAY.match(fields[4])
        if m:
            fields[4] = "L" + m.group(1)
    return " ".join(fields)


def answer(case):
    start = datetime.fromtimestamp(case["start"], timezone.utc)
    try:
        it = croniter(
            croniter_syntax(case["expr"]),
            start,
            implement_cron_bug=True,
            max_years_between_matches=401,
        )
    except CroniterError as e:
        return {"error": f"{type(e).__name__}: {e}"}
    times = []
    try:
        for _ in range(case["count"]):
            times.append(int(it.get_next(float)))
    except CroniterBadDateError:
        return {"next": times, "never": True}
    return {"next": times}


def main():
    out = sys.stdout
    out.write(json.dumps({"croniter": version("croniter")}) + "\n")
    out.flush()
    for line in sys.stdin:
        if line.strip():
            out.write(json.dumps(answer(json.loads(line))) + "\n")
    out.flush()


main()
