"""Verdicts: a run's rating (1-5), keeper/reject marks on its epochs, notes with an author, tags.

Each method is the one library call behind both ``orchestrator runs rate/note/tag`` and the web UI's forms: it
checks its input first and raises :class:`~orchestrator.errors.InputError` (with a hint) before anything is written,
then writes in one transaction. Runs are named as everywhere else: id, unique id prefix or unique name.

Ratings entered here are kept apart from the one imported from the users' history (``runs.rating``, 0-10): the run's
rating is the latest entered here, else the imported one (the views do the same; see ``migrations/views_v4.py``).
"""

from __future__ import annotations

import getpass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orchestrator.errors import InputError
from orchestrator.tracking.entities import EpochMarkRecord, NoteRecord, RatingRecord, RunTags, TagRecord, Verdicts
from orchestrator.tracking.models import (
    AUTHOR_MAX,
    EPOCH_MARKS,
    RATING_MAX,
    RATING_MIN,
    TAG_MAX,
    Checkpoint,
    Run,
    RunEpochMark,
    RunEpochScore,
    RunNote,
    RunRating,
    RunTag,
)
from orchestrator.tracking.runs import find_run
from orchestrator.tracking.session import SessionScope, aware, utcnow

TAG_ACTIONS = ("add", "remove")


def default_author() -> str:
    """Who is entering a verdict when nobody says: the OS user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return "unknown"


class VerdictRepository(SessionScope):
    """Ratings, epoch marks, notes and tags of runs."""

    def rate_run(self, run_ref: str, score: int | str, *, author: str | None = None) -> RatingRecord:
        """Rate a run 1-5 (a number, or its digits as typed into a form); every rating is kept and the latest one
        counts."""
        rating_hint = f"a rating is a whole number from {RATING_MIN} to {RATING_MAX}"
        score = _whole_number(score, "rating", rating_hint)
        if not RATING_MIN <= score <= RATING_MAX:
            raise InputError(f"rating {score} is out of range", rating_hint)
        who = _checked_author(author)
        with self._session() as session:
            row = RunRating(run_id=find_run(session, run_ref).id, score=score, author=who, created_at=utcnow())
            session.add(row)
            session.flush()
            return _rating(row)

    def mark_epoch(self, run_ref: str, epoch: int | str, mark: str, *, author: str | None = None
                   ) -> EpochMarkRecord:
        """Mark one epoch of a run keeper or reject (replacing an earlier mark). The epoch must exist: the run has a
        checkpoint or scores for it."""
        epoch = _whole_number(epoch, "epoch", "an epoch is a whole number, e.g. 3")
        if mark not in EPOCH_MARKS:
            raise InputError(f"unknown epoch mark {mark!r}", f"use one of {', '.join(EPOCH_MARKS)}")
        who = _checked_author(author)
        with self._session() as session:
            run = find_run(session, run_ref)
            epochs = _known_epochs(session, run.id)
            if epoch not in epochs:
                known = ", ".join(str(e) for e in sorted(epochs)) or "none yet"
                raise InputError(f"run {run.id} has no epoch {epoch!r}",
                                 f"epochs with a checkpoint or scores: {known}")
            row = session.get(RunEpochMark, (run.id, epoch))
            if row is None:
                row = RunEpochMark(run_id=run.id, epoch=epoch)
                session.add(row)
            row.mark, row.author, row.marked_at = mark, who, utcnow()
            session.flush()
            return _mark(row)

    def add_note(self, run_ref: str, text: str, *, author: str | None = None) -> NoteRecord:
        """Add a timestamped note to a run."""
        body = (text or "").strip()
        if not body:
            raise InputError("a note cannot be empty", "give the note's text, e.g. `runs note RUN \"too dark\"`")
        who = _checked_author(author)
        with self._session() as session:
            row = RunNote(run_id=find_run(session, run_ref).id, author=who, text=body, created_at=utcnow())
            session.add(row)
            session.flush()
            return _note(row)

    def tag_run(self, run_ref: str, action: str, tag: str, *, author: str | None = None) -> RunTags:
        """Add or remove a tag of a run; returns the tags entered here afterwards. Adding a tag the run has, or
        removing one it lacks, changes nothing. Only tags entered here can be removed (the spec's stay)."""
        if action not in TAG_ACTIONS:
            raise InputError(f"unknown tag action {action!r}", f"use one of {', '.join(TAG_ACTIONS)}")
        name = checked_tag(tag)
        who = _checked_author(author)
        with self._session() as session:
            run_id = find_run(session, run_ref).id
            row = session.get(RunTag, (run_id, name))
            if action == "add" and row is None:
                session.add(RunTag(run_id=run_id, tag=name, author=who, added_at=utcnow()))
            elif action == "remove" and row is not None:
                session.delete(row)
            session.flush()
            tags = session.scalars(sa.select(RunTag.tag).where(RunTag.run_id == run_id).order_by(RunTag.tag))
            return RunTags(run_id=run_id, tags=tuple(tags))

    def verdicts(self, run_ref: str) -> Verdicts:
        """Everything entered about a run, and its rating as the views see it."""
        with self._session() as session:
            run = find_run(session, run_ref)
            return _verdicts(session, run)


def checked_tag(tag: str) -> str:
    """A tag as stored: trimmed, non-empty, at most TAG_MAX characters."""
    name = (tag or "").strip()
    if not name:
        raise InputError("a tag cannot be empty", "give a word, e.g. `runs tag RUN add keeper`")
    if len(name) > TAG_MAX:
        raise InputError(f"tag {name[:20]!r}… is {len(name)} characters long", f"a tag has at most {TAG_MAX}")
    return name


def _whole_number(value: int | str, what: str, hint: str) -> int:
    # Forms hand over text; a bool is an int to Python but never a rating or an epoch.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InputError(f"{what} {value!r} is not a whole number", hint)


def _checked_author(author: str | None) -> str:
    who = default_author() if author is None else author.strip()
    if not who:
        raise InputError("the author cannot be empty", "leave --author out to use your user name")
    if len(who) > AUTHOR_MAX:
        raise InputError(f"the author name is {len(who)} characters long", f"an author has at most {AUTHOR_MAX}")
    return who


def _known_epochs(session: Session, run_id: str) -> set[int]:
    checkpoints = sa.select(Checkpoint.epoch).where(Checkpoint.run_id == run_id, Checkpoint.epoch.is_not(None))
    scores = sa.select(RunEpochScore.epoch).where(RunEpochScore.run_id == run_id)
    return set(session.scalars(sa.union(checkpoints, scores)))


def _verdicts(session: Session, run: Run) -> Verdicts:
    ratings = tuple(_rating(r) for r in session.scalars(
        sa.select(RunRating).where(RunRating.run_id == run.id).order_by(RunRating.id)))
    marks = tuple(_mark(m) for m in session.scalars(
        sa.select(RunEpochMark).where(RunEpochMark.run_id == run.id).order_by(RunEpochMark.epoch)))
    notes = tuple(_note(n) for n in session.scalars(
        sa.select(RunNote).where(RunNote.run_id == run.id).order_by(RunNote.id)))
    tags = tuple(TagRecord(run_id=t.run_id, tag=t.tag, author=t.author, added_at=aware(t.added_at))
                 for t in session.scalars(sa.select(RunTag).where(RunTag.run_id == run.id).order_by(RunTag.tag)))
    if ratings:
        rating, source = ratings[-1].score, "entered"
    elif run.rating is not None:
        rating, source = run.rating, "imported"
    else:
        rating, source = None, None
    return Verdicts(run_id=run.id, rating=rating, rating_source=source, imported_rating=run.rating,
                    ratings=ratings, epoch_marks=marks, notes=notes, tags=tags)


def _rating(row: RunRating) -> RatingRecord:
    return RatingRecord(id=row.id, run_id=row.run_id, score=row.score, author=row.author,
                        created_at=aware(row.created_at))


def _mark(row: RunEpochMark) -> EpochMarkRecord:
    return EpochMarkRecord(run_id=row.run_id, epoch=row.epoch, mark=row.mark, author=row.author,
                           marked_at=aware(row.marked_at))


def _note(row: RunNote) -> NoteRecord:
    return NoteRecord(id=row.id, run_id=row.run_id, author=row.author, text=row.text,
                      created_at=aware(row.created_at))
