"""The therapist's views: a client's progress report (HTML) and the caseload overview.

Both are built from a client's state and ledger only, and show only what the client shares
(`SHARE_ITEMS`, item by item and session by session; docs/therapists.md). Reading the data
— and logging that read in the client's ledger — is the service's job
(:meth:`bot.service.Rehearsal.read_record`); this package only turns it into views.
"""

from bot.report._agreement import agreement_text, change_words
from bot.report._caseload import (
    CASELOAD_KINDS,
    CRISIS_FLAG,
    RATING_FLAG,
    CaseloadLine,
    caseload_line,
    caseload_messages,
    caseload_table,
)
from bot.report._html import render_report
from bot.report._progress import REPORT_KINDS, Chart, ProgressReport, Table, progress_report
from bot.report._shares import SHARE_ITEMS, SHARED, WITHDRAWN, Session, shared_sessions
from bot.report._status import client_status

__all__ = [
    "CASELOAD_KINDS",
    "CRISIS_FLAG",
    "RATING_FLAG",
    "REPORT_KINDS",
    "SHARED",
    "SHARE_ITEMS",
    "WITHDRAWN",
    "CaseloadLine",
    "Chart",
    "ProgressReport",
    "Session",
    "Table",
    "agreement_text",
    "caseload_line",
    "caseload_messages",
    "caseload_table",
    "change_words",
    "client_status",
    "progress_report",
    "render_report",
    "shared_sessions",
]
