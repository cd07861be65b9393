"""The review app over HTTP (in-process client) on the tiny run: API, pages, escaping, token auth, CSRF guards."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from unit_support import CLASSES, MARKUP_TEXT, PLAIN_ID, annotations_frame

from labelgate import store
from labelgate.errors import ConfigError
from labelgate.services import review
from labelgate.web.app import create_app
from labelgate.web.server import ReviewServerSettings, check_host, is_loopback

pytestmark = pytest.mark.unit

TOKEN = "s3cret-token"


@pytest.fixture
def db(tiny_db: str) -> str:
    return tiny_db


@pytest.fixture
def client(db: str) -> TestClient:
    return TestClient(create_app(db, reviewer="tester"))


def test_issues_api_lists_flagged_rows_worst_first(client: TestClient, tiny_run) -> None:
    body = client.get("/api/runs/latest/issues").json()
    assert body["run_id"] == tiny_run.run_id
    assert body["count"] == tiny_run.metrics["rows_flagged"] == len(body["items"])
    assert body["classes"] == CLASSES
    severities = [it["severity"] for it in body["items"]]
    assert severities == sorted(severities, reverse=True)
    first = body["items"][0]
    assert set(first) == set(review.ITEM_COLUMNS)
    assert first["issue_types"] and len(first["reasons"]) >= len(first["issue_types"])
    prefix = tiny_run.run_id[:12]
    assert client.get(f"/api/runs/{prefix}/issues?given=billing&limit=2").json()["count"] >= 1
    assert client.get("/api/runs/nope/issues").status_code == 404


def test_post_decisions_single_and_bulk_then_undo(client: TestClient, db: str) -> None:
    items = client.get("/api/runs/latest/issues?limit=3").json()["items"]
    one = client.post("/api/runs/latest/decisions", json={"id": items[0]["id"], "action": "exclude"})
    assert one.status_code == 200, one.text
    assert one.json()["recorded"] == [{"id": items[0]["id"], "action": "exclude", "label": None, "reviewer": "tester"}]
    bulk = client.post(
        "/api/runs/latest/decisions",
        json={"decisions": [{"id": it["id"], "action": "accept"} for it in items[1:]], "reviewer": "ann"},
    )
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["progress"]["reviewed"] == 3
    relabel = client.post(
        "/api/runs/latest/decisions", json={"id": items[0]["id"], "action": "relabel", "label": "shipping"}
    )
    assert relabel.json()["recorded"][0]["label"] in ("shipping",)
    with store.connect(db) as con:
        run_id = store.resolve_run(con)
        latest = store.latest_decisions(con, run_id).set_index("row_id")
    assert latest.loc[items[0]["id"], "reviewer"] == "tester"
    assert latest.loc[items[1]["id"], "reviewer"] == "ann"
    assert latest.loc[items[1]["id"], "label"] == items[1]["suggested_label"]

    undo = client.post("/api/runs/latest/undo", json={})
    assert [r["id"] for r in undo.json()["restored"]] == [items[0]["id"]]
    assert undo.json()["restored"][0]["action"] == "exclude"
    history = client.get("/api/runs/latest/decisions").json()
    assert history[-1]["reason"].startswith("undo of #")


def test_bad_requests_get_one_line_json_errors(client: TestClient) -> None:
    bad = client.post("/api/runs/latest/decisions", json={"id": PLAIN_ID, "action": "relabel", "label": "nope"})
    assert bad.status_code == 400 and "not a class" in bad.json()["error"]
    assert client.post("/api/runs/latest/decisions", json=[1, 2]).status_code == 400
    assert client.post("/api/runs/latest/decisions", json={"decisions": "x"}).status_code == 400


def test_state_changes_need_a_json_body_and_the_same_origin(client: TestClient) -> None:
    form = client.post("/api/runs/latest/decisions", data={"id": PLAIN_ID, "action": "exclude"})
    assert form.status_code == 415
    foreign = client.post(
        "/api/runs/latest/decisions",
        json={"id": PLAIN_ID, "action": "exclude"},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    same = client.post(
        "/api/runs/latest/decisions",
        json={"id": PLAIN_ID, "action": "exclude"},
        headers={"Origin": "http://testserver"},
    )
    assert same.status_code == 200
    assert client.get("/api/runs/latest/decisions").json()[-1]["row_id"] == PLAIN_ID


def test_review_page_escapes_texts_and_forbids_inline_scripts(client: TestClient) -> None:
    page = client.get("/runs/latest", params={"scope": "all", "q": "alert(1)"})
    assert page.status_code == 200
    html = page.text
    assert MARKUP_TEXT.startswith("<SCRIPT>alert(1)</SCRIPT>")
    assert "&lt;SCRIPT&gt;alert(1)&lt;/SCRIPT&gt;" in html
    assert "<SCRIPT>alert(1)" not in html and "<script>alert(1)" not in html
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # every <script> element of the page is the bundled JS or the (non-executed) JSON data block
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts == [' type="application/json" id="lg-data"', ' src="/static/review.js" defer']


def test_review_page_shows_progress_filters_and_keyboard_help(client: TestClient, tiny_run) -> None:
    html = client.get("/runs/latest").text
    assert f"0</b> / {tiny_run.metrics['rows_flagged']} reviewed" in html
    assert html.count('<tr class="item') == tiny_run.metrics["rows_flagged"]
    for needle in ('name="issue_type"', 'name="given"', 'name="suggested"', "Finish review", "<kbd>W</kbd>"):
        assert needle in html
    filtered = client.get("/runs/latest", params={"given": "billing"}).text
    assert 0 < filtered.count('<tr class="item') < tiny_run.metrics["rows_flagged"]
    assert client.get("/runs/latest", params={"q": "zzzz-not-there"}).text.count('<tr class="item') == 0
    assert client.get("/").status_code == 200


def test_finish_of_a_run_that_is_not_paused_explains_export(client: TestClient) -> None:
    result = client.post("/api/runs/latest/finish", json={"action": "finish"}).json()
    assert result["resumed"] is False and "labelgate export" in result["message"]


def test_with_a_token_every_request_needs_it(db: str) -> None:
    client = TestClient(create_app(db, token=TOKEN))
    for path in ("/api/runs/latest/issues", "/api/runs", "/"):
        assert client.get(path).status_code == 401, path
    page = client.get("/runs/latest")
    assert page.status_code == 401 and 'name="token"' in page.text  # the login form, not the data
    assert client.post("/api/runs/latest/decisions", json={"id": PLAIN_ID, "action": "exclude"}).status_code == 401
    wrong = client.get("/api/runs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.get("/api/runs/latest/issues", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert client.get("/static/review.css").status_code == 200


def test_login_form_sets_a_cookie_that_is_not_the_token(db: str) -> None:
    client = TestClient(create_app(db, token=TOKEN))
    bad = client.post("/login", data={"token": "guess", "next": "/runs/latest"}, follow_redirects=False)
    assert bad.status_code == 401
    good = client.post("/login", data={"token": TOKEN, "next": "/runs/latest"}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/runs/latest"
    cookie = good.cookies.get("labelgate_session")
    assert cookie and TOKEN not in cookie
    assert "httponly" in good.headers["set-cookie"].lower() and "samesite=strict" in good.headers["set-cookie"].lower()
    assert client.get("/runs/latest").status_code == 200
    elsewhere = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"}, follow_redirects=False)
    assert elsewhere.headers["location"] == "/"


def test_non_loopback_hosts_need_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    check_host("127.0.0.1", None)
    check_host("0.0.0.0", "t")
    with pytest.raises(ConfigError, match=r"non-loopback host '0\.0\.0\.0' without a token"):
        check_host("0.0.0.0", None)


def test_embedded_server_settings_come_from_the_environment() -> None:
    assert ReviewServerSettings.from_env({}) == ReviewServerSettings()
    s = ReviewServerSettings.from_env(
        {"LABELGATE_REVIEW_PORT": "0", "LABELGATE_REVIEW_SERVE": "off", "LABELGATE_REVIEW_URL": "https://x/"}
    )
    assert (s.port, s.serve, s.public_url) == (0, "off", "https://x")
    with pytest.raises(ConfigError, match="LABELGATE_REVIEW_PORT"):
        ReviewServerSettings.from_env({"LABELGATE_REVIEW_PORT": "http"})


def _add_annotators(db: str, run_id: str, item_ids: list[str]) -> None:
    """Give the first items labels by two annotators (as the long format's ingest stores them)."""
    records = []
    for k, item in enumerate(item_ids):
        records += [(item, "ann", "billing"), (item, "bob", "billing" if k == 0 else "shipping")]
    frame = annotations_frame(run_id, records)
    with store.connect(db) as con, store.transaction(con):
        store.replace_run_rows(con, "annotations", run_id, frame)


def test_each_annotators_label_is_listed_and_the_page_filters_by_annotator(db: str, tiny_run) -> None:
    with store.connect(db) as con:
        flagged = list(review.review_items(con, tiny_run.run_id)["id"])
    _add_annotators(db, tiny_run.run_id, flagged[:2])
    client = TestClient(create_app(db, reviewer="tester"))
    body = client.get("/api/runs/latest/issues", params={"annotator": "bob"}).json()
    assert [it["id"] for it in body["items"]] == flagged[:2]
    assert body["items"][1]["annotator_labels"] == [
        {"annotator": "ann", "label": "billing"},
        {"annotator": "bob", "label": "shipping"},
    ]
    everyone = client.get("/api/runs/latest/issues").json()["items"]
    assert [it["annotator_labels"] for it in everyone[2:]] == [[]] * (len(everyone) - 2)
    page = client.get(f"/runs/{tiny_run.run_id}", params={"annotator": "bob", "novelty": "all"}).text
    assert '<select name="annotator">' in page and '<option value="bob" selected>bob</option>' in page
    assert page.count('<ul class="annotators"') == 2 and '<span class="who">bob</span>' in page
    missing = client.get("/api/runs/latest/issues", params={"annotator": "carol"})
    assert missing.status_code == 400 and "no annotator 'carol'" in missing.json()["error"]


def test_a_single_label_run_has_no_annotator_filter(client: TestClient, tiny_run) -> None:
    page = client.get(f"/runs/{tiny_run.run_id}", params={"novelty": "all"}).text
    assert '<select name="annotator">' not in page and 'class="annotators"' not in page


def test_label_issues_carry_a_kind_badge_and_filter(client: TestClient) -> None:
    items = client.get("/api/runs/latest/issues", params={"issue_type": "label"}).json()["items"]
    kinds = {it["id"]: it["label_kind"] for it in items}
    assert kinds and set(kinds.values()) <= {"mislabelled", "ambiguous"}
    html = client.get("/runs/latest").text
    assert 'name="label_kind"' in html
    for rid, kind in kinds.items():
        row = html[html.index(f'data-id="{rid}"') :]
        row = row[: row.index("</tr>")]
        assert f'data-kind="{kind}"' in row
        assert ("likely mislabelled" if kind == "mislabelled" else "ambiguous") in row
    kind = next(iter(kinds.values()))
    only = client.get("/api/runs/latest/issues", params={"label_kind": kind}).json()
    assert {it["id"] for it in only["items"]} == {r for r, k in kinds.items() if k == kind}
    page = client.get("/runs/latest", params={"label_kind": kind}).text
    assert page.count('<tr class="item') == only["count"]
    assert client.get("/api/runs/latest/issues", params={"label_kind": "bogus"}).status_code == 400


def test_outcome_marks_the_page_as_watching_and_as_served_only_with_a_final_outcome(db: str) -> None:
    """The review gate's process stops its server once ``final_served`` is set: a response that is not final never
    sets it, and a final one sets it (after the response is sent: a background task of the response)."""
    app = create_app(db, reviewer="tester")
    client = TestClient(app)
    with store.connect(db) as con:
        run_id = store.resolve_run(con, "latest")
        con.execute("UPDATE runs SET status = 'exporting' WHERE run_id = ?", [run_id])
    waiting = client.get(f"/api/runs/{run_id}/outcome").json()
    watch = app.state.outcome_watch[run_id]
    assert waiting["final"] is False and watch["final_served"] is False and watch["polled_at"] > 0
    with store.connect(db) as con:
        con.execute("UPDATE runs SET status = 'completed' WHERE run_id = ?", [run_id])
    done = client.get(f"/api/runs/{run_id}/outcome").json()
    assert done["final"] is True and done["status"] == "completed"
    assert app.state.outcome_watch[run_id]["final_served"] is True
