"""Security headers on every response, the history switch, and the database going away and
coming back (through a loopback TCP proxy in front of PostgreSQL that the test cuts)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.reliability.conftest import Proxy
from tests.service.conftest import app_config, flask_cli, jpeg_bytes, submit
from webapp import CONTENT_SECURITY_POLICY, create_app
from webapp.extensions import db
from webapp.models import Upload

STRICT_CSP = {
    "default-src 'self'", "img-src 'self' blob: data:", "object-src 'none'", "base-uri 'self'",
    "form-action 'self'", "frame-ancestors 'none'",
}


def make_settings(model_dir, tmp_path, database: str | None = None) -> dict[str, str]:
    settings = {
        "MODEL_DIR": str(model_dir), "STORAGE_URL": str(tmp_path / "storage"),
        "DATABASE_URL": database or f"sqlite:///{tmp_path / 'seasons.sqlite'}",
        "CELERY_BROKER_URL": "memory://", "CELERY_QUEUE": "seasons-security",
    }
    upgrade = flask_cli(settings, tmp_path / "instance", "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    return settings


@pytest.fixture
def settings(model_dir, tmp_path) -> dict[str, str]:
    return make_settings(model_dir, tmp_path)


def test_security_headers_on_every_response(settings):
    assert set(CONTENT_SECURITY_POLICY.split("; ")) == STRICT_CSP
    client = create_app(app_config(settings)).test_client()
    job = submit(client, jpeg_bytes(64, 64)).get_json()
    responses = {
        url: client.get(url) for url in (
            "/", "/history", f"/jobs/{job['id']}", "/no-such-page", "/api/directions", "/api/jobs",
            f"/api/jobs/{job['id']}", f"/api/jobs/{job['id']}/original", f"/api/jobs/{job['id']}/result",
            "/api/jobs/nope", "/api/openapi.json", "/static/css/site.css",
        )
    }
    responses["POST /api/jobs (bad)"] = submit(client, b"not a photo")
    responses["POST /api/jobs (browser, no token)"] = client.post("/api/jobs", headers={"Origin": "http://x"})
    for url, response in responses.items():
        headers = response.headers
        assert set(headers["Content-Security-Policy"].split("; ")) == STRICT_CSP, url
        assert headers["X-Content-Type-Options"] == "nosniff", url
        assert headers["Referrer-Policy"] == "same-origin", url
        assert headers["X-Frame-Options"] == "DENY", url
    assert responses["/no-such-page"].status_code == 404
    assert responses[f"/api/jobs/{job['id']}/original"].mimetype == "image/jpeg"


def test_history_visibility_none_lists_nothing(settings, check_openapi):
    public = create_app(app_config(settings)).test_client()
    job = submit(public, jpeg_bytes(64, 64)).get_json()
    assert b'href="/history"' in public.get("/").data

    private = create_app({**app_config(settings), "HISTORY_VISIBILITY": "none"}).test_client()
    listing = check_openapi(private.get("/api/jobs"))
    assert listing.status_code == 404 and listing.get_json()["error"]["code"] == "not_found"
    assert "private" in listing.get_json()["error"]["message"]
    assert private.get("/history").status_code == 404
    assert b'href="/history"' not in private.get("/").data
    # A job stays reachable through its own unguessable link.
    assert private.get(f"/api/jobs/{job['id']}").status_code == 200
    with pytest.raises(ValueError, match="HISTORY_VISIBILITY"):
        create_app({**app_config(settings), "HISTORY_VISIBILITY": "friends"})


def test_database_away_gives_503_and_recovers(model_dir, postgres_url, tmp_path):
    settings = make_settings(model_dir, tmp_path, postgres_url)
    host_port, name = postgres_url.split("@", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    proxy = Proxy((host, int(port)))
    proxy.start()
    try:
        through_proxy = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
        app = create_app({**app_config({**settings, "DATABASE_URL": through_proxy})})
        client = app.test_client()
        assert client.get("/api/jobs").status_code == 200  # a pooled connection now exists
        with app.app_context():  # the session's database is shared with other tests
            uploads = db.session.scalar(select(func.count(Upload.id)))

        proxy.cut()
        for response in (client.get("/api/jobs"), submit(client, jpeg_bytes(64, 64, seed=1))):
            assert response.status_code == 503, response.get_data(as_text=True)
            error = response.get_json()["error"]
            assert error["code"] == "database_unavailable" and "try again" in error["message"]
            assert "psycopg" not in error["message"] and "127.0.0.1" not in error["message"]
        assert not (tmp_path / "storage").exists()  # the refused upload left no file behind

        proxy.start()  # the database is back: the very next requests succeed, nothing restarted
        assert client.get("/api/jobs").status_code == 200
        created = submit(client, jpeg_bytes(64, 64, seed=1))
        assert created.status_code == 202, created.get_data(as_text=True)
        with app.app_context():
            assert db.session.scalar(select(func.count(Upload.id))) == uploads + 1
    finally:
        proxy.cut()
