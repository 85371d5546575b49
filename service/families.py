"""Families and children: who a case is about, found again by name, date of birth or number.

A child is a :class:`~service.models.Person` in a :class:`~service.models.Family`; every case names its
family and, when it is about one child, that child (``Case.family_id``, ``Case.child_id``). Names, dates of
birth and numbers are personal data, encrypted at rest like case data, so SQL cannot compare them. They
are found through a **blind index** (``search_tokens``): for each person, HMAC-SHA256 digests of

* every trigram and the first one and two letters of each word of their names (partial search),
* their whole given name, family name and full name (duplicates),
* their date of birth, NHS number and council number,

each value normalised first (accents dropped, case folded, punctuation to spaces) and each digest keyed by
a key derived from the data key and the council (``service.encryption.search_key``), so equal values give
equal digests within one council and nothing else. A search computes the digests of what was typed and
finds the people holding them in SQL; the candidates' names are then decrypted and checked, so a trigram
that matched out of order never shows. A search that matches more than :data:`SEARCH_LIMIT` children (a letter,
or a common surname at a large council's size) reads no more than that and asks for more of the name
(:class:`TooManyMatches`). No HTTP here: the API and the pages call this module.

Who may see what (``service.policy``): the people and families of the council (names, dates of birth,
numbers, who belongs to which family) are for every worker of the council (``policy.may_see_people``): the
front door must know whether a child is already known before opening another referral. What happens in a
case, and that a case exists at all, stays for whoever may see that case (``policy.may_see_case``): a
family's case list and its chronology hold only those cases.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session, selectinload

from service import access_log, encryption, paging, policy
from service.deployments import process_definition
from service.engine import clock
from service.auth import display_names
from service.errors import Forbidden, InvalidData, NotFound
from service.models import AuditEvent, Case, Family, Person, SearchToken
from service.policy import Actor

NAME_MAX = 80
NUMBER_MAX = 40
#: An unborn child is referred with the expected date of birth: up to 40 weeks ahead.
UNBORN_WEEKS = 40
CHILD_FIELDS = ("given_name", "family_name", "date_of_birth", "council_number", "nhs_number")
_MONTHS = {m: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july", "august",
                                       "september", "october", "november", "december"), start=1)}


#: The most children one search by name, number or date of birth reads and checks (each candidate's names are
#: decrypted to check the order of its letters). A letter matched 17,355 of 100,000 children and 172,364 of a
#: million: 1.7 s and 55 MiB for one request, and 15 s. More than this, and the search asks for more of it.
SEARCH_LIMIT = 2_000


class TooManyMatches(InvalidData):
    """A search (``q``) that matches more children than :data:`SEARCH_LIMIT`: 422, asking for more of it."""

    def __init__(self, text: str) -> None:
        super().__init__(f"more than {SEARCH_LIMIT:,} children match '{text}'",
                         {"q": f"More than {SEARCH_LIMIT:,} children match \u201c{text}\u201d: enter more of the "
                               f"name, a date of birth, or an NHS, council or case number"})


# -- normalising and checking ------------------------------------------------------------------

def normalise(text: str | None) -> str:
    """Lower case, no accents, letters and digits only, single spaces: 'Zoë  O'Brien-Smith' -> 'zoe o brien smith'."""
    if not text:
        return ""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", plain.casefold().replace("_", " ")).split())


def nhs_number_valid(number: str) -> bool:
    """Ten digits whose last is the modulus 11 check digit of the first nine (weights 10 down to 2)."""
    digits = re.sub(r"[\s-]", "", number or "")
    if not re.fullmatch(r"\d{10}", digits):
        return False
    remainder = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1))) % 11
    check = 11 - remainder
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def parse_date(value: Any) -> date | None:
    """A date as people type it: 2015-03-09, 9/3/2015, 9-3-2015, 9 March 2015, 9 Mar 2015; else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, dict):
        value = f"{value.get('day', '')}/{value.get('month', '')}/{value.get('year', '')}"
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    try:
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := re.fullmatch(r"(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})", text):
            return date(int(m[3]), int(m[2]), int(m[1]))
        if m := re.fullmatch(r"(\d{1,2})\s+([a-z]+)\s+(\d{4})", text):
            month = next((n for name, n in _MONTHS.items() if len(m[2]) >= 3 and name.startswith(m[2])), None)
            return date(int(m[3]), month, int(m[1])) if month else None
    except ValueError:
        return None
    return None


def clean_child(data: Any) -> dict[str, Any]:
    """A child's details checked: names required, date of birth a real date (not more than 40 weeks ahead:
    an unborn child), NHS number with a right check digit. 422 names each wrong field (``child.<field>``)."""
    if not isinstance(data, dict):
        raise InvalidData("the child must be an object", {"child": "Give the child's given_name, family_name "
                                                                   "and date_of_birth"})
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for key, label in (("given_name", "first name"), ("family_name", "last name")):
        value = data.get(key)
        value = " ".join(value.split()) if isinstance(value, str) else ""
        if not value:
            errors[f"child.{key}"] = f"Enter the child's {label}"
        elif len(value) > NAME_MAX or not normalise(value):
            errors[f"child.{key}"] = f"The child's {label} must be at most {NAME_MAX} characters and have letters"
        cleaned[key] = value
    born = data.get("date_of_birth")
    if born in (None, "", {}) or (isinstance(born, dict) and not any(born.values())):
        cleaned["date_of_birth"] = None
    else:
        parsed = parse_date(born)
        if parsed is None:
            errors["child.date_of_birth"] = "Date of birth must be a real date, like 27 3 2015"
        elif parsed > clock.now().date() + timedelta(weeks=UNBORN_WEEKS):
            errors["child.date_of_birth"] = "Date of birth must be in the past (or, for an unborn child, the " \
                                            "expected date, at most 40 weeks ahead)"
        elif parsed.year < 1900:
            errors["child.date_of_birth"] = "Date of birth must be after 1900"
        cleaned["date_of_birth"] = parsed.isoformat() if parsed else None
    nhs = data.get("nhs_number")
    nhs = re.sub(r"[\s-]", "", nhs) if isinstance(nhs, str) else ""
    if nhs and not nhs_number_valid(nhs):
        errors["child.nhs_number"] = "Enter a valid NHS number: 10 digits, like 943 476 5919"
    cleaned["nhs_number"] = nhs or None
    number = data.get("council_number")
    number = number.strip() if isinstance(number, str) else ""
    if len(number) > NUMBER_MAX:
        errors["child.council_number"] = f"The council's number must be at most {NUMBER_MAX} characters"
    cleaned["council_number"] = number or None
    if errors:
        raise InvalidData("some of the child's details need correcting", errors)
    return cleaned


# -- the blind index ---------------------------------------------------------------------------

def _council_keys(council_id: int) -> list[bytes]:
    return [hmac.new(key, f"council:{council_id}".encode(), hashlib.sha256).digest()
            for key in encryption.search_keys()]


def _digest(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _name_tokens(text: str) -> set[tuple[str, str]]:
    tokens: set[tuple[str, str]] = set()
    for word in normalise(text).split():
        tokens |= {("pre", word[:n]) for n in (1, 2) if len(word) >= n}
        tokens |= {("tri", word[i:i + 3]) for i in range(len(word) - 2)}
    return tokens


def _values(person: Person) -> set[tuple[str, str]]:
    given, family = normalise(person.given_name), normalise(person.family_name)
    values = _name_tokens(person.given_name) | _name_tokens(person.family_name)
    values |= {("given", given), ("family", family), ("name", f"{given} {family}")}
    if person.date_of_birth:
        values.add(("dob", person.date_of_birth))
    if person.nhs_number:
        values.add(("nhs", person.nhs_number))
    if person.council_number:
        values.add(("number", normalise(person.council_number)))
    return values


def index(session: Session, person: Person) -> None:
    """Write the person's blind index afresh (under the current key), e.g. after their names changed."""
    key = _council_keys(person.council_id)[0]
    person.tokens = [SearchToken(council_id=person.council_id, kind=kind, digest=_digest(key, kind, value))
                     for kind, value in sorted(_values(person))]


#: People indexed again in one transaction: every child of every council is, after a key's rotation.
REINDEX_BATCH = 500


def reindex(session: Session) -> int:
    """Index every person again under the current key (after ``flask data rotate-key``); how many.

    A batch of :data:`REINDEX_BATCH` people at a time, each committed before the next is read: a search meanwhile
    finds a person under the old key or the new. Run inside ``tenancy.all_councils``: each person's digests are
    keyed by their own council."""
    count = 0
    for batch in paging.in_batches(session, select(Person), Person.id, REINDEX_BATCH):
        for person in batch:
            index(session, person)
        session.commit()
        count += len(batch)
    return count


def _holding_all(council_id: int, wanted: Iterable[tuple[str, str]]):
    """A query of the ids of the people whose index holds every (kind, value) of ``wanted`` (under any key).

    One read of the index's entries for those digests, grouped by person, who must hold each value. (A subquery
    per value made PostgreSQL plan a join of as many copies of the table: 9 ms to plan a search for a ten-letter
    name, against 2 ms to run it.)

    Grouped by an expression of the person's id, not the column: SQLite, which keeps no statistics, otherwise read
    every entry of the index by person (``ix_search_tokens_person_id``, in the group's order) to find the few of
    these digests, 25 entries a child: 50 ms a statement at 20,000 children, 8 ms through the digests' index."""
    wanted = sorted(set(wanted))
    if not wanted:
        return select(SearchToken.person_id).distinct()
    keys = _council_keys(council_id)
    value_of = {_digest(k, kind, value): n for n, (kind, value) in enumerate(wanted) for k in keys}
    person = (SearchToken.person_id + 0).label("person_id")
    return (select(person)
            .where(SearchToken.kind.in_(sorted({kind for kind, _ in wanted})), SearchToken.digest.in_(list(value_of)))
            .group_by(person)
            .having(func.count(distinct(case(value_of, value=SearchToken.digest))) == len(wanted)))


def _query_tokens(word: str) -> set[tuple[str, str]]:
    """The digests a name holding ``word`` must hold: its start (one or two letters), else trigrams that cover it
    without overlapping, the last one ending it. Each trigram is a read of every entry holding it (4,000 for a
    common one in 100,000 children): a twelve-letter name reads 4 of them, not 10. The candidates they find are
    checked letter by letter (:func:`people_matching`)."""
    if len(word) < 3:
        return {("pre", word)}
    return {("tri", word[i:i + 3]) for i in (*range(0, len(word) - 3, 3), len(word) - 3)}


#: What a search finds: each child's id and their family's.
Found = dict[int, int]


def people_matching(session: Session, council_id: int, text: str) -> Found:
    """The people whose names hold every word of ``text`` (partial, any case, accents ignored): each word
    a part of their given or family name (a word of one or two letters: the start of a name). Only their names
    are read and decrypted, to check the order of the letters: not the rest of each child."""
    words = normalise(text).split()[:5]
    if not words:
        return {}
    wanted = set().union(*(_query_tokens(w) for w in words))
    ids = _ids_holding(session, council_id, wanted, text)
    if not ids:
        return {}

    def fits(given: str, family: str) -> bool:
        names = normalise(given).split() + normalise(family).split()
        return all(any((n.startswith(w) if len(w) < 3 else w in n) for n in names) for w in words)

    named = session.execute(select(Person.id, Person.family_id, Person.given_name, Person.family_name)
                            .where(Person.id.in_(ids)))
    return {id_: family_id for id_, family_id, given, family in named
            if fits(given, family)}  # a trigram found out of order is not a match


def _ids_holding(session: Session, council_id: int, wanted: Iterable[tuple[str, str]], text: str) -> list[int]:
    """The ids of the people whose index may hold every (kind, value) of ``wanted``, at most :data:`SEARCH_LIMIT`
    of them; :class:`TooManyMatches` (for the search ``text``) when more hold them. Exact for one value; for more,
    a superset that :func:`people_matching` checks by the names.

    Each value's holders are counted first, up to the limit and one (one statement, an index range each): when one
    value has no more than the limit, its holders are the candidates, read from the index and no other value's
    entries at all. A common trigram is held by 40,000 of a million children, and the grouping of every value's
    entries (:func:`_holding_all`) read them all: 400 ms for a refusal, 800 ms for a surname 1,991 children share.
    Only a search of several values that each have more holders than the limit groups them."""
    wanted = sorted(set(wanted))
    keys = _council_keys(council_id)

    def holders(kind: str, value: str):
        return select(SearchToken.person_id).where(SearchToken.kind == kind,
                                                    SearchToken.digest.in_([_digest(k, kind, value) for k in keys]))

    rarest, size = wanted[0], 0
    if len(wanted) > 1:
        capped = [select(func.count()).select_from(holders(*w).limit(SEARCH_LIMIT + 1).subquery()).scalar_subquery()
                  for w in wanted]
        sizes = session.execute(select(*capped)).one()
        size, rarest = min(zip(sizes, wanted))
    found = (holders(*rarest) if size <= SEARCH_LIMIT else _holding_all(council_id, wanted))
    ids = session.scalars(found.limit(SEARCH_LIMIT + 1)).all()
    if len(ids) > SEARCH_LIMIT:
        raise TooManyMatches(text)
    return list(ids)


def _families_of(session: Session, ids: list[int]) -> Found:
    """``ids`` with their families' (nothing decrypted): for the searches the index answers exactly."""
    return dict(session.execute(select(Person.id, Person.family_id).where(Person.id.in_(ids))).all()) if ids else {}


def people_born(session: Session, council_id: int, born: date, text: str | None = None) -> Found:
    return _families_of(session, _ids_holding(session, council_id, [("dob", born.isoformat())],
                                              text or born.isoformat()))


def people_numbered(session: Session, council_id: int, text: str) -> Found:
    """The people whose NHS number or council number is ``text``."""
    ids: list[int] = []
    digits = re.sub(r"[\s-]", "", text)
    if re.fullmatch(r"\d{10}", digits):
        ids += _ids_holding(session, council_id, [("nhs", digits)], text)
    if normalise(text):
        ids += _ids_holding(session, council_id, [("number", normalise(text))], text)
    return _families_of(session, ids)


def search_people(session: Session, actor: Actor, text: str) -> Found:
    """Whoever ``text`` names (a date of birth, an NHS or council number, or parts of names): each one's id and
    their family's. A list shows its page of them (:func:`search_people_paged`); a search of cases needs no more."""
    policy.require_people(actor)
    council = _council(actor)
    born = parse_date(text)
    if born is not None:
        return people_born(session, council, born, text)
    return people_numbered(session, council, text) | people_matching(session, council, text)


def likely_duplicates(session: Session, actor: Actor, child: dict[str, Any]) -> list[Person]:
    """People who are probably this child: the same NHS number; or born the same day with the same given or
    family name; or, without a date of birth, the same full name."""
    policy.require_people(actor)
    council = _council(actor)
    given, family = normalise(child.get("given_name")), normalise(child.get("family_name"))
    found: dict[int, Person] = {}
    queries = []
    if child.get("nhs_number"):
        queries.append([("nhs", child["nhs_number"])])
    if child.get("date_of_birth"):
        queries += [[("dob", child["date_of_birth"]), ("given", given)],
                    [("dob", child["date_of_birth"]), ("family", family)]]
    else:
        queries.append([("name", f"{given} {family}")])
    for wanted in queries:
        for person in session.scalars(select(Person).where(Person.id.in_(_holding_all(council, wanted)))):
            found[person.id] = person
    return sorted(found.values(), key=lambda p: p.id)


def _council(actor: Actor) -> int:
    if actor.council_id is None:
        raise Forbidden("this needs a council to act for")
    return actor.council_id


# -- families and people -----------------------------------------------------------------------

def create_family(session: Session, actor: Actor, name: str | None = None) -> Family:
    policy.require_people(actor)
    name = " ".join(name.split()) if isinstance(name, str) else ""
    if len(name) > 120:
        raise InvalidData("the family's name is too long", {"name": "Enter at most 120 characters"})
    family = Family(name=name or None, created_by=actor.name, created_at=clock.now())
    session.add(family)
    session.flush()
    return family


def add_child(session: Session, actor: Actor, family: Family, child: Any) -> Person:
    """A child of ``family`` (details checked by :func:`clean_child`), indexed for search."""
    policy.require_people(actor)
    cleaned = clean_child(child)
    person = Person(family=family, created_by=actor.name, created_at=clock.now(), **cleaned)
    session.add(person)
    session.flush()
    if not family.name:
        family.name = f"{person.family_name} family"
    index(session, person)
    session.flush()
    return person


def get_family(session: Session, family_id: int, actor: Actor) -> Family:
    family = session.get(Family, family_id)  # another council's family is not there (service.tenancy): 404
    if family is None:
        raise NotFound(f"there is no family {family_id}")
    policy.require_people(actor)
    return family


def get_person(session: Session, person_id: int, actor: Actor) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"there is no person {person_id}")
    policy.require_people(actor)
    return person


def list_families(session: Session, actor: Actor, text: str | None = None, *, page: int = 1,
                  per_page: int = 50) -> tuple[list[Family], int]:
    """The council's families, newest first, a page at a time, with how many there are (counted up to
    :data:`service.paging.COUNT_CAP` and one: more means "more than that"); with ``text``, those with a child it
    names. Without ``text`` the page is read from an index in the list's order (``ix_families_council_newest``)."""
    policy.require_people(actor)
    query = select(Family)
    if text:
        query = query.where(Family.id.in_(set(search_people(session, actor, text).values())))
    total = paging.capped_count(session, query.with_only_columns(Family.id))
    # The page's families' children in one more statement, not one per family.
    rows = session.scalars(query.order_by(Family.created_at.desc(), Family.id.desc())
                           .options(selectinload(Family.people)).limit(per_page).offset((page - 1) * per_page))
    return list(rows), total


def search_people_paged(session: Session, actor: Actor, text: str | None, date_of_birth: str | None, *,
                        page: int = 1, per_page: int = 50) -> tuple[list[Person], int]:
    """People by name (parts of), or number, and/or date of birth: both given, people matching both; newest
    first, a page at a time, with how many match. With neither, the council's people, a page read from an index
    (``ix_people_council_newest``) and counted up to :data:`service.paging.COUNT_CAP` and one: a council's
    children number as many as its cases, so a list of everyone reads its page, never every person (each
    decrypted)."""
    policy.require_people(actor)
    council = _council(actor)
    sets: list[Found] = []
    if text:
        sets.append(search_people(session, actor, text))
    if date_of_birth:
        born = parse_date(date_of_birth)
        if born is None:
            raise InvalidData("that is not a date", {"date_of_birth": "Enter a real date, like 2015-03-27"})
        sets.append(people_born(session, council, born))
    if not sets:
        everyone = select(Person)
        rows = session.scalars(everyone.order_by(Person.id.desc()).limit(per_page).offset((page - 1) * per_page))
        return list(rows), paging.capped_count(session, everyone.with_only_columns(Person.id))
    ids = sorted(set(sets[0]).intersection(*sets[1:]), reverse=True)
    shown = ids[(page - 1) * per_page: page * per_page]  # the page's children, read whole; the rest were counted
    people = session.scalars(select(Person).where(Person.id.in_(shown)).order_by(Person.id.desc())) if shown else []
    return list(people), len(ids)


def visible_cases(session: Session, cases: Iterable[Case], actor: Actor) -> list[Case]:
    return [c for c in cases if policy.may_see_case(process_definition(session, c.process).roles, c.started_by_id, actor)
            and c.status != "erased"]


def family_cases(session: Session, family: Family, actor: Actor) -> list[Case]:
    """The family's cases ``actor`` may see, oldest first: a hand-over follows the case it came from."""
    cases = session.scalars(select(Case).where(Case.family_id == family.id).order_by(Case.created_at, Case.id))
    return visible_cases(session, cases, actor)


def person_cases(session: Session, person: Person, actor: Actor) -> list[Case]:
    cases = session.scalars(select(Case).where(Case.child_id == person.id).order_by(Case.created_at, Case.id))
    return visible_cases(session, cases, actor)


def forget_unless_needed(session: Session, case: Case) -> None:
    """A case being erased (``service.retention``) lets go of its child and family; a child no other case
    names is erased with it (their record and index), and so is a family left with no child and no case."""
    child_id, family_id = case.child_id, case.family_id
    case.child_id = case.family_id = None
    session.flush()
    if child_id is not None and session.scalar(select(func.count()).where(Case.child_id == child_id)) == 0:
        person = session.get(Person, child_id)
        if person is not None:
            session.delete(person)  # its search tokens go with it (cascade)
            session.flush()
    if family_id is not None and not session.scalar(select(func.count()).where(Case.family_id == family_id)) \
            and not session.scalar(select(func.count()).where(Person.family_id == family_id)):
        family = session.get(Family, family_id)
        if family is not None:
            session.delete(family)


# -- starting a case about a child ---------------------------------------------------------------

@dataclass
class Subject:
    """Whom a case about to start is about: an existing family and child, or new ones to record."""

    family: Family | None = None
    child: Person | None = None
    new_child: dict[str, Any] | None = None  # checked details of a child to add
    new_family: bool = False

    def record(self, session: Session, actor: Actor) -> tuple[Family | None, Person | None]:
        """Write the new family and child, if any (after the engine ran: no lock is held while it runs)."""
        if self.new_family:
            self.family = create_family(session, actor)
        if self.new_child is not None:
            self.child = add_child(session, actor, self.family, self.new_child)
        return self.family, self.child


def subject_for_start(session: Session, actor: Actor, *, child: Any = None, child_id: int | None = None,
                      family_id: int | None = None, started_from: Case | None = None) -> Subject:
    """Check whom a new case is about, before anything is written; a hand-over keeps its case's family and child.

    ``child_id``: an existing child (their family, unless ``family_id`` says the same). ``child``: a new
    child, in family ``family_id`` or in a new family. Only ``family_id``: the family, no one child. None:
    no family (cases started by other systems before families existed keep working).
    """
    if started_from is not None:
        return Subject(family=session.get(Family, started_from.family_id) if started_from.family_id else None,
                       child=session.get(Person, started_from.child_id) if started_from.child_id else None)
    if child is None and child_id is None and family_id is None:
        return Subject()
    family = get_family(session, family_id, actor) if family_id is not None else None
    if child_id is not None:
        person = get_person(session, child_id, actor)
        if family is not None and person.family_id != family.id:
            raise InvalidData("the child is not in that family", {"child_id": "This child belongs to another family"})
        return Subject(family=person.family, child=person)
    if child is not None:
        return Subject(family=family, new_child=clean_child(child), new_family=family is None)
    return Subject(family=family)


# -- the chronology ----------------------------------------------------------------------------

@dataclass
class Entry:
    """One line of a family's chronology."""

    at: datetime
    kind: str  # case | step | decision | handover | assignment | message | note | document | ...
    case_id: int
    case_reference: str
    pathway: str
    title: str
    text: str | None = None
    actor: str | None = None
    source: str = "audit"
    detail: dict[str, Any] = field(default_factory=dict)
    order: int = 0  # ties at the same instant: the later written first


#: Where chronology entries come from: each source takes (session, the cases the actor may see, actor) and
#: gives entries. The audit log of the cases is the first; case notes and documents add theirs here.
ChronologySource = Callable[[Session, list[Case], Actor], Iterable[Entry]]
CHRONOLOGY_SOURCES: list[ChronologySource] = []
KINDS = {"case": "Case opened or closed", "step": "Step completed", "decision": "Decision",
         "handover": "Handed over", "assignment": "Task given to someone", "message": "Message received"}


def _decision_text(detail: dict[str, Any]) -> str:
    outputs = detail.get("outputs")
    rows = outputs if isinstance(outputs, list) else [outputs]
    said = "; ".join(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in row.items()) if isinstance(row, dict)
                     else str(row) for row in rows if row not in (None, {}))
    rules = detail.get("matched_rules") or []
    because = "; ".join(f"rule {r.get('index')}" + (f" ({r['annotation']})" if r.get("annotation") else "")
                        for r in rules)
    inputs = detail.get("inputs") or {}
    given = ", ".join(f"{k}: {v}" for k, v in inputs.items()) if isinstance(inputs, dict) else ""
    return " ".join(part for part in (said or "no result",
                                      f"because {given}" if given else "", f"({because})" if because else "") if part)


def audit_entries(session: Session, cases: list[Case], actor: Actor) -> Iterable[Entry]:
    """Steps, decisions with their reasons, hand-overs, allocations and the opening and closing of each case."""
    by_id = {c.id: c for c in cases}
    if not by_id:
        return []
    entries = []
    for event in session.scalars(select(AuditEvent).where(AuditEvent.case_id.in_(by_id))
                                 .order_by(AuditEvent.at, AuditEvent.id)):
        case = by_id[event.case_id]
        detail = event.detail or {}
        made = _entry(event, detail, case)
        if made is not None:
            entries.append(made)
    return entries


def _entry(event: AuditEvent, detail: dict[str, Any], case: Case) -> Entry | None:
    def entry(kind: str, title: str, text: str | None = None, **extra) -> Entry:
        return Entry(at=event.at, kind=kind, case_id=case.id, case_reference=case.reference,
                     pathway=case.process.name, title=title, text=text, actor=event.actor, order=event.id,
                     detail=extra)

    name = event.event
    if name == "case_started":
        if detail.get("from_case"):
            return entry("handover", f"{case.process.name} started, handed over from case {detail['from_case']}",
                         from_case=detail["from_case"])
        return entry("case", f"{case.process.name} started")
    if name == "task_completed":
        return entry("step", detail.get("title") or event.task or "Step completed", task=event.task,
                     answers=detail.get("data") or {})
    if name == "decision_taken":
        return entry("decision", detail.get("decision_name") or detail.get("decision") or "Decision",
                     _decision_text(detail))
    if name == "case_handed_on":
        return entry("handover", f"Handed over to {detail.get('process')}", to_case=detail.get("to_case"))
    if name == "task_assigned":
        return entry("assignment", f"Task given to {detail.get('assignee')}", task=event.task)
    if name == "case_completed":
        outcome = detail.get("outcome")
        return entry("case", f"{case.process.name} closed" + (f": {str(outcome).replace('_', ' ')}" if outcome else ""))
    if name == "case_cancelled":
        return entry("case", f"{case.process.name} cancelled", detail.get("reason"))
    if name == "message_received":
        data = detail.get("data") or {}
        return entry("message", f"Message: {str(detail.get('name', '')).replace('_', ' ')}",
                     data.get("what_happened") if isinstance(data, dict) else None)
    return None


CHRONOLOGY_SOURCES.append(audit_entries)


def chronology(session: Session, family: Family, actor: Actor, filters: dict[str, Any] | None = None) -> list[Entry]:
    """Everything that happened in the family's cases ``actor`` may see, newest first.

    ``filters``: ``kinds`` (a set of entry kinds), ``case_id``, ``since`` and ``until`` (dates, inclusive,
    London days). Reading it is recorded in the access log for each case it shows.
    """
    filters = filters or {}
    cases = family_cases(session, family, actor)
    if filters.get("case_id"):
        cases = [c for c in cases if c.id == filters["case_id"]]
    entries = [e for source in CHRONOLOGY_SOURCES for e in source(session, cases, actor)]
    kinds = set(filters.get("kinds") or ())
    since, until = filters.get("since"), filters.get("until")
    entries = [e for e in entries if (not kinds or e.kind in kinds)
               and (since is None or e.at.astimezone(clock.LONDON).date() >= since)
               and (until is None or e.at.astimezone(clock.LONDON).date() <= until)]
    names = display_names(session, {e.actor for e in entries})
    for e in entries:
        e.actor = names.get(e.actor or "", e.actor)  # people by the name they go by, as on the case page
    for case in cases:
        access_log.record(session, actor, case.id, "family_chronology")
    return sorted(entries, key=lambda e: (e.at, e.order), reverse=True)
