"""Case membership: who works with whom."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from vault.accounts.models import Role, User
from vault.audit import services as audit
from vault.audit.models import EventKind
from vault.cases.models import Case, CaseMember
from vault.errors import Conflict, Forbidden, NotFound


def list_cases(db: Session, user: User) -> list[Case]:
    """The cases the account belongs to, oldest first."""
    query = (
        select(Case)
        .join(CaseMember, CaseMember.case_id == Case.id)
        .where(CaseMember.user_id == user.id)
        .options(selectinload(Case.members))
        .order_by(Case.created_at, Case.id)
    )
    return list(db.scalars(query))


def get_case(db: Session, user: User, case_id: str) -> Case:
    """A case the account belongs to; NotFound for every other case, existing or not."""
    member = db.get(CaseMember, (case_id, user.id))
    if member is None:
        raise NotFound("no such case")
    return member.case


def shares_case(db: Session, user_id: str, other_id: str) -> bool:
    """Whether two accounts are members of a common case."""
    mine = select(CaseMember.case_id).where(CaseMember.user_id == user_id)
    query = select(CaseMember.case_id).where(
        CaseMember.user_id == other_id, CaseMember.case_id.in_(mine)
    )
    return db.scalars(query.limit(1)).first() is not None


def contact_keys(db: Session, user: User, other_id: str) -> User:
    """Another account whose keys the caller may see: itself or someone in a shared case."""
    if other_id != user.id and not shares_case(db, user.id, other_id):
        raise NotFound("no such account")
    other = db.get(User, other_id)
    if other is None:
        raise NotFound("no such account")
    return other


def add_counsel(db: Session, user: User, case_id: str, counsel: User | None) -> Case:
    """A counsel of the case adds another counsel; the survivor sees who added whom, when."""
    case = get_case(db, user, case_id)
    mine = db.get(CaseMember, (case.id, user.id))
    if mine is None or mine.role != Role.COUNSEL:
        raise Forbidden("only a counsel of the case may add counsel")
    if counsel is None or counsel.role != Role.COUNSEL or counsel.is_disabled:
        raise NotFound("no such counsel", code="no_such_counsel")
    if db.get(CaseMember, (case.id, counsel.id)) is not None:
        raise Conflict("already a member of this case", code="already_member")
    db.add(CaseMember(case_id=case.id, user_id=counsel.id, role=Role.COUNSEL, added_by=user.id))
    audit.record(
        db,
        EventKind.MEMBER_ADD,
        case_id=case.id,
        owner_id=case.survivor_id,
        actor_id=user.id,
        subject_id=counsel.id,
    )
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict("already a member of this case", code="already_member") from exc
    db.refresh(case)
    return case
