"""The application shell: factory, configuration, health, error shape, OpenAPI and docs."""

from __future__ import annotations

import subprocess
import sys
import re
from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, load_config

SMART_UNION = str(Path(sys.executable).parent / "smart-union")


def test_factory_builds_an_app_from_config(config):
    app = create_app(config)
    assert app.config["SU"].database.url == config.database.url
    assert app.config["MAX_CONTENT_LENGTH"] == config.app.max_request_bytes


@pytest.mark.backend_independent
def test_unknown_config_key_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[database]\npool_sze = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"database\.pool_sze"):
        load_config(path, environ={})


@pytest.mark.backend_independent
def test_bad_config_value_is_named():
    with pytest.raises(ConfigError, match=r"database\.pool_size"):
        load_config(environ={"SMART_UNION__DATABASE__POOL_SIZE": "many"})


@pytest.mark.backend_independent
def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('[wechat.miniprogram]\nappid = "from-file"\n', encoding="utf-8")
    cfg = load_config(path, environ={"SMART_UNION__WECHAT__MINIPROGRAM__SECRET": "from-env",
                                     "SMART_UNION__DATABASE__POOL_SIZE": "7"})
    assert cfg.wechat.miniprogram.appid == "from-file"
    assert cfg.wechat.miniprogram.secret == "from-env"
    assert cfg.database.pool_size == 7


@pytest.mark.backend_independent
def test_config_example_is_valid_and_complete():
    """config.example.toml documents every key: loading it must give exactly the defaults."""
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    assert load_config(example, environ={}) == load_config(environ={})


@pytest.mark.backend_independent
def test_bad_config_stops_the_program_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[redis]\nurll = 'x'\n", encoding="utf-8")
    result = subprocess.run([SMART_UNION, "check-config"], env={"SMART_UNION_CONFIG": str(path), "PATH": ""},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["配置错误：redis.urll：未知的配置项"]


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": True, "redis": True}


def test_readyz_reports_unreachable_redis(make_app):
    app = make_app(**{"redis.url": "redis://127.0.0.1:1/0"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "not_ready"
    assert response.json["error"]["detail"]["checks"] == {"database": True, "redis": False}


def test_unknown_route_and_method_are_json_errors(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json["error"]["message"] == "您要找的内容不存在"
    wrong = client.delete("/api/v1/auth/login")
    assert wrong.status_code == 405
    assert wrong.json["error"]["code"] == "method_not_allowed"


def test_non_json_and_broken_json_bodies_are_refused_clearly(client):
    form = client.post("/api/v1/auth/login", data="code=x", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    broken = client.post("/api/v1/auth/login", data="{nope", content_type="application/json")
    assert broken.status_code == 400
    assert broken.json["error"]["code"] == "invalid_json"


def test_oversized_body_is_refused(client, config):
    body = b'{"code": "' + b"x" * (config.app.max_request_bytes + 10) + b'"}'
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_internal_error_hides_details(make_app):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal_error", "message": "服务器开小差了，请稍后再试"}}


@pytest.mark.backend_independent
def test_openapi_document_describes_the_api(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    bind = doc["paths"]["/api/v1/auth/bind"]["post"]
    assert bind["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BindIn"}
    assert "employee_no" in doc["components"]["schemas"]["BindIn"]["properties"]
    assert "security" not in doc["paths"]["/api/v1/auth/login"]["post"]
    assert doc["paths"]["/api/v1/me"]["get"]["security"] == [{"bearer": []}]
    assert "/api/v1/officer/staff/{employee_no}/unbind" in doc["paths"]


@pytest.mark.backend_independent
def test_docs_page_works_without_internet(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "openapi.json" in html
    assert "http://" not in html and "https://" not in html   # nothing fetched from a CDN
    assets = re.findall(r'(?:src|href)="(/api/v1/docs/assets/[^"]+)"', html)
    assert len(assets) == 2
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.data) > 10_000, asset
    assert client.get("/").headers["Location"].endswith("/api/v1/docs")
    assert client.get("/api/v1/docs/").get_data(as_text=True) == html          # a typed trailing slash is fine too


@pytest.mark.backend_independent
def test_the_document_groups_operations_by_area_with_examples_and_error_statuses(client):
    doc = client.get("/api/v1/openapi.json").json
    tags = [t["name"] for t in doc["tags"]]
    assert tags[:3] == ["登录与绑定", "消息与通知", "公告与公示"] and "慰问" in tags
    verify = doc["paths"]["/api/v1/officer/condolences/{request_id}/verify"]["post"]
    assert verify["tags"] == ["慰问"] and verify["operationId"] == "condolences_verify"
    assert {"401", "403", "404", "409"} <= set(verify["responses"])
    filing = doc["paths"]["/api/v1/condolences"]["post"]["requestBody"]["content"]["application/json"]
    assert filing["examples"]["示例 1"]["value"]["description"]
    used = {tag for path in doc["paths"].values() for op in path.values() for tag in op["tags"]}
    assert used <= set(tags)


@pytest.mark.backend_independent
def test_config_example_names_every_key():
    import tomllib

    from app.config import Config

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    data = tomllib.loads(example.read_text(encoding="utf-8"))

    def missing(model, node, prefix=""):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from missing(annotation, node.get(name, {}), f"{prefix}{name}.")
            elif name not in node:
                yield prefix + name

    assert list(missing(Config, data)) == []


@pytest.mark.backend_independent
def test_public_default_secret_is_refused_outside_the_sqlite_demo():
    with pytest.raises(ConfigError, match=r"app\.secret_key"):
        load_config(environ={"SMART_UNION__DATABASE__URL": "postgresql+psycopg://u@db/su"})
    ok = load_config(environ={"SMART_UNION__DATABASE__URL": "postgresql+psycopg://u@db/su",
                              "SMART_UNION__APP__SECRET_KEY": "x" * 40, "SMART_UNION__PRIVACY__KEYS__K1": "a2V5LWZvci1hLWRhdGFiYXNlLXNlcnZlci0wMTIzNDU=",
                              "SMART_UNION__PRIVACY__CURRENT_KEY": "k1"})
    assert ok.app.secret_key == "x" * 40


def test_ids_and_pages_beyond_the_database_range_are_4xx_not_500(client, make_staff, token_for):
    token = {"Authorization": f"Bearer {token_for(make_staff())}"}
    for path in ("/api/v1/announcements/2147483648", "/api/v1/events/99999999999999999999",
                 "/api/v1/announcements?page=100000000000000000000", "/api/v1/inbox?before=100000000000000000000"):
        assert client.get(path, headers=token).status_code in (404, 422), path
    assert client.post("/api/v1/inbox/2147483648/read", headers=token).status_code == 404


@pytest.mark.backend_independent
def test_a_clock_file_is_refused_outside_tests_and_the_demo():
    with pytest.raises(ConfigError, match="app.clock_file"):
        load_config(environ={}, overrides={"database.url": "postgresql+psycopg://u@db/x", "app.clock_file": "/tmp/now",
                                           "app.secret_key": "s" * 40, "privacy.keys": {"k1": "a2V5LWZvci1hLWRhdGFiYXNlLXNlcnZlci0wMTIzNDU="},
                                           "privacy.current_key": "k1"})
    assert load_config(environ={}, overrides={"app.clock_file": "/tmp/now"}).app.clock_file == "/tmp/now"  # demo


def test_a_coroutine_view_or_hook_is_refused_at_start_since_it_would_never_run(make_app):
    """The app calls views and hooks as they are (SyncFlask): an async one is refused when the app is built."""
    from app import _refuse_coroutines

    app = make_app()
    _refuse_coroutines(app)                       # the app as built: none

    async def late_hook():
        return None

    app.before_request(late_hook)
    with pytest.raises(RuntimeError, match="late_hook"):
        _refuse_coroutines(app)


def test_scripts_sent_together_answer_each_in_its_place_even_after_redis_forgot_them(app):
    """Lookups made in one exchange (a push's claim, link, card and conversation) run as one script: each part sees
    only its own keys and arguments, a part that finds nothing answers nil in its place, and a Redis that lost its
    scripts (a restart) still answers."""
    from app.extensions import ScriptCall, get_redis, redis_key, run_scripts

    get_of = "return redis.call('GET', KEYS[1])"
    count_of = "return {#KEYS, #ARGV, ARGV[1]}"
    with app.app_context():
        get_redis().set(redis_key("joined-test", "a"), "A")
        calls = [ScriptCall(get_of, (redis_key("joined-test", "missing"),)),
                 ScriptCall(count_of, ("k1", "k2"), ("x", "y", "z")),
                 ScriptCall(get_of, (redis_key("joined-test", "a"),))]
        assert run_scripts(calls) == [None, [2, 3, b"x"], b"A"]
        get_redis().script_flush()
        assert run_scripts(calls) == [None, [2, 3, b"x"], b"A"]


def test_each_thread_keeps_one_redis_connection_and_opens_it_again_once_redis_dropped_it(app, monkeypatch):
    """A request thread sends every command on a connection of its own (no pool checkout per command); a connection
    Redis closed while the thread was idle (a restart, its idle timeout) is opened again by the next command instead
    of failing that request."""
    import threading

    from app import extensions
    from app.extensions import get_redis

    def connection_id() -> int:
        with app.app_context():
            return get_redis().client_id()

    first = connection_id()
    assert connection_id() == first
    in_another_thread = []
    worker = threading.Thread(target=lambda: in_another_thread.append(connection_id()))
    worker.start()
    worker.join()
    assert in_another_thread[0] != first

    app.extensions["redis"].client_kill_filter(_id=first)
    monkeypatch.setattr(extensions, "CHECK_AFTER_IDLE_SECONDS", 0.0)    # as after a pause between requests
    with app.app_context():
        assert get_redis().set(extensions.redis_key("thread-conn-test"), "still answered")
        assert get_redis().get(extensions.redis_key("thread-conn-test")) == b"still answered"
    assert connection_id() != first
