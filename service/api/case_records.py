"""A case's notes and documents: add and list them; upload a document (multipart) and download it."""
from __future__ import annotations

from flask import Response, g, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import case_records
from service import cases as case_service
from service.models import db

from .access import authenticate

blp = Blueprint("case_records", __name__, description="Case notes and documents")
blp.before_request(authenticate)


class NoteInSchema(Schema):
    kind = fields.String(required=True, metadata={"description": "contact, visit, phone_call, meeting or other"})
    happened_on = fields.String(required=True, metadata={"description": "the date it happened, YYYY-MM-DD"})
    who = fields.String(load_default="", metadata={"description": "who was there or spoken to"})
    text = fields.String(required=True)

    class Meta:
        unknown = "raise"


class NoteSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    kind = fields.String()
    kind_label = fields.String()
    happened_on = fields.String()
    who = fields.String()
    text = fields.String()
    created_by = fields.String()
    created_at = fields.String()


class DocumentSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    title = fields.String()
    filename = fields.String()
    media_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    checklist_item = fields.String(allow_none=True)
    uploaded_by = fields.String()
    uploaded_at = fields.String()
    download = fields.String()


@blp.route("/cases/<int:case_id>/notes")
@blp.response(200, NoteSchema(many=True))
def list_notes(case_id: int):
    """The case's notes, the latest first."""
    case = case_service.get_case(db.session, case_id, g.actor, purpose="case")
    notes = case_records.notes(db.session, case)
    db.session.commit()  # the access log's line
    return [case_records.note_json(n) for n in notes]


@blp.route("/cases/<int:case_id>/notes", methods=["POST"])
@blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": NoteInSchema}}})
@blp.response(201, NoteSchema)
def add_note(case_id: int):
    """Add a note (contact, visit, phone call, meeting, other) to a case; 422 names each wrong answer."""
    body = request.get_json(silent=True)
    note = case_records.add_note(db.session, case_id, body if isinstance(body, dict) else {}, g.actor)
    db.session.commit()
    return case_records.note_json(note)


@blp.route("/cases/<int:case_id>/documents")
@blp.response(200, DocumentSchema(many=True))
def list_documents(case_id: int):
    """The case's documents (without their content), newest first."""
    case = case_service.get_case(db.session, case_id, g.actor, purpose="case")
    documents = case_records.documents(db.session, case)
    db.session.commit()  # the access log's line
    return [case_records.document_json(d) for d in documents]


@blp.route("/cases/<int:case_id>/documents", methods=["POST"])
@blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "title"], "properties": {
        "file": {"type": "string", "format": "binary"}, "title": {"type": "string", "maxLength": 200},
        "checklist_item": {"type": "string", "description": "field:value of a checklist of the pathway"}}}}}})
@blp.response(201, DocumentSchema)
def upload_document(case_id: int):
    """Upload a document (multipart: ``file``, ``title``, optional ``checklist_item`` as ``field:value``).

    The type is read from the content: a PDF, DOCX, DOC, ODT, PNG, JPEG or GIF (415 otherwise, whatever the
    name); larger than DOCUMENT_MAX_BYTES is 413. Nothing is stored when refused.
    """
    upload = request.files.get("file")
    content = upload.stream.read(case_records.max_bytes() + 1) if upload is not None else b""
    document = case_records.upload(db.session, case_id, title=request.form.get("title"),
                                   filename=upload.filename if upload is not None else None, content=content,
                                   actor=g.actor, checklist_item=request.form.get("checklist_item") or None)
    db.session.commit()
    return case_records.document_json(document)


@blp.route("/cases/<int:case_id>/documents/<int:document_id>/content")
def download_document(case_id: int, document_id: int):
    """The document itself, as an attachment (for whoever may see the case; audited)."""
    document = case_records.download(db.session, case_id, document_id, g.actor)
    db.session.commit()
    return attachment(document)


def attachment(document) -> Response:
    """A download that a browser saves, never renders: its sniffed type, nosniff, a sandboxing CSP."""
    from urllib.parse import quote

    ascii_name = document.filename.encode("ascii", "replace").decode().replace("?", "_")
    return Response(document.content, mimetype=document.media_type, headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(document.filename)}",
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store"})
