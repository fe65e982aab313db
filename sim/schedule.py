"""The visit schedule, time units and visit status labels: the one place they are spelled.

Pain is assessed at weeks 0 (baseline), 1, 4, 8 and 12; survival times are in months of
30.4375 days (365.25 / 12), so one week is 7 / 30.4375 months. A visit's status is one of
:data:`STATUS_LABELS` (``visits.status`` in a cohort).
"""

from __future__ import annotations

#: assessment weeks, baseline first
WEEKS: tuple[int, ...] = (0, 1, 4, 8, 12)
#: post-baseline assessment weeks
POST_WEEKS: tuple[int, ...] = WEEKS[1:]
#: the primary assessment week (the study's week-12 endpoints)
PRIMARY_WEEK = 12
#: days per month (survival times are in months)
DAYS_PER_MONTH = 30.4375
#: months per week
MONTHS_PER_WEEK = 7.0 / DAYS_PER_MONTH
#: post-baseline visit times in months
VISIT_MONTHS: tuple[float, ...] = tuple(w * MONTHS_PER_WEEK for w in POST_WEEKS)
#: end of the 12-week patient-reported-outcome window, in months
W12_MONTHS = PRIMARY_WEEK * MONTHS_PER_WEEK
#: visit status labels, in code order (0 observed ... 3 dead)
STATUS_LABELS: tuple[str, ...] = ("observed", "missed", "dropout", "dead")
OBSERVED, MISSED, DROPOUT, DEAD = STATUS_LABELS
