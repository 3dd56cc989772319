"""In a real browser: a hostile value inside Evidently's report runs only in the sandbox, where it can
neither read the portal's cookies nor call its API with them."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from conftest import PASSWORD
from monitoring import services
from monitoring.models import MonitoringRun
from registry.tests.fixtures import churn_frame, csv_bytes

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
# Breaks out of Evidently's <script> block, then reports to the parent page what it could reach.
PAYLOAD = ("</script><script>let c;try{c='read:'+document.cookie}catch(e){c='blocked:'+e.name}"
           "fetch('/api/v1/models/',{credentials:'include'}).then(r=>r.text().then(t=>'read:'+r.status+':'+t),"
           "e=>'blocked:'+e.name).then(f=>parent.postMessage({probe:1,cookie:c,api:f},'*'))</script>")
COLLECT = "window.__probes = []; window.addEventListener('message', e => window.__probes.push(e.data));"


@pytest.fixture
def hostile_run(ready_version: Any) -> MonitoringRun:
    current = churn_frame(300, seed=41)
    current.loc[:99, "Contract"] = PAYLOAD
    run = services.run_request(model=ready_version.model, user=None, version=ready_version,
                               current_data=SimpleUploadedFile("hostile.csv", csv_bytes(current)))
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.report_key, run.report_error
    return run


def test_it_runs_the_payload_only_where_it_cannot_reach_cookies_or_the_api(hostile_run, data_scientist, browser,
                                                                           live_server):
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(COLLECT)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    assert any(c["name"] == "sessionid" for c in context.cookies())  # the portal's own session is there
    page.goto(f"{live_server.url}{reverse('monitoring:run', args=[hostile_run.pk])}")
    page.wait_for_function("() => window.__probes.some(p => p && p.probe)", timeout=30_000)
    probes = [p for p in page.evaluate("() => window.__probes") if isinstance(p, dict) and p.get("probe")]
    context.close()
    assert probes, "the payload never ran: the test would prove nothing"
    for probe in probes:
        assert probe["cookie"].startswith("blocked:"), probe  # no cookie access from the opaque origin
        assert probe["api"].startswith("blocked:"), probe  # the API answer is never readable there
