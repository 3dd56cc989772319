"""Every page and endpoint, for every role, generated from the URL configuration.

The table below says, for each URL pattern and HTTP method, which class of answer each role
gets: allowed, refused (403), hidden (404: another team's object), or sent to sign in (pages) /
401 (API) when anonymous. A pattern or method that is not in the table fails
`test_it_has_an_expectation_for_every_url_and_method`, telling the developer to add it, so a new
endpoint cannot ship without a permission test.

Every request runs in a savepoint that is rolled back, against one world built per module
(see opsportal/tests/world.py). Besides the status, a refused or hidden request must not write
a single audit event: pages that answer a refused POST with a redirect and a message are then
still proved to have changed nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from opsportal.tests.world import ROLES, World, rolled_back, world_in_transaction

LETTERS = {"O": "outsider", "X": "other_ds", "D": "owner_ds", "B": "business_owner", "A": "approver", "S": "admin"}
SIGNED_IN = "OXDBAS"


@dataclass(frozen=True)
class Rule:
    """Who gets what. Letters: O outsider (no role), X data scientist of another team, D data scientist
    of the owning team, B business owner, A approver, S admin (staff)."""

    ok: str = ""
    no: str = ""
    hide: str = ""
    anonymous: str = "sign_in"  # sign_in (login page or 401), ok, or no (403)
    body: dict[str, Any] | None = None
    query: str = ""

    def expected(self, role: str) -> str:
        if role == "anonymous":
            return self.anonymous
        letter = next(k for k, v in LETTERS.items() if v == role)
        return next(kind for kind in ("ok", "no", "hide") if letter in getattr(self, kind))


def allow(ok: str, *, hide: str = "", **extra: Any) -> Rule:
    """`ok` roles are allowed, `hide` roles get 404, every other signed-in role gets 403."""
    return Rule(ok=ok, hide=hide, no="".join(c for c in SIGNED_IN if c not in ok + hide), **extra)


PUBLIC = Rule(ok=SIGNED_IN, anonymous="ok")
EVERYONE = allow(SIGNED_IN)  # any signed-in user, with or without a role
READERS = allow("XDBAS")  # any role: lists filter by team themselves
TEAM_READ = allow("DBAS", hide="X")  # one team's object: business owners and approvers read everything
TEAM_WRITE = allow("DS", hide="X")  # the owning team's data scientists (and admins) change it
TEAM_OPERATE = allow("DAS", hide="X")  # the team's data scientists, approvers and admins
APPROVERS = allow("AS")
ADMINS = allow("S")
RUNS_CAMPAIGNS = allow("DBS", hide="X")  # "business owners and the model's data scientists (or admins)"
OWN_TOKEN = allow("D", hide="OXBAS")  # a personal token of the owning data scientist only
COMMENT = {"body": "<b>Looks right.</b>"}
SIGN_OFF = {"decision": "accept", "reason": "The uplift held."}
RETRAIN = {"reason": "The uplift faded."}

# --- the table: every route, every method ----------------------------------------------------------------

PAGES: dict[str, dict[str, Rule]] = {
    "": {"GET": EVERYONE},
    "healthz": {"GET": PUBLIC},
    "metrics": {"GET": allow("AS", anonymous="no")},
    "system/": {"GET": ADMINS},
    "system/ping/": {"POST": ADMINS},
    "system/pings/<int:pk>/row/": {"GET": ADMINS},
    "accounts/login/": {"GET": PUBLIC, "POST": PUBLIC, "PUT": PUBLIC},  # Django's LoginView treats PUT as POST
    "accounts/logout/": {"POST": PUBLIC},
    "accounts/tokens/": {"GET": EVERYONE, "POST": EVERYONE},
    "accounts/tokens/<int:pk>/revoke/": {"POST": OWN_TOKEN},
    "accounts/audit/": {"GET": APPROVERS},
    "accounts/inbox/": {"GET": EVERYONE},
    "accounts/inbox/read/": {"POST": EVERYONE},
    "accounts/webhooks/": {"GET": ADMINS, "POST": ADMINS},
    "accounts/webhooks/<int:pk>/delete/": {"POST": ADMINS},
    "accounts/webhooks/<int:pk>/deliveries/": {"GET": ADMINS},
    "models/": {"GET": READERS},
    "models/new/": {"GET": allow("XDS"), "POST": allow("XDS")},
    "models/safety/": {"GET": ADMINS, "POST": ADMINS},
    "models/policy/": {"GET": READERS, "POST": ADMINS},
    "models/delivery/": {"GET": ADMINS},
    "models/<slug:name>/": {"GET": TEAM_READ},
    "models/<slug:name>/edit/": {"GET": TEAM_WRITE, "POST": TEAM_WRITE},
    "models/<slug:name>/history/": {"GET": TEAM_READ},
    "models/<slug:name>/rollback/": {"POST": APPROVERS},
    "models/<slug:name>/policy/": {"GET": TEAM_READ, "POST": allow("S", hide="X")},
    "models/<slug:name>/versions/<int:number>/promote/": {"POST": TEAM_WRITE},
    "models/<slug:name>/upload/": {"GET": TEAM_WRITE, "POST": TEAM_WRITE},
    "models/<slug:name>/compare/": {"GET": TEAM_READ},
    "models/<slug:name>/versions/<int:number>/": {"GET": TEAM_READ},
    "models/<slug:name>/versions/<int:number>/status/": {"GET": TEAM_READ},
    "models/<slug:name>/versions/<int:number>/edit/": {"GET": TEAM_WRITE, "POST": TEAM_WRITE},
    # model files are code: business owners never download them
    "models/<slug:name>/versions/<int:number>/download/": {"GET": allow("DAS", hide="X")},
    "models/<slug:name>/versions/<int:number>/accept-sklearn-version/": {"POST": ADMINS},
    "approvals/": {"GET": READERS},
    "approvals/<int:pk>/": {"GET": TEAM_READ},
    # the requester is the owning data scientist: four eyes refuse them
    "approvals/<int:pk>/decide/": {"POST": allow("AS", hide="X", body={"decision": "approve", "comment": "ok"})},
    "approvals/<int:pk>/comment/": {"POST": allow("DBAS", hide="X", body=COMMENT)},
    "approvals/<int:pk>/override/": {"POST": ADMINS},
    "approvals/<int:pk>/withdraw/": {"POST": allow("DS", hide="X")},
    "scoring/": {"GET": READERS},
    "scoring/new/": {"GET": READERS, "POST": READERS},
    "scoring/<int:pk>/": {"GET": TEAM_READ},
    "scoring/<int:pk>/progress/": {"GET": TEAM_READ},
    "scoring/<int:pk>/cancel/": {"POST": TEAM_OPERATE},
    "scoring/models/<slug:name>/traffic/": {"GET": TEAM_READ, "POST": allow("AS", hide="X")},
    "monitoring/": {"GET": READERS},
    "monitoring/alerts/<int:pk>/": {"GET": TEAM_READ},
    "monitoring/alerts/<int:pk>/acknowledge/": {"POST": TEAM_READ},
    "monitoring/models/<slug:name>/": {"GET": TEAM_READ},
    "monitoring/models/<slug:name>/runs/": {"POST": TEAM_OPERATE},
    "monitoring/models/<slug:name>/schedule/": {"POST": TEAM_OPERATE},
    "monitoring/models/<slug:name>/rules/": {"POST": TEAM_OPERATE},
    "monitoring/rules/<int:pk>/delete/": {"POST": TEAM_OPERATE},
    "monitoring/runs/<int:pk>/": {"GET": TEAM_READ},
    "monitoring/runs/<int:pk>/status/": {"GET": TEAM_READ},
    "monitoring/runs/<int:pk>/report/": {"GET": TEAM_READ},
    # Prometheus scrapes with an API token; without one the answer is 403, not a login page
    "monitoring/metrics": {"GET": allow("AS", anonymous="no")},
    "campaigns/": {"GET": READERS},
    "campaigns/new/": {"GET": READERS, "POST": READERS},
    "campaigns/compare/<slug:name>/": {"GET": TEAM_READ},
    "campaigns/labels/<slug:name>/": {"GET": TEAM_READ, "POST": TEAM_WRITE},
    "campaigns/<int:pk>/": {"GET": TEAM_READ},
    "campaigns/<int:pk>/audience/": {"POST": RUNS_CAMPAIGNS},
    "campaigns/<int:pk>/outcomes/": {"POST": RUNS_CAMPAIGNS},
    "campaigns/<int:pk>/uploads/<int:upload>/progress/": {"GET": TEAM_READ},
    "campaigns/<int:pk>/treatment.csv": {"GET": TEAM_READ},
    "campaigns/<int:pk>/analysis.csv": {"GET": TEAM_READ},
    "campaigns/<int:pk>/analysis/": {"POST": TEAM_READ},
    "campaigns/<int:pk>/comments/": {"POST": allow("DBAS", hide="X", body=COMMENT)},
    "campaigns/<int:pk>/sign-off/": {"POST": allow("BS", hide="X", body=SIGN_OFF)},
    "campaigns/<int:pk>/retraining/": {"POST": allow("BAS", hide="X", body=RETRAIN)},
    "retraining/": {"GET": READERS},
    "retraining/models/<slug:name>/": {"GET": TEAM_READ, "POST": TEAM_WRITE},
    "retraining/models/<slug:name>/run/": {"POST": TEAM_WRITE},
    "retraining/runs/<int:pk>/": {"GET": TEAM_READ},
    "retraining/runs/<int:pk>/live/": {"GET": TEAM_READ},
    "api/schema/": {"GET": PUBLIC},
    "api/docs/": {"GET": PUBLIC},
}

API: dict[str, dict[str, Rule]] = {
    "auth/token/": {"POST": PUBLIC},
    "me/": {"GET": EVERYONE},
    "tokens/": {"GET": EVERYONE, "POST": EVERYONE},
    "tokens/<int:pk>/": {"DELETE": OWN_TOKEN},
    "audit/events/": {"GET": APPROVERS},
    "notifications/": {"GET": EVERYONE},
    "notifications/read/": {"POST": allow(SIGNED_IN, body={"all": True})},
    "webhooks/": {"GET": ADMINS, "POST": ADMINS},
    "webhooks/<int:pk>/": {"GET": ADMINS, "DELETE": ADMINS},
    "webhooks/<int:pk>/deliveries/": {"GET": ADMINS},
    "models/": {"GET": READERS, "POST": allow("XDS")},
    "models/<slug:name>/": {"GET": TEAM_READ, "PATCH": TEAM_WRITE},
    "models/<slug:name>/compare/": {"GET": allow("DBAS", hide="X", query="?a=1&b=1")},
    "models/<slug:name>/versions/": {"GET": TEAM_READ, "POST": TEAM_WRITE},
    "models/<slug:name>/versions/<int:number>/": {"GET": TEAM_READ, "PATCH": TEAM_WRITE},
    "models/<slug:name>/versions/<int:number>/artifact/": {"GET": allow("DAS", hide="X")},
    "models/<slug:name>/versions/<int:number>/accept-sklearn-version/": {"POST": ADMINS},
    "models/<slug:name>/versions/<int:number>/promotions/": {"POST": TEAM_WRITE},
    "models/<slug:name>/rollback/": {"POST": APPROVERS},
    "models/<slug:name>/history/": {"GET": TEAM_READ},
    # the admin check comes before the lookup, so another team gets 403 whether or not the model exists
    "models/<slug:name>/policy/": {"GET": TEAM_READ, "PUT": ADMINS},
    "models/<slug:name>/evaluation-data/": {"POST": TEAM_WRITE},
    "promotions/": {"GET": READERS},
    "promotions/<int:pk>/": {"GET": TEAM_READ},
    "promotions/<int:pk>/approve/": {"POST": allow("AS", hide="X")},
    "promotions/<int:pk>/reject/": {"POST": allow("AS", hide="X", body={"comment": "Not yet."})},
    "promotions/<int:pk>/withdraw/": {"POST": allow("DS", hide="X")},
    "promotions/<int:pk>/comments/": {"POST": allow("DBAS", hide="X", body=COMMENT)},
    "promotions/<int:pk>/overrides/": {"POST": ADMINS},
    "policies/default/": {"GET": ADMINS, "PUT": ADMINS},
    "registry/trusted-types/": {"GET": ADMINS, "POST": ADMINS},
    "registry/trusted-types/<int:pk>/": {"DELETE": ADMINS},
    "registry/policy/": {"GET": ADMINS, "PUT": ADMINS},
    "scoring-jobs/": {"GET": READERS, "POST": READERS},
    "scoring-jobs/<int:pk>/": {"GET": TEAM_READ},
    "scoring-jobs/<int:pk>/cancel/": {"POST": TEAM_OPERATE},
    "scoring-jobs/<int:pk>/result": {"GET": TEAM_READ},
    "models/<slug:name>/predict": {"POST": TEAM_READ},
    "models/<slug:name>/scoring-config/": {"GET": TEAM_READ, "PUT": allow("AS", hide="X")},
    "models/<slug:name>/versions/<int:number>/predict": {"POST": TEAM_READ},
    "models/<slug:name>/monitoring/": {"GET": TEAM_READ},
    "models/<slug:name>/monitoring/runs/": {"POST": TEAM_OPERATE},
    "monitoring/runs/<int:pk>/": {"GET": TEAM_READ},
    "alerts/": {"GET": READERS},
    "alerts/<int:pk>/acknowledge/": {"POST": TEAM_READ},
    "campaigns/": {"GET": READERS, "POST": READERS},
    "campaigns/<int:pk>/": {"GET": TEAM_READ},
    "campaigns/<int:pk>/assignments/": {"POST": RUNS_CAMPAIGNS},
    "campaigns/<int:pk>/treatment/": {"GET": TEAM_READ},
    "campaigns/<int:pk>/outcomes/": {"POST": RUNS_CAMPAIGNS},
    "campaigns/<int:pk>/outcomes/uploads/<int:upload>/": {"GET": TEAM_READ},
    "campaigns/<int:pk>/analysis/": {"GET": TEAM_READ},
    "campaigns/<int:pk>/comments/": {"POST": allow("DBAS", hide="X", body=COMMENT)},
    "campaigns/<int:pk>/sign-offs/": {"POST": allow("BS", hide="X", body=SIGN_OFF)},
    "campaigns/<int:pk>/retraining-requests/": {"POST": allow("BAS", hide="X", body=RETRAIN)},
    "models/<slug:name>/labels/": {"POST": TEAM_WRITE},
    "models/<slug:name>/retraining/runs/": {"GET": TEAM_READ, "POST": TEAM_WRITE},
    "retraining/runs/<int:pk>/": {"GET": TEAM_READ},
}
EXPECTATIONS: dict[str, dict[str, Rule]] = {**PAGES, **{f"api/v1/{route}": rules for route, rules in API.items()}}

# Known holes, each found by this matrix: (route, method, role) -> what is wrong and where.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}

# Which world object a `<int:pk>` names, by the longest matching route prefix.
PK_OWNERS: dict[str, Callable[[World], int]] = {
    "system/pings/": lambda w: w.ping.pk,
    "accounts/tokens/": lambda w: w.token_pk,
    "accounts/webhooks/": lambda w: w.webhook_pk,
    "approvals/": lambda w: w.promotion.pk,
    "scoring/": lambda w: w.job.pk,
    "monitoring/alerts/": lambda w: w.alert.pk,
    "monitoring/rules/": lambda w: w.rule.pk,
    "monitoring/runs/": lambda w: w.run.pk,
    "campaigns/": lambda w: w.campaign.pk,
    "retraining/runs/": lambda w: w.retraining_run.pk,
    "api/v1/tokens/": lambda w: w.token_pk,
    "api/v1/webhooks/": lambda w: w.webhook_pk,
    "api/v1/promotions/": lambda w: w.promotion.pk,
    "api/v1/registry/trusted-types/": lambda w: w.trusted_type.pk,
    "api/v1/scoring-jobs/": lambda w: w.job.pk,
    "api/v1/monitoring/runs/": lambda w: w.run.pk,
    "api/v1/alerts/": lambda w: w.alert.pk,
    "api/v1/campaigns/": lambda w: w.campaign.pk,
    "api/v1/retraining/runs/": lambda w: w.retraining_run.pk,
}
OTHER_PARAMS: dict[str, Callable[[World], Any]] = {
    "<slug:name>": lambda w: w.model.name,
    "<int:number>": lambda w: w.champion.number,
    "<int:upload>": lambda w: w.outcome_upload.pk,
}
ADMIN_PARAMS = {"<path:object_id>": "1", "<id>": "1", "<path:content_type_id>": "1"}
ADMIN_REGEX_ROUTES = {"admin/(?P<url>.*)$": "admin/nowhere/", }
ADMIN_OPEN = {"admin/login/", "admin/logout/"}  # the admin's own sign-in and sign-out
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# --- reading the URL configuration ---------------------------------------------------------------------


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def all_routes() -> list[tuple[str, URLPattern]]:
    return list(_walk(get_resolver().url_patterns))


def _declared_methods(func: Any) -> set[str] | None:
    """Methods allowed by Django's `require_http_methods` family, read from the decorator's closure."""
    while func is not None:
        names = getattr(getattr(func, "__code__", None), "co_freevars", ())
        for name, cell in zip(names, getattr(func, "__closure__", None) or (), strict=False):
            if name == "request_method_list":
                return {m.upper() for m in cell.cell_contents}
        func = getattr(func, "__wrapped__", None)
    return None


def supported_methods(pattern: URLPattern) -> set[str]:
    callback = pattern.callback
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None:
        return {m for m in HTTP_METHODS if hasattr(view_class, m.lower())}
    declared = _declared_methods(callback)
    return (declared & set(HTTP_METHODS)) if declared is not None else {"GET", "POST"}


def portal_routes() -> list[tuple[str, str]]:
    return sorted((route, method) for route, pattern in all_routes() if not route.startswith("admin/")
                  for method in supported_methods(pattern))


def admin_routes() -> list[str]:
    return sorted(route for route, _ in all_routes() if route.startswith("admin/"))


# --- the world and the clients -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    with world_in_transaction(django_db_blocker) as built:
        yield built


@pytest.fixture(scope="module")
def sessions(world: World, django_db_blocker: Any) -> dict[str, str]:
    """One signed-in session per role, created once inside the world's transaction."""
    cookies = {}
    with django_db_blocker.unblock():
        for role, user in world.users.items():
            client = Client()
            client.force_login(user)
            cookies[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return cookies


def page_client(role: str, sessions: dict[str, str]) -> Client:
    client = Client()
    if role != "anonymous":
        client.cookies[settings.SESSION_COOKIE_NAME] = sessions[role]
    return client


def api_client(role: str, world: World) -> APIClient:
    client = APIClient()
    if role != "anonymous":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens[role]}")
    return client


def concrete_url(route: str, world: World) -> str:
    url = route
    for placeholder, value in OTHER_PARAMS.items():
        url = url.replace(placeholder, str(value(world)))
    if "<int:pk>" in url:
        prefix = max((p for p in PK_OWNERS if route.startswith(p)), key=len, default=None)
        if prefix is None:
            pytest.fail(f"No world object for <int:pk> in {route!r}: add its prefix to PK_OWNERS in {__file__}")
        url = url.replace("<int:pk>", str(PK_OWNERS[prefix](world)))
    if "<" in url:
        pytest.fail(f"Unknown URL parameter in {route!r}: add it to OTHER_PARAMS in {__file__}")
    return "/" + url


# --- judging one answer ----------------------------------------------------------------------------------


def _is_sign_in(response: Any) -> bool:
    """Sent to sign in before going on (signing out also ends on the login page, without `next`)."""
    login = resolve_url(settings.LOGIN_URL)
    return response.status_code == 302 and response["Location"].startswith(f"{login}?next=")


def judge(expected: str, response: Any, *, api: bool, wrote_audit: bool) -> bool:
    status = response.status_code
    if status >= 500:
        return False
    if expected == "ok":
        return status not in (401, 403, 404) and not _is_sign_in(response)
    if expected == "sign_in":
        return status == 401 if api else _is_sign_in(response)
    if wrote_audit:
        return False  # a refused or hidden request changed something
    if expected == "hide":
        return status == 404
    # refused: 403, or a page that redirects back with a message and changed nothing
    return status == 403 or (not api and status == 302 and not _is_sign_in(response))


def answer(role: str, method: str, route: str, rule: Rule, world: World, sessions: dict[str, str]) -> tuple[Any, bool]:
    api = route.startswith("api/v1/")
    client = api_client(role, world) if api else page_client(role, sessions)
    url = concrete_url(route, world) + rule.query
    body = rule.body or {}
    with rolled_back():
        before = AuditEvent.objects.count()  # sign-ins are not state changes, but none happen here
        if api:
            response = getattr(client, method.lower())(url, body, format="json")
        else:
            response = getattr(client, method.lower())(url, body)
        wrote = AuditEvent.objects.count() > before
    return response, wrote


# --- the tests -------------------------------------------------------------------------------------------


def test_it_has_an_expectation_for_every_url_and_method():
    missing = [f"{method} /{route}" for route, method in portal_routes()
               if method not in EXPECTATIONS.get(route, {})]
    assert not missing, (
        "These URL patterns/methods have no permission expectation. Add each to PAGES or API in "
        f"{__file__} (who may call it, who gets 403, who gets 404):\n  " + "\n  ".join(missing))


def test_it_has_no_expectation_for_a_url_that_is_gone():
    present = set(portal_routes())
    stale = [f"{method} /{route}" for route, rules in EXPECTATIONS.items() for method in rules
             if (route, method) not in present]
    assert not stale, "Remove these entries from the permission table; no such route/method:\n  " + "\n  ".join(stale)


def test_it_gives_every_role_exactly_one_class_in_every_rule():
    for route, rules in EXPECTATIONS.items():
        for method, rule in rules.items():
            for letter in SIGNED_IN:
                assert [letter in rule.ok, letter in rule.no, letter in rule.hide].count(True) == 1, (route, method)


def _matrix_params() -> list[Any]:
    params = []
    for route, method in portal_routes():
        marks = [pytest.mark.xfail(strict=True, reason=reason)
                 for (r, m, _), reason in KNOWN_BUGS.items() if (r, m) == (route, method)]
        params.append(pytest.param(route, method, id=f"{method} /{route}", marks=marks))
    return params


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), _matrix_params())
def test_it_answers_each_role_as_the_table_says(world, sessions, route, method):
    rule = EXPECTATIONS.get(route, {}).get(method)
    if rule is None:
        pytest.fail(f"{method} /{route} has no permission expectation: add it to {__file__}")
    wrong = []
    for role in ROLES:
        response, wrote = answer(role, method, route, rule, world, sessions)
        expected = rule.expected(role)
        if not judge(expected, response, api=route.startswith("api/v1/"), wrote_audit=wrote):
            location = response.get("Location", "")
            wrong.append(f"{role}: expected {expected}, got {response.status_code} {location}"
                         + (" and it wrote an audit event" if wrote else ""))
    assert not wrong, f"{method} /{route}:\n  " + "\n  ".join(wrong)


# --- Django's admin: staff only, whatever the page ------------------------------------------------------


def _admin_url(route: str) -> str:
    if route in ADMIN_REGEX_ROUTES:
        return "/" + ADMIN_REGEX_ROUTES[route]
    url = re.sub(r"\^\(\?P<app_label>[^)]*\)/\$", "auth/", route)
    for placeholder, value in ADMIN_PARAMS.items():
        url = url.replace(placeholder, value)
    if "<" in url or "(?" in url:
        pytest.fail(f"Unknown admin URL parameter in {route!r}: add it to ADMIN_PARAMS in {__file__}")
    return "/" + url


@pytest.mark.django_db
@pytest.mark.parametrize("route", [r for r in admin_routes() if r not in ADMIN_OPEN])
def test_it_keeps_everyone_but_staff_out_of_the_admin(world, sessions, route):
    url = _admin_url(route)
    for role in ("anonymous", "owner_ds"):  # a role is not staff: every non-staff user is treated alike
        with rolled_back():
            response = page_client(role, sessions).get(url)
        assert response.status_code in (302, 404), (role, url, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/"), (role, url, response["Location"])
    with rolled_back():
        response = page_client("admin", sessions).get(url)
    # staff get the page, or a 403 where the admin is read-only by design (audit trail, tokens, logs)
    assert response.status_code < 500 and not response.get("Location", "").startswith("/admin/login/"), url
