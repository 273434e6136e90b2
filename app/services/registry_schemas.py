"""The shapes of registry documents, shared by the YAML catalogue and the API."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.calendar import Period
from app.countries import ISO_3166_ALPHA2, third_country
from app.models.erasure import RETAIN_GROUNDS
from app.models.registry import (
    AGREEMENT_STATUSES,
    AGREEMENT_TERMS,
    ART9_CONDITIONS,
    LEGAL_BASES,
    ORIGINS,
    SYSTEM_ROLES,
    TRANSFER_SAFEGUARDS,
)

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,59}$"
KEY = validate.Regexp(
    KEY_PATTERN, error="1-60 lower-case letters, digits or _, starting with a letter."
)
PURPOSE_KEY = validate.Regexp(
    r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
    error="Lower-case letters, digits and _, in dot-separated parts.",
)
# A new purpose's key, within its column (purposes.key is VARCHAR(100)).
NEW_PURPOSE_KEY = [validate.Length(max=100), PURPOSE_KEY]
# Dotted like the Fides categories, such as user.trade_union_membership.
CATEGORY_KEY = [validate.Length(max=255), PURPOSE_KEY]
FIELD_ID = validate.Regexp(
    r"^[a-z][a-z0-9_]{0,59}(\.[a-z][a-z0-9_]{0,59}){2}$",
    error="A field id is system.entity.field, such as hr.employees.bsn.",
)
NAME = validate.Length(min=1, max=200)
# A table or column of a connected database: a plain SQL identifier, so that no
# catalogue entry can smuggle SQL into a statement.
IDENTIFIER = validate.Regexp(
    r"^[A-Za-z_][A-Za-z0-9_]{0,119}$",
    error="1-120 letters, digits or _, not starting with a digit.",
)
ENV_PREFIX = "env:"
RETENTION_OUTCOMES = ("restrict", "anonymise", "delete")
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


def _one_of(choices: Any) -> validate.OneOf:
    return validate.OneOf(tuple(choices), error="Must be one of: {choices}.")


class CountryCode(fields.String):
    """An ISO 3166 alpha-2 code; YAML reads an unquoted NO (Norway) as false."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise ValidationError(
                "Write the country code in quotes (YAML reads NO as false)."
            )
        code = super()._deserialize(value, attr, data, **kwargs)
        if code not in ISO_3166_ALPHA2:
            raise ValidationError("Not an ISO 3166 alpha-2 country code, such as NL.")
        return code


class IsoDate(fields.String):
    """A date kept as ISO text (JSON columns hold no dates); YAML may give a date."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, date):
            return value.isoformat()
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValidationError("A date, such as 2031-12-31.") from None


def _check_safeguard(
    data: dict[str, Any], safeguard: str = "safeguard", note: str = "note"
) -> None:
    """Chapter V: a safeguard belongs to a transfer outside the EEA only."""
    country = data.get("country")
    if data.get(safeguard) and country and not third_country(country):
        raise ValidationError(
            f"'{country}' is in the EEA: the transfer needs no safeguard.", safeguard
        )
    if data.get(safeguard) == "derogation" and not data.get(note):
        raise ValidationError(
            "Name the Art 49(1) derogation the transfer relies on.", note
        )


class SubProcessorSchema(Schema):
    """A sub-processor the controller authorised (Art 28(2) and (4))."""

    name = fields.String(required=True, validate=NAME)
    country = CountryCode(required=True)
    safeguard = fields.String(
        load_default=None, allow_none=True, validate=_one_of(TRANSFER_SAFEGUARDS)
    )
    note = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 1000)
    )

    @validates_schema
    def _safeguard(self, data: dict[str, Any], **_: Any) -> None:
        _check_safeguard(data)


# Each Art 28(3) term: whether the agreement contains it (left out: it does not).
AgreementTermsSchema = Schema.from_dict(
    {term: fields.Boolean(load_default=False) for term in AGREEMENT_TERMS},
    name="AgreementTermsSchema",
)


class AgreementSchema(Schema):
    """The Art 28(3) processor agreement with the system's operator."""

    status = fields.String(required=True, validate=_one_of(AGREEMENT_STATUSES))
    signed_on = fields.Date(load_default=None, allow_none=True)
    reference = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 200)
    )
    terms = fields.Nested(
        AgreementTermsSchema, load_default=lambda: dict.fromkeys(AGREEMENT_TERMS, False)
    )
    sub_processors = fields.List(fields.Nested(SubProcessorSchema), load_default=list)

    @validates_schema
    def _signed_date(self, data: dict[str, Any], **_: Any) -> None:
        if data["status"] == "signed" and data.get("signed_on") is None:
            raise ValidationError("A signed agreement states its date.", "signed_on")
        if data["status"] in ("none", "draft") and data.get("signed_on"):
            raise ValidationError("Only a signed agreement has a date.", "signed_on")


def _check_connection(text: str) -> None:
    """`env:NAME`, or an SQLAlchemy URL that carries no password."""
    if text.startswith(ENV_PREFIX):
        validate.Regexp(ENV_NAME, error="env: names an upper-case variable.")(
            text[len(ENV_PREFIX) :]
        )
        return
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise ValidationError(
            "Not an SQLAlchemy URL, such as postgresql+psycopg://host/db."
        ) from None
    if url.password:
        raise ValidationError(
            "A password has no place in the catalogue: put the URL in an "
            "environment variable and write env:NAME."
        )


class EntitySchema(Schema):
    name = fields.String(required=True, validate=NAME)
    subject_category = fields.String(required=True, validate=validate.Length(1, 100))
    # The column whose value identifies the subject: a field's key (then its
    # column), or a column of the table that the catalogue lists no field for.
    subject_key = fields.String(required=True, validate=KEY)
    table = fields.String(load_default=None, allow_none=True, validate=IDENTIFIER)


class SystemSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    owner = fields.String(required=True, validate=NAME)
    location = fields.String(required=True, validate=NAME)
    country = CountryCode(required=True)
    role = fields.String(required=True, validate=_one_of(SYSTEM_ROLES))
    processor_agreement = fields.Nested(
        AgreementSchema, load_default=lambda: AgreementSchema().load({"status": "none"})
    )
    description = fields.String(load_default="", validate=validate.Length(max=4000))
    security_measures = fields.String(
        load_default="", validate=validate.Length(max=4000)
    )
    transfer_safeguard = fields.String(
        load_default=None, allow_none=True, validate=_one_of(TRANSFER_SAFEGUARDS)
    )
    transfer_note = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 1000)
    )
    connection = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(1, 500), _check_connection],
    )
    retention_review = fields.Boolean(load_default=True)

    @validates_schema
    def _transfer(self, data: dict[str, Any], **_: Any) -> None:
        _check_safeguard(data, "transfer_safeguard", "transfer_note")

    @validates_schema
    def _agreement_fits_role(self, data: dict[str, Any], **_: Any) -> None:
        agreement = data.get("processor_agreement") or {}
        if data.get("role") == "internal" and agreement.get("status") != "none":
            raise ValidationError(
                "An internal system has no processor agreement.", "processor_agreement"
            )


class RetentionSchema(Schema):
    """How long a field is kept: a period from an anchor, or a stated criterion.

    A sweep enforces the rule when it names `on_expiry`: the period then runs from
    the date in `anchor_column` of the entity's table, or the rule ends on `until`.
    """

    period = fields.String(required=True, allow_none=True)
    anchor = fields.String(load_default=None, allow_none=True, validate=KEY)
    criterion = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 1000)
    )
    anchor_column = fields.String(validate=IDENTIFIER)
    until = IsoDate()
    on_expiry = fields.String(validate=_one_of(RETENTION_OUTCOMES))
    # The Art 17(3) ground a restriction at the end of retention is recorded under.
    ground = fields.String(validate=_one_of(RETAIN_GROUNDS))

    @validates_schema
    def _enforced(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("on_expiry"):
            return
        if data.get("until") is None and not (
            data.get("period") and data.get("anchor_column")
        ):
            raise ValidationError(
                "A rule a sweep enforces needs a period and the anchor_column it "
                "runs from, or an until date.",
                "on_expiry",
            )

    @validates_schema
    def _rule(self, data: dict[str, Any], **_: Any) -> None:
        period = data.get("period")
        if period is None:
            if data.get("until") is not None:
                return
            if not data.get("criterion"):
                raise ValidationError(
                    "Without a period, state the criterion that decides it.",
                    "criterion",
                )
            return
        if not _is_iso_period(period):
            raise ValidationError(
                "An ISO 8601 period of one unit, such as P7Y, P6M or P30D.", "period"
            )
        if not data.get("anchor"):
            raise ValidationError(
                "Name the event the period runs from, such as end_of_contract.",
                "anchor",
            )


def _is_iso_period(text: str) -> bool:
    try:
        return Period.parse(text).iso == text
    except ValueError:
        return False


class RecipientSchema(Schema):
    """A system of the registry by key, or a named third party with its country."""

    system = fields.String(validate=KEY)
    name = fields.String(validate=NAME)
    country = CountryCode()
    # A named recipient outside the EEA: what the transfer rests on (Chapter V).
    safeguard = fields.String(validate=_one_of(TRANSFER_SAFEGUARDS))
    note = fields.String(validate=validate.Length(1, 1000))

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_: Any) -> None:
        if ("system" in data) == ("name" in data):
            raise ValidationError("Give either a system key or a name with a country.")
        if "system" in data and "country" in data:
            raise ValidationError("A system's country is the system's own.", "country")
        if "system" in data and "safeguard" in data:
            raise ValidationError(
                "A system's transfer safeguard is the system's own.", "safeguard"
            )
        if "name" in data and "country" not in data:
            raise ValidationError("A named recipient states its country.", "country")
        _check_safeguard(data)


class FieldSchema(Schema):
    """A personal-data field as it is written: the registry checks the vocabulary."""

    name = fields.String(required=True, validate=NAME)
    data_category = fields.String(required=True, validate=validate.Length(1, 255))
    purposes = fields.List(
        fields.String(validate=PURPOSE_KEY),
        required=True,
        validate=validate.Length(min=1, error="At least one purpose."),
    )
    # Left out, it is taken from the purposes' shared default legal basis.
    legal_basis = fields.String(load_default=None, validate=_one_of(LEGAL_BASES))
    art9_condition = fields.String(
        load_default=None, allow_none=True, validate=_one_of(ART9_CONDITIONS)
    )
    # Derived from the category; set it to mark a category Fides does not.
    special_category = fields.Boolean(load_default=None, allow_none=True)
    origin = fields.String(required=True, validate=_one_of(ORIGINS))
    retention = fields.Nested(RetentionSchema, required=True)
    recipients = fields.List(fields.Nested(RecipientSchema), load_default=list)
    automated_decision = fields.Boolean(load_default=False)
    automated_decision_logic = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 4000)
    )
    column = fields.String(load_default=None, allow_none=True, validate=IDENTIFIER)

    @validates_schema
    def _decision_logic(self, data: dict[str, Any], **_: Any) -> None:
        # Art 15(1)(h): meaningful information about the logic involved.
        if data.get("automated_decision") and not data.get("automated_decision_logic"):
            raise ValidationError(
                "An automated decision describes its logic.",
                "automated_decision_logic",
            )


class PurposeSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=4000))
    legal_basis = fields.String(
        load_default=None, allow_none=True, validate=_one_of(LEGAL_BASES)
    )
    # Art 13(1)(d): stated wherever a field serves the purpose on Art 6(1)(f).
    legitimate_interest = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 4000)
    )


class CategorySchema(Schema):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=4000))
    special_category = fields.Boolean(load_default=False)
    art9_basis_note = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 4000)
    )
    parent = fields.String(load_default=None, allow_none=True, validate=CATEGORY_KEY)

    @validates_schema
    def _note_on_special_only(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("art9_basis_note") and not data.get("special_category"):
            raise ValidationError(
                "Only a special category takes an Art 9 basis note.",
                "art9_basis_note",
            )


def field_messages(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Marshmallow's nested messages as one {"field", "message"} per problem."""
    out: list[dict[str, str]] = []
    _walk(error.messages, prefix, out)
    return out


def _walk(node: Any, path: str, out: list[dict[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            part = "" if key == "_schema" else str(key)
            _walk(value, ".".join(p for p in (path, part) if p), out)
        return
    for message in node if isinstance(node, list) else [node]:
        if isinstance(message, (dict, list)):
            _walk(message, path, out)
        else:
            out.append({"field": path, "message": str(message)})
