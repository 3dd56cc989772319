from __future__ import annotations

import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from accounts.models import AuditEvent
from accounts.services import GENESIS_HASH, audit_record, audit_verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(data_scientist) -> list[AuditEvent]:
    return [
        audit_record(actor=data_scientist, action=f"test.step{i}", payload={"n": i, "note": "ünïcode"}, ip="10.0.0.1")
        for i in range(5)
    ]


def _bypass_append_only_trigger() -> None:
    """What a database superuser could do to get past the trigger."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Transaction-local: the test's rollback restores the trigger.
            cursor.execute("SET LOCAL session_replication_role = replica")


def test_it_chains_each_event_to_the_one_before(chain):
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))


def test_it_reports_an_intact_chain(chain, capsys):
    call_command("verify_audit")
    assert "5 events verified" in capsys.readouterr().out


def test_it_catches_an_altered_event(chain):
    _bypass_append_only_trigger()
    AuditEvent.objects.filter(pk=chain[2].pk).update(payload={"n": 99, "note": "ünïcode"})
    with pytest.raises(CommandError, match=f"broken at event #{chain[2].pk} .*altered"):
        call_command("verify_audit")


def test_it_catches_a_deleted_event(chain):
    _bypass_append_only_trigger()
    AuditEvent.objects.filter(pk=chain[1].pk).delete()
    report = audit_verify()
    assert report.broken_at == chain[2].pk
    assert "removed" in report.reason


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only")
@pytest.mark.parametrize(
    "statement", ["UPDATE accounts_auditevent SET action = 'x'", "DELETE FROM accounts_auditevent"]
)
def test_it_refuses_update_and_delete_in_the_database(chain, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert audit_verify().ok


def test_it_offers_no_way_to_edit_events_in_the_admin(chain, admin_user, client):
    client.force_login(admin_user)
    url = f"/admin/accounts/auditevent/{chain[0].pk}/change/"
    assert client.post(url, {"action": "forged"}).status_code == 403
    assert client.post(f"/admin/accounts/auditevent/{chain[0].pk}/delete/", {"post": "yes"}).status_code == 403
    assert audit_verify().ok


def test_it_records_admin_role_changes(admin_user, outsider, client):
    client.force_login(admin_user)
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="approver")
    response = client.post(
        f"/admin/auth/user/{outsider.pk}/change/",
        {
            "username": outsider.username,
            "groups": [group.pk],
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.user.changed")
    assert event.actor_label == "root" and "Groups" in event.payload["change"]


def test_it_records_sign_in_and_sign_out(client, data_scientist):
    from conftest import PASSWORD

    client.post("/accounts/login/", {"username": "dana", "password": PASSWORD})
    client.post("/accounts/logout/")
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["user.logged_in", "user.logged_out"]
