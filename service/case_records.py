"""A case's own record besides its steps: workers' notes and uploaded documents, and document checklists.

* **Notes.** A contact, a visit, a phone call, a meeting (or other): the date it happened, who was there
  or spoken to, and what happened. Anyone who may see the case adds one (``policy.may_see_case``).
* **Documents.** A PDF, a Word document (DOCX, DOC, ODT) or an image (PNG, JPEG, GIF), with a title. The
  type is read from the **content** (its first bytes, and for DOCX and ODT the entries of the zip), never
  from the name or the browser's content type: a ``.pdf`` that is a PNG is a PNG, an executable is refused.
  A document larger than ``DOCUMENT_MAX_BYTES`` (default 10 MB) or empty is refused too, with a 4xx naming
  what is wrong, and nothing is stored. The content is encrypted at rest (``EncryptedBytes``); it is read
  only to download it, by whoever may see the case, and every download is audited and access-logged.
* **Checklists tick themselves.** A pathway's document checklist (a ``checklist`` field whose key names
  documents or attachments, as AfC's ``documents_received`` and Rochdale's ``attachments``) lists the
  documents a step needs. An upload may say which item it is (``checklist_item``, ``<field>:<value>``): the
  item is then ticked **in the draft** of every open task of the case whose form has that checklist, and
  pre-ticked in the draft of such a task that opens later (:func:`prefill_new_tasks`). The engine is never
  bypassed: the worker still completes the task (and may untick); the case's data changes only then.

Every note, upload, download and tick is in the case's audit log.
"""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import date, datetime, time
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import access_log, cases as case_service, families
from service.engine import clock
from service.errors import InvalidData, NotFound, ServiceError
from service.forms import Field, FormDefinition
from service.models import Case, CaseDocument, CaseNote, OpenTask
from service.policy import Actor

NOTE_KINDS = {"contact": "Contact", "visit": "Visit", "phone_call": "Phone call", "meeting": "Meeting",
              "other": "Other"}
MAX_NOTE = 10_000
MAX_WHO = 500
MAX_TITLE = 200
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: What may be uploaded: media type -> how the pages name it.
DOCUMENT_TYPES = {
    "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word document (DOCX)",
    "application/msword": "Word 97-2003 document (DOC)",
    "application/vnd.oasis.opendocument.text": "OpenDocument text (ODT)",
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/gif": "GIF image",
}
ALLOWED = "a PDF, a Word document (DOCX or DOC), an OpenDocument text (ODT) or an image (PNG, JPEG or GIF)"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORD_STREAM = "WordDocument".encode("utf-16-le")
_ODT = b"application/vnd.oasis.opendocument.text"
_CHECKLIST_KEY = re.compile(r"document|attachment", re.I)


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedType(ServiceError):
    status = 415


def max_bytes() -> int:
    return int(current_app.config.get("DOCUMENT_MAX_BYTES") or DEFAULT_MAX_BYTES)


# -- reading a file's type from its content ------------------------------------------------------

def sniff(content: bytes) -> str | None:
    """The media type of ``content`` as its bytes say, if it is one of :data:`DOCUMENT_TYPES`; else None."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if content.startswith(_OLE):  # a compound file: Word's if it holds the WordDocument stream
        return "application/msword" if _WORD_STREAM in content else None
    if content.startswith(b"PK\x03\x04"):
        return _zipped_type(content)
    return None


def _zipped_type(content: bytes) -> str | None:
    """DOCX (``[Content_Types].xml`` and ``word/document.xml``) or ODT (its ``mimetype`` entry); only the
    directory and the few bytes of ``mimetype`` are read, never the rest (a zip bomb stays shut)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
            if {"[Content_Types].xml", "word/document.xml"} <= names:
                return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            if "mimetype" in names and archive.getinfo("mimetype").file_size <= 100:
                with archive.open("mimetype") as entry:
                    if entry.read(100).strip() == _ODT:
                        return "application/vnd.oasis.opendocument.text"
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError, RuntimeError):
        return None
    return None


def _safe_filename(name: Any) -> str:
    name = name if isinstance(name, str) else ""
    name = re.split(r"[\\/]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name).strip() or "document"
    return name[-200:]


# -- notes -----------------------------------------------------------------------------------------

def add_note(session: Session, case_id: int, data: Any, actor: Actor) -> CaseNote:
    """Add a note to a case (anyone who may see it); 422 names each answer that is wrong."""
    case = case_service.get_case(session, case_id, actor)
    data = data if isinstance(data, dict) else {}
    errors: dict[str, str] = {}
    kind = data.get("kind")
    if kind not in NOTE_KINDS:
        errors["kind"] = "Choose what kind of note this is"
    happened = _date(data.get("happened_on"))
    if happened is None:
        errors["happened_on"] = "Enter the date it happened, as a real date"
    elif happened > clock.now().astimezone(clock.LONDON).date():
        errors["happened_on"] = "The date it happened must be today or in the past"
    who = data.get("who") if isinstance(data.get("who"), str) else ""
    if len(who.strip()) > MAX_WHO:
        errors["who"] = f"Who was involved must be {MAX_WHO} characters or fewer"
    text = data.get("text") if isinstance(data.get("text"), str) else ""
    if not text.strip():
        errors["text"] = "Enter what happened"
    elif len(text) > MAX_NOTE:
        errors["text"] = f"The note must be {MAX_NOTE:,} characters or fewer"
    if errors:
        raise InvalidData("the note needs correcting", errors)
    note = CaseNote(case_id=case.id, kind=kind, happened_on=happened, who=who.strip(), text=text.strip(),
                    created_by=actor.name, created_at=clock.now())
    session.add(note)
    session.flush()
    case_service._audit(session, case, actor, "note_added", None,
                        {"note": note.id, "kind": kind, "happened_on": happened.isoformat()})
    return note


def _date(raw: Any) -> date | None:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


def notes(session: Session, case: Case) -> list[CaseNote]:
    """The case's notes, the latest happened first (the caller has checked the case may be seen)."""
    return list(session.scalars(select(CaseNote).where(CaseNote.case_id == case.id)
                                .order_by(CaseNote.happened_on.desc(), CaseNote.id.desc())))


# -- documents -------------------------------------------------------------------------------------

def upload(session: Session, case_id: int, *, title: Any, filename: Any, content: bytes, actor: Actor,
           checklist_item: Any = None) -> CaseDocument:
    """Store a document on a case, after checking its size and, by content, its type; tick its checklist item.

    Refused before anything is stored: 413 if too large, 415 if not an allowed type, 422 if the title or
    the checklist item is wrong or the file is empty.
    """
    case = case_service.get_case(session, case_id, actor)
    title = title.strip() if isinstance(title, str) else ""
    errors: dict[str, str] = {}
    if not title:
        errors["title"] = "Enter a title for the document"
    elif len(title) > MAX_TITLE:
        errors["title"] = f"The title must be {MAX_TITLE} characters or fewer"
    item = _checklist_item(session, case, checklist_item) if checklist_item else None
    if checklist_item and item is None:
        errors["checklist_item"] = "Choose a document of this pathway's checklists, or none"
    if not content:
        errors["file"] = "Choose a file to upload: the file sent is empty"
    if errors:
        raise InvalidData("the document needs correcting", errors)
    limit = max_bytes()
    if len(content) > limit:
        raise PayloadTooLarge(f"the file is {_size(len(content))}: a document must be {_size(limit)} or smaller",
                              errors={"file": f"The file must be smaller than {_size(limit)}"})
    media_type = sniff(content)
    if media_type is None:
        raise UnsupportedType(f"the file is not {ALLOWED} (its content says so, whatever its name)",
                              errors={"file": f"The file must be {ALLOWED}"})
    document = CaseDocument(case_id=case.id, title=title, filename=_safe_filename(filename), media_type=media_type,
                            size=len(content), sha256=hashlib.sha256(content).hexdigest(), content=content,
                            checklist_item=item, uploaded_by=actor.name, uploaded_at=clock.now())
    session.add(document)
    session.flush()
    case_service._audit(session, case, actor, "document_uploaded", None,
                        {"document": document.id, "title": title, "media_type": media_type, "size": len(content),
                         "sha256": document.sha256, **({"checklist_item": item} if item else {})})
    if item:
        ticked = _tick_open_tasks(session, case, item)
        if ticked:
            case_service._audit(session, case, actor, "checklist_ticked", None,
                                {"item": item, "tasks": ticked, "document": document.id})
    return document


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{max(n // 1024, 1)} KB"


def documents(session: Session, case: Case) -> list[CaseDocument]:
    """The case's documents, newest first, without their content."""
    return list(session.scalars(select(CaseDocument).where(CaseDocument.case_id == case.id)
                                .order_by(CaseDocument.uploaded_at.desc(), CaseDocument.id.desc())))


def download(session: Session, case_id: int, document_id: int, actor: Actor) -> CaseDocument:
    """A document with its content, for whoever may see its case; audited and in the access log."""
    case = case_service.get_case(session, case_id, actor)
    document = session.get(CaseDocument, document_id)
    if document is None or document.case_id != case.id:
        raise NotFound(f"case {case.id} has no document {document_id}")
    access_log.record(session, actor, case.id, "document")
    case_service._audit(session, case, actor, "document_downloaded", None,
                        {"document": document.id, "title": document.title})
    return document


# -- checklists ------------------------------------------------------------------------------------

def _document_checklists(form: FormDefinition | None) -> list[Field]:
    if form is None:
        return []
    return [f for f in form.fields if f.type == "checklist" and _CHECKLIST_KEY.search(f.key)]


def checklist_items(session: Session, case: Case) -> list[tuple[str, str]]:
    """Every document a checklist of the case's pathway names: (``field:value``, label), once each."""
    process = case_service.process_of(session, case)
    seen: dict[str, str] = {}
    for form in (process.start_form, *process.task_forms.values()):
        for f in _document_checklists(form):
            for option in f.options:
                seen.setdefault(f"{f.key}:{option.value}", option.label)
    return sorted(seen.items(), key=lambda kv: kv[1].lower())


def _checklist_item(session: Session, case: Case, raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    return raw if raw in dict(checklist_items(session, case)) else None


def _tick(task: OpenTask, form: FormDefinition | None, case_data: dict[str, Any], items: set[str]) -> bool:
    """Tick ``items`` (``field:value``) in the task's draft, keeping what is already ticked; True if any."""
    draft = dict(task.draft or {})
    changed = False
    for f in _document_checklists(form):
        wanted = {i.split(":", 1)[1] for i in items if i.split(":", 1)[0] == f.key}
        wanted &= {str(o.value) for o in f.options}
        if not wanted:
            continue
        current = draft.get(f.key, case_data.get(f.key)) or []
        current = [str(v) for v in current] if isinstance(current, list) else [str(current)]
        merged = current + sorted(wanted - set(current))
        if merged != current or f.key not in draft:
            draft[f.key] = merged
            changed = True
    if changed:
        task.draft = draft
    return changed


def _tick_open_tasks(session: Session, case: Case, item: str) -> list[str]:
    process = case_service.process_of(session, case)
    ticked = []
    for task in session.scalars(select(OpenTask).where(OpenTask.case_id == case.id, OpenTask.closed_at.is_(None))):
        if _tick(task, process.form_of(task.name), case.data or {}, {item}):
            ticked.append(task.name)
    return ticked


def prefill_new_tasks(session: Session, case: Case, tasks: list[OpenTask]) -> None:
    """A checklist task that opens after its documents were uploaded starts with them ticked (in its draft)."""
    if not tasks:
        return
    process = case_service.process_of(session, case)
    if not any(_document_checklists(process.form_of(task.name)) for task in tasks):
        return  # no checklist to tick: no need to look at the case's documents
    items = set(session.scalars(select(CaseDocument.checklist_item).where(CaseDocument.case_id == case.id,
                                                                          CaseDocument.checklist_item.is_not(None))))
    if not items:
        return
    for task in tasks:
        _tick(task, process.form_of(task.name), case.data or {}, items)


# -- the chronology --------------------------------------------------------------------------------

def entries_for_cases(session: Session, case_ids: list[int]) -> list[dict[str, Any]]:
    """The notes and documents of ``case_ids`` as chronology entries, newest first.

    Each entry: ``at`` (an aware datetime: a note's day at noon London time, as the day is all it has; a
    document's upload time), ``case_id``, ``source`` (``note`` | ``document``), ``kind`` (the note's kind
    or ``document``), ``title`` (in words), ``text`` (the note, or the file's name, type and size), ``by``,
    and ``id``; a document has ``download`` (the page path). The caller has checked that every case may
    be seen (the family page does, case by case).
    """
    if not case_ids:
        return []
    found: list[dict[str, Any]] = []
    for note in session.scalars(select(CaseNote).where(CaseNote.case_id.in_(case_ids))):
        at = clock.as_utc(datetime.combine(note.happened_on, time(12, 0), tzinfo=clock.LONDON))
        found.append({"at": at, "case_id": note.case_id, "source": "note", "kind": note.kind, "id": note.id,
                      "title": NOTE_KINDS.get(note.kind, note.kind) + (f" with {note.who}" if note.who else ""),
                      "text": note.text, "by": note.created_by, "happened_on": note.happened_on})
    for doc in session.scalars(select(CaseDocument).where(CaseDocument.case_id.in_(case_ids))):
        found.append({"at": doc.uploaded_at, "case_id": doc.case_id, "source": "document", "kind": "document",
                      "id": doc.id, "title": f"Document: {doc.title}",
                      "text": f"{doc.filename} ({DOCUMENT_TYPES.get(doc.media_type, doc.media_type)}, {_size(doc.size)})",
                      "by": doc.uploaded_by, "download": f"/cases/{doc.case_id}/documents/{doc.id}"})
    found.sort(key=lambda e: (e["at"], e["id"]), reverse=True)
    return found


def note_json(note: CaseNote) -> dict[str, Any]:
    return {"id": note.id, "case_id": note.case_id, "kind": note.kind, "kind_label": NOTE_KINDS.get(note.kind),
            "happened_on": note.happened_on.isoformat(), "who": note.who, "text": note.text,
            "created_by": note.created_by, "created_at": note.created_at.isoformat()}


def document_json(document: CaseDocument) -> dict[str, Any]:
    return {"id": document.id, "case_id": document.case_id, "title": document.title, "filename": document.filename,
            "media_type": document.media_type, "size": document.size, "sha256": document.sha256,
            "checklist_item": document.checklist_item, "uploaded_by": document.uploaded_by,
            "uploaded_at": document.uploaded_at.isoformat(),
            "download": f"/api/v1/cases/{document.case_id}/documents/{document.id}/content"}


def chronology_entries(session: Session, cases: list[Case], actor: Actor) -> list[families.Entry]:
    """The notes and documents of the cases a family's reader may see, as lines of its chronology."""
    by_id = {case.id: case for case in cases}
    return [families.Entry(at=e["at"], kind="note" if e["source"] == "note" else "document", case_id=e["case_id"],
                           case_reference=by_id[e["case_id"]].reference, pathway=by_id[e["case_id"]].process.name,
                           title=e["title"], text=e["text"], actor=e["by"], source=e["source"],
                           detail={k: e[k] for k in ("id", "download") if k in e})
            for e in entries_for_cases(session, list(by_id))]


families.CHRONOLOGY_SOURCES.append(chronology_entries)
families.KINDS.update({"note": "Note", "document": "Document"})
