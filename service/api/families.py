"""Families and children: find them, record them, read a family's cases and chronology (``service.families``)."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from service import families as family_service
from service.models import Family, Person, db

from .access import authenticate
from .schemas import ChildSchema, Id, StrictSchema, case_summary_json

blp = Blueprint("families", __name__, description="Families and children")
blp.before_request(authenticate)


class PersonSchema(Schema):
    id = fields.Integer()
    family_id = fields.Integer()
    given_name = fields.String()
    family_name = fields.String()
    date_of_birth = fields.String(allow_none=True)
    council_number = fields.String(allow_none=True)
    nhs_number = fields.String(allow_none=True)


class PersonWithCasesSchema(PersonSchema):
    cases = fields.List(fields.Dict(), metadata={"description": "the child's cases you may see"})


class FamilySummarySchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    created_at = fields.DateTime()
    people = fields.List(fields.Nested(PersonSchema))


class FamilySchema(FamilySummarySchema):
    cases = fields.List(fields.Dict(), metadata={"description": "the family's cases you may see, oldest first"})


class FamilyListSchema(Schema):
    families = fields.List(fields.Nested(FamilySummarySchema))
    total = fields.Integer(metadata={"description": "how many match, counted up to 10,000 and one: 10,001 means more"})
    page = fields.Integer()
    per_page = fields.Integer()


class PeopleListSchema(Schema):
    people = fields.List(fields.Nested(PersonSchema))
    total = fields.Integer(metadata={"description": "how many match; without a search, counted up to 10,000 and one: "
                                                    "10,001 means more"})
    page = fields.Integer()
    per_page = fields.Integer()


class PagedQuerySchema(StrictSchema):
    q = fields.String(validate=validate.Length(max=200),
                      metadata={"description": "a child's name (parts of, any case), date of birth or number; 422 "
                                               "when more than 2,000 children match it"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PeopleQuerySchema(PagedQuerySchema):
    date_of_birth = fields.String(validate=validate.Length(max=40))


class NewFamilySchema(StrictSchema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=120))
    children = fields.List(fields.Nested(ChildSchema), load_default=list, validate=validate.Length(max=20))


class ChronologyQuerySchema(StrictSchema):
    kind = fields.List(fields.String(validate=validate.OneOf(sorted(family_service.KINDS) + ["note", "document"])),
                       load_default=list, metadata={"description": "repeat for several kinds"})
    case = fields.Integer(validate=Id)
    since = fields.Date()
    until = fields.Date()

    @validates_schema
    def _order(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("since must not be after until", "until")


class EntrySchema(Schema):
    at = fields.DateTime()
    kind = fields.String()
    case_id = fields.Integer()
    case_reference = fields.String()
    pathway = fields.String()
    title = fields.String()
    text = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    source = fields.String()
    detail = fields.Dict()


class DuplicatesSchema(Schema):
    people = fields.List(fields.Nested(PersonSchema))


def person_json(person: Person) -> dict[str, Any]:
    return {"id": person.id, "family_id": person.family_id, "given_name": person.given_name,
            "family_name": person.family_name, "date_of_birth": person.date_of_birth,
            "council_number": person.council_number, "nhs_number": person.nhs_number}


def family_summary_json(family: Family) -> dict[str, Any]:
    return {"id": family.id, "name": family.name, "created_at": family.created_at,
            "people": [person_json(p) for p in family.people]}


@blp.route("/families")
@blp.arguments(PagedQuerySchema(), location="query")
@blp.response(200, FamilyListSchema)
def list_families(query):
    """The council's families, newest first; ``q`` keeps those with a child it names (name, date, number)."""
    found, total = family_service.list_families(db.session, g.actor, query.get("q"), page=query["page"],
                                                per_page=query["per_page"])
    return {"families": [family_summary_json(f) for f in found], "total": total, "page": query["page"],
            "per_page": query["per_page"]}


@blp.route("/families", methods=["POST"])
@blp.arguments(NewFamilySchema())
@blp.response(201, FamilySchema)
def create_family(body):
    """Record a family and its children (check ``/people/likely-duplicates`` first)."""
    for child in body["children"]:  # every child checked before anything is written
        family_service.clean_child(child)
    family = family_service.create_family(db.session, g.actor, body["name"])
    for child in body["children"]:
        family_service.add_child(db.session, g.actor, family, child)
    db.session.commit()
    return {**family_summary_json(family), "cases": []}


@blp.route("/families/<int:family_id>")
@blp.response(200, FamilySchema)
def get_family(family_id: int):
    """A family, its children and the cases of theirs you may see (across pathways and hand-overs)."""
    family = family_service.get_family(db.session, family_id, g.actor)
    cases = family_service.family_cases(db.session, family, g.actor)
    return {**family_summary_json(family), "cases": [case_summary_json(c) for c in cases]}


@blp.route("/families/<int:family_id>/chronology")
@blp.arguments(ChronologyQuerySchema(), location="query")
@blp.response(200, EntrySchema(many=True))
def family_chronology(query, family_id: int):
    """Every step, decision (with its reason), hand-over and note of the family's cases you may see, newest first."""
    family = family_service.get_family(db.session, family_id, g.actor)
    entries = family_service.chronology(db.session, family, g.actor, {
        "kinds": set(query["kind"]), "case_id": query.get("case"), "since": query.get("since"),
        "until": query.get("until")})
    db.session.commit()  # the access log's lines
    return [entry.__dict__ for entry in entries]


@blp.route("/people")
@blp.arguments(PeopleQuerySchema(), location="query")
@blp.response(200, PeopleListSchema)
def search_people(query):
    """Children by name (parts of, any case), NHS or council number, and/or date of birth, newest first."""
    people, total = family_service.search_people_paged(db.session, g.actor, query.get("q"),
                                                       query.get("date_of_birth"), page=query["page"],
                                                       per_page=query["per_page"])
    return {"people": [person_json(p) for p in people], "total": total, "page": query["page"],
            "per_page": query["per_page"]}


@blp.route("/people/likely-duplicates", methods=["POST"])
@blp.arguments(ChildSchema())
@blp.response(200, DuplicatesSchema)
def likely_duplicates(body):
    """Children already recorded who are probably this one (same NHS number; same date of birth and given or
    family name; without a date, the same full name). A POST: names never go in a URL (logs keep URLs)."""
    child = family_service.clean_child(body)
    return {"people": [person_json(p) for p in family_service.likely_duplicates(db.session, g.actor, child)]}


@blp.route("/people/<int:person_id>")
@blp.response(200, PersonWithCasesSchema)
def get_person(person_id: int):
    person = family_service.get_person(db.session, person_id, g.actor)
    return {**person_json(person),
            "cases": [case_summary_json(c) for c in family_service.person_cases(db.session, person, g.actor)]}

