"""/consent/withdraw/<token> and /consent/renew/<token>: the subject's signed links.

No bearer token: the signature is the credential. A GET only shows a page with
one button, since mail scanners fetch links; the POST it sends acts.
"""

from __future__ import annotations

from flask import Response, render_template_string
from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.errors import ProblemError
from app.extensions import db
from app.models import Consent, ConsentNotice
from app.services import consent

blp = Blueprint(
    "consent_links",
    __name__,
    description="Signed links in mails to the subject: withdraw or renew consent.",
)

HTML = {
    "200": {"description": "An HTML page", "content": {"text/html": {}}},
    # The subject reads a page, never a problem document, when a link fails.
    "default": {
        "description": "A page saying why the link cannot be used",
        "content": {"text/html": {}},
    },
}

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 2rem auto;">
<h1>{{ title }}</h1>
{% for line in lines %}<p>{{ line }}</p>{% endfor %}
{% if notice %}<blockquote style="white-space: pre-wrap;">{{ notice }}</blockquote>
{% endif %}
{% if button %}<form method="post"><button type="submit">{{ button }}</button></form>
{% endif %}
</body>
</html>
"""


def _page(
    title: str,
    lines: list[str],
    button: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    html = render_template_string(
        PAGE, title=title, lines=lines, button=button, notice=notice
    )
    return Response(html, status=status, mimetype="text/html")


@blp.errorhandler(ProblemError)
def _problem_page(error: ProblemError) -> Response:
    db.session.rollback()
    return _page("This link cannot be used", [error.detail], status=error.status)


def _consent(token: str, salt: str) -> tuple[Consent, dict]:
    payload = consent.read_token(token, salt)
    return consent.get_consent(str(payload["consent_id"])), payload


def _by_link(mechanism: str) -> consent.Recording:
    return consent.Recording("web", mechanism, None, via="subject")


@blp.route("/withdraw/<token>")
class WithdrawLink(MethodView):
    @blp.doc(security=[], responses=HTML)
    def get(self, token: str) -> Response:
        """A page with one button that withdraws; showing it changes nothing."""
        found, _ = _consent(token, consent.WITHDRAW_SALT)
        if found.state == "withdrawn":
            return _page("Consent withdrawn", ["You have withdrawn this consent."])
        return _page(
            "Withdraw your consent",
            [f"You consented to: {found.purpose}.", "You can withdraw at any time."],
            button="Withdraw my consent",
        )

    @blp.doc(security=[], responses=HTML)
    def post(self, token: str) -> Response:
        """Withdraw at once; a repeat shows the same confirmation."""
        found, _ = _consent(token, consent.WITHDRAW_SALT)
        consent.withdraw(found, _by_link("signed withdrawal link"))
        db.session.commit()
        return _page(
            "Consent withdrawn",
            [
                f"Your consent to {found.purpose} is withdrawn, with effect now.",
                "Processing before the withdrawal is not affected (Art 7(3)).",
            ],
        )


@blp.route("/renew/<token>")
class RenewLink(MethodView):
    @blp.doc(security=[], responses=HTML)
    def get(self, token: str) -> Response:
        """The current notice and one button that renews; showing it changes nothing."""
        found, _ = _consent(token, consent.RENEW_SALT)
        notice = consent.latest_notice(found.purpose)
        return _page(
            "Renew your consent",
            [f"We ask whether you still consent to: {found.purpose}."],
            button="Yes, I consent",
            notice=notice.text if notice else None,
        )

    @blp.doc(security=[], responses=HTML)
    def post(self, token: str) -> Response:
        """Renew against the current notice, while the request's window is open."""
        found, payload = _consent(token, consent.RENEW_SALT)
        consent.renew_by_link(
            found.id, int(payload.get("round", 0)), _by_link("signed renewal link")
        )
        db.session.commit()
        notice = db.session.get(ConsentNotice, found.notice_id)
        return _page(
            "Consent renewed",
            [
                f"Thank you: your consent to {found.purpose} is renewed "
                f"(notice version {notice.version}).",
                "You can withdraw it at any time.",
            ],
        )
