"""Case membership: who works with whom."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from vault.accounts.models import Role, User
from vault.audit import services as audit
from vault.audit.models import EventKind
from vault.cases.models import Case, CaseMember, CaseMemberRequest
from vault.errors import Conflict, Forbidden, NotFound

# Called inside the transaction that removes a member, with (db, case_id, user_id, actor_id):
# features above cases (documents) register what must go with the membership.
MemberRemovedHook = Callable[[Session, str, str, str], None]
_member_removed_hooks: list[MemberRemovedHook] = []


def on_member_removed(hook: MemberRemovedHook) -> MemberRemovedHook:
    """Register a hook run when a counsel leaves a case (no commit inside a hook)."""
    if hook not in _member_removed_hooks:
        _member_removed_hooks.append(hook)
    return hook


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


def _lock_case(db: Session, case_id: str) -> None:
    """Hold the case's row until the transaction ends: membership changes take turns."""
    db.execute(select(Case.id).where(Case.id == case_id).with_for_update())


def _survivors_case(db: Session, user: User, case_id: str) -> Case:
    """A case whose survivor is the caller; NotFound for strangers, Forbidden for counsel."""
    case = get_case(db, user, case_id)
    if case.survivor_id != user.id:
        raise Forbidden("only the case's survivor may do this", code="survivor_only")
    return case


def request_counsel(db: Session, user: User, case_id: str, counsel: User | None) -> None:
    """A counsel of the case asks to bring in another counsel; the survivor decides.

    Whatever ``counsel`` is (no account, a survivor, an admin, a disabled account, a member
    already, a request already pending), the caller learns nothing: only a request for an
    active counsel who is neither a member nor pending is stored, with an event that only
    the survivor sees.
    """
    case = get_case(db, user, case_id)
    mine = db.get(CaseMember, (case.id, user.id))
    if mine is None or mine.role != Role.COUNSEL:
        raise Forbidden("only a counsel of the case may ask to add counsel")
    if counsel is None or counsel.role != Role.COUNSEL or counsel.is_disabled:
        db.rollback()
        return
    _lock_case(db, case.id)
    pending = db.scalars(
        select(CaseMemberRequest.id).where(
            CaseMemberRequest.case_id == case.id, CaseMemberRequest.counsel_id == counsel.id
        )
    ).first()
    if pending is not None or db.get(CaseMember, (case.id, counsel.id)) is not None:
        db.rollback()
        return
    db.add(CaseMemberRequest(case_id=case.id, counsel_id=counsel.id, requested_by=user.id))
    audit.record(
        db,
        EventKind.MEMBER_REQUEST,
        case_id=case.id,
        owner_id=case.survivor_id,
        actor_id=user.id,
        subject_id=counsel.id,
    )
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # the same request, stored by a concurrent call


def member_requests(db: Session, user: User, case_id: str) -> list[CaseMemberRequest]:
    """The requests waiting for the survivor's answer, oldest first (the survivor only)."""
    case = _survivors_case(db, user, case_id)
    query = (
        select(CaseMemberRequest)
        .where(CaseMemberRequest.case_id == case.id)
        .order_by(CaseMemberRequest.requested_at, CaseMemberRequest.id)
    )
    return list(db.scalars(query))


def _pending(db: Session, case: Case, request_id: str) -> CaseMemberRequest:
    request = db.scalars(
        select(CaseMemberRequest)
        .where(CaseMemberRequest.id == request_id, CaseMemberRequest.case_id == case.id)
        .with_for_update()
    ).first()
    if request is None:
        raise NotFound("no such request")
    return request


def approve_request(db: Session, user: User, case_id: str, request_id: str) -> Case:
    """The survivor lets the requested counsel into the case; from now on they are a member."""
    case = _survivors_case(db, user, case_id)
    _lock_case(db, case.id)
    request = _pending(db, case, request_id)
    counsel = db.get(User, request.counsel_id)
    if counsel is None or counsel.is_disabled:
        raise Conflict("that counsel account is disabled", code="counsel_disabled")
    db.add(
        CaseMember(
            case_id=case.id, user_id=counsel.id, role=Role.COUNSEL, added_by=request.requested_by
        )
    )
    db.delete(request)
    audit.record(
        db,
        EventKind.MEMBER_ADD,
        case_id=case.id,
        owner_id=case.survivor_id,
        actor_id=user.id,
        subject_id=counsel.id,
    )
    db.commit()
    db.refresh(case)
    return case


def decline_request(db: Session, user: User, case_id: str, request_id: str) -> None:
    """The survivor refuses; the request goes, leaving only the survivor's own events."""
    case = _survivors_case(db, user, case_id)
    _lock_case(db, case.id)
    request = _pending(db, case, request_id)
    counsel_id = request.counsel_id
    db.delete(request)
    audit.record(
        db,
        EventKind.MEMBER_DECLINE,
        case_id=case.id,
        owner_id=case.survivor_id,
        actor_id=user.id,
        subject_id=counsel_id,
    )
    db.commit()


def remove_counsel(db: Session, user: User, case_id: str, counsel_id: str) -> None:
    """The survivor takes a counsel out of the case: membership and their grants go at once."""
    case = _survivors_case(db, user, case_id)
    _lock_case(db, case.id)
    member = db.get(CaseMember, (case.id, counsel_id))
    if member is None or member.role != Role.COUNSEL:
        raise NotFound("no such counsel in this case")
    # The membership goes first: that waits for any grant to them under way (it holds a
    # share lock on the row), so the hooks below then see it and delete it too.
    db.delete(member)
    db.flush()
    for hook in _member_removed_hooks:
        hook(db, case.id, counsel_id, user.id)
    audit.record(
        db,
        EventKind.MEMBER_REMOVE,
        case_id=case.id,
        owner_id=case.survivor_id,
        actor_id=user.id,
        subject_id=counsel_id,
    )
    db.commit()
