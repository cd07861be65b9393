"""The review app's access rules as functions (labelgate.web.auth) and the composition of create_app."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
from starlette.requests import Request

from labelgate.web import app as web_app
from labelgate.web import auth, context

pytestmark = pytest.mark.unit


def _request(headers: dict[str, str] | None = None, *, reviewer: str = "app-default") -> Request:
    state = type("State", (), {"reviewer": reviewer})()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/x",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "app": type("App", (), {"state": state})(),
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("target", "safe"),
    [("/runs/latest?x=1", "/runs/latest?x=1"), ("//evil.example/", "/"), ("https://evil/", "/"), ("/a\\b", "/")],
)
def test_safe_next_keeps_local_paths_only(target: str, safe: str) -> None:
    assert auth.safe_next(target) == safe


def test_the_session_cookie_is_an_hmac_of_the_token_not_the_token() -> None:
    value = auth.session_value("s3cret")
    assert "s3cret" not in value and len(value) == 64 and value != auth.session_value("other")
    assert auth.authorised(_request({"Cookie": f"{auth.COOKIE}={value}"}), "s3cret")
    assert not auth.authorised(_request({"Cookie": f"{auth.COOKIE}=s3cret"}), "s3cret")
    assert auth.authorised(_request({"Authorization": "Bearer s3cret"}), "s3cret")
    assert not auth.authorised(_request({"Authorization": "Basic s3cret"}), "s3cret")
    assert not auth.authorised(_request(), "s3cret")


def test_origin_and_json_body_rules() -> None:
    assert auth.same_origin(_request())  # a script sends no Origin
    assert auth.same_origin(_request({"Origin": "http://Host:1", "Host": "host:1"}))
    assert not auth.same_origin(_request({"Origin": "http://evil", "Host": "host:1"}))
    assert not auth.same_origin(_request({"Origin": "null", "Host": "host:1"}))
    assert auth.is_json(_request({"Content-Type": "application/json; charset=utf-8"}))
    assert auth.is_json(_request())  # no body
    assert not auth.is_json(_request({"Content-Type": "application/x-www-form-urlencoded"}))
    assert not auth.is_json(_request({"Content-Length": "3"}))


def test_the_reviewer_is_the_body_then_the_header_then_the_apps() -> None:
    assert context.reviewer_for(_request({"X-Labelgate-Reviewer": "hdr"}), {"reviewer": " ann  b "}) == "ann b"
    assert context.reviewer_for(_request({"X-Labelgate-Reviewer": "hdr"}), {}) == "hdr"
    assert context.reviewer_for(_request(), None) == "app-default"
    assert context.reviewer_for(_request(), ["not", "a", "dict"]) == "app-default"


def test_create_app_only_composes_no_route_is_defined_inside_it() -> None:
    tree = ast.parse(textwrap.dedent(inspect.getsource(web_app.create_app)))
    inner = [
        getattr(n, "name", "<lambda>")
        for n in ast.walk(tree.body[0])
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and n is not tree.body[0]
    ]
    assert inner == []
