"""Import every feature's models so that Base.metadata knows every table."""

from vault.accounts.models import Invite, User, UserKey
from vault.cases.models import Case, CaseMember

# -- feature models --

__all__ = ["Case", "CaseMember", "Invite", "User", "UserKey"]
