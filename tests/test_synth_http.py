"""The OpenAI-compatible rewrite backend against a local server on 127.0.0.1."""
import pytest

from fixtures.synth import openai_server

from clqa_jax.synth import exemplars
from clqa_jax.synth import http_backend
from clqa_jax.synth.rewrite import RewriteItem

ITEMS = [RewriteItem("full", "fi", "_X_ on Suomen pääkaupunki."),
         RewriteItem("full", "ja", "フィンランドの首都は_X_である。"),
         RewriteItem("retrieve", "ja", "The capital of Finland is _X_."),
         RewriteItem("full", "ko", "핀란드의 수도는 _X_이다."),
         RewriteItem("full", "ru", "Столица Финляндии — _X_.")]
EXPECTED = ["mikä on Suomen pääkaupunki?", "フィンランドの首都は何である？", "The capital of Finland is what？",
            "핀란드의 수도는 무엇이다?", "Столица Финляндии — что?"]


def _backend(url, tmp_path, **kw):
  kw.setdefault("backoff_s", 0.01)
  return http_backend.HttpBackend(url, "test-model", cache_dir=str(tmp_path / "cache"), **kw)


def test_chat_requests_retries_and_cache(tmp_path):
  with openai_server.serve(fail_first=2) as srv:
    backend = _backend(srv.url, tmp_path, api="chat", batch_size=2)
    assert backend.rewrite(ITEMS) == EXPECTED
    assert backend.stats["retries"] == 2
    assert len(srv.requests) == len(ITEMS) + 2
    req = srv.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["content_type"] == "application/json"
    body = req["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.0 and body["max_tokens"] == 64
    msgs = body["messages"]
    assert msgs[0]["role"] == "system" and [m["role"] for m in msgs[1:]] == ["user", "assistant"] * 2 + ["user"]
    sent = {m[-1]["content"] for m in (r["body"]["messages"] for r in srv.requests)}
    assert sent == {it.cloze for it in ITEMS}
    ko_msgs = exemplars.chat_messages("full", "ko", ITEMS[3].cloze)
    assert any(r["body"]["messages"] == ko_msgs for r in srv.requests)
    # A rerun (new process, same cache) sends nothing.
    n = len(srv.requests)
    again = _backend(srv.url, tmp_path, api="chat", batch_size=2)
    assert again.rewrite(ITEMS) == EXPECTED
    assert len(srv.requests) == n and again.stats["cache_hits"] == len(ITEMS)
    # Only the new item goes out.
    new = RewriteItem("full", "fi", "_X_ syntyi Helsingissä.")
    assert again.rewrite(ITEMS + [new])[-1] == "mikä syntyi Helsingissä?"
    assert len(srv.requests) == n + 1


def test_completions_are_batched(tmp_path):
  with openai_server.serve() as srv:
    backend = _backend(srv.url, tmp_path, api="completions", batch_size=2)
    assert backend.rewrite(ITEMS) == EXPECTED
    assert [r["path"] for r in srv.requests] == ["/v1/completions"] * 3
    assert [len(r["body"]["prompt"]) for r in srv.requests] == [2, 2, 1]
    assert srv.requests[0]["body"]["prompt"][0] == exemplars.completion_prompt("full", "fi", ITEMS[0].cloze)


def test_timeouts_are_retried_and_failures_are_typed(tmp_path):
  with openai_server.serve(stall_first=1, stall_s=1.0) as srv:
    backend = _backend(srv.url, tmp_path, api="chat", batch_size=1, timeout_s=0.3)
    assert backend.rewrite(ITEMS[:1]) == EXPECTED[:1]
    assert backend.stats["retries"] == 1
  with openai_server.serve(fail_first=100) as srv:
    backend = _backend(srv.url, tmp_path / "b", api="chat", max_retries=2)
    with pytest.raises(http_backend.RewriteHTTPError, match="giving up after 3 attempts"):
      backend.rewrite(ITEMS[:1])
    assert len(srv.requests) == 3
  with openai_server.serve() as srv:
    backend = http_backend.HttpBackend(srv.url.replace("/v1", "/nope"), "m", backoff_s=0.01)
    with pytest.raises(http_backend.RewriteHTTPError, match="HTTP 404"):
      backend.rewrite(ITEMS[:1])
    assert len(srv.requests) == 1


def test_an_http_error_names_the_url_but_never_the_key(tmp_path, monkeypatch):
  import http.server
  import threading

  class EchoHeaders401(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # pylint: disable=invalid-name
      body = f"denied: {self.headers.get('Authorization')}".encode()
      self.send_response(401)
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass

  server = http.server.HTTPServer(("127.0.0.1", 0), EchoHeaders401)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  monkeypatch.setenv("CLQA_TEST_KEY", "sk-secret-123")
  try:
    url = f"http://127.0.0.1:{server.server_port}/v1"
    backend = http_backend.HttpBackend(url, "m", api_key_env="CLQA_TEST_KEY", backoff_s=0.01)
    with pytest.raises(http_backend.RewriteHTTPError) as e:
      backend.rewrite(ITEMS[:1])
  finally:
    server.shutdown()
  message = str(e.value)
  assert f"127.0.0.1:{server.server_port}/v1/chat/completions" in message
  assert "HTTP 401" in message and "API key" in message
  assert "sk-secret-123" not in message
  assert http_backend.public_url("https://u:pw@api.example.com:8443/v1/x?key=k") == (
      "https://api.example.com:8443/v1/x")


@pytest.mark.usefixtures("fresh_gin")
def test_credentials_in_the_base_url_are_refused_before_anything_is_written(tmp_path, capsys):
  from clqa_jax.cli import main as cli_main
  from clqa_jax.synth import config as config_lib

  url = "https://bob:s3cret@api.example.com/v1"
  for make in (lambda: config_lib.HttpConfig(base_url=url, model="m"),
               lambda: http_backend.HttpBackend(url, "m", cache_dir=str(tmp_path / "cache")),
               lambda: config_lib.HttpConfig(base_url="https://tok3n@api.example.com/v1")):
    with pytest.raises(ValueError, match="HttpConfig.base_url: https://api.example.com/v1 is "
                                         "given with credentials") as e:
      make()
    assert "s3cret" not in str(e.value) and "bob" not in str(e.value)
    assert "tok3n" not in str(e.value)
  out = tmp_path / "synth"
  assert cli_main.main(["synth", "qa", "--gin_file", "synth/mini.gin", "--gin_file",
                        "synth/http.gin", "--out", str(out),
                        f'--gin.HttpConfig.base_url="{url}"']) == 2
  captured = capsys.readouterr()
  assert captured.err.startswith("clqa synth: error: HttpConfig.base_url: ")
  assert captured.err.count("\n") == 1 and "In call to" not in captured.err
  assert "s3cret" not in captured.err + captured.out
  assert not out.exists()


def test_a_named_key_variable_that_is_not_set_is_an_error(monkeypatch):
  """api_key_env names the variable; None says the server needs no key."""
  monkeypatch.delenv("CLQA_TEST_MISSING_KEY", raising=False)
  with pytest.raises(ValueError, match="CLQA_TEST_MISSING_KEY.*not set"):
    http_backend.HttpBackend("http://127.0.0.1:9/v1", "m", api_key_env="CLQA_TEST_MISSING_KEY")
  monkeypatch.setenv("CLQA_TEST_MISSING_KEY", "")
  with pytest.raises(ValueError, match="api_key_env = None"):
    http_backend.HttpBackend("http://127.0.0.1:9/v1", "m", api_key_env="CLQA_TEST_MISSING_KEY")
  assert http_backend.HttpBackend("http://127.0.0.1:9/v1", "m").api_key == ""
