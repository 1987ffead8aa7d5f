"""Import every feature's models so that Base.metadata knows every table."""

from vault.accounts.models import Invite, User, UserKey
from vault.cases.models import Case, CaseMember

# -- feature models --
from vault.directory.models import LogEntry, LogKey, LogNode, TreeHeadRow

__all__ = [
    "Case",
    "CaseMember",
    "Invite",
    "LogEntry",
    "LogKey",
    "LogNode",
    "TreeHeadRow",
    "User",
    "UserKey",
]
