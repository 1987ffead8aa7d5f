"""Import every feature's models so that Base.metadata knows every table."""

from vault.accounts.models import DuressLink, Invite, User, UserKey

# -- feature models --
from vault.audit.models import Event
from vault.cases.models import Case, CaseMember, CaseMemberRequest
from vault.contacts.models import ContactBook
from vault.directory.models import LogEntry, LogKey, LogNode, TreeHeadRow
from vault.documents.models import Document, Grant, UploadPart
from vault.figures.models import Budget, Outcome, Release
from vault.intake.models import (
    IntakeAttachment,
    IntakeAttachmentPart,
    IntakeChallenge,
    IntakeEntry,
    IntakeReport,
    IntakeReportKey,
    IntakeTeamMember,
)
from vault.links.models import Link, LinkDocument, LinkOpen
from vault.messages.models import (
    Conversation,
    ConversationMember,
    Message,
    MessageClock,
    MessageEvent,
    MessageGrant,
    MessageReseal,
)
from vault.ops.models import JobRun

__all__ = [
    "Budget",
    "Case",
    "CaseMember",
    "CaseMemberRequest",
    "ContactBook",
    "Conversation",
    "ConversationMember",
    "Document",
    "DuressLink",
    "Event",
    "Grant",
    "IntakeAttachment",
    "IntakeAttachmentPart",
    "IntakeChallenge",
    "IntakeEntry",
    "IntakeReport",
    "IntakeReportKey",
    "IntakeTeamMember",
    "Invite",
    "JobRun",
    "Link",
    "LinkDocument",
    "LinkOpen",
    "LogEntry",
    "LogKey",
    "LogNode",
    "Message",
    "MessageClock",
    "MessageEvent",
    "MessageGrant",
    "MessageReseal",
    "Outcome",
    "Release",
    "TreeHeadRow",
    "UploadPart",
    "User",
    "UserKey",
]
