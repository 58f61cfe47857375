"""OpenAI-compatible HTTP rewrite backend: batched, retried with backoff, cached on disk.

api="chat": POST {base_url}/chat/completions, one conversation per request, `batch_size`
requests in flight at once. api="completions": POST {base_url}/completions with a list of
`batch_size` prompts per request (the endpoint's native batching).
Retries: HTTP 5xx and 429, timeouts and connection errors, with delay
`backoff_s * 2**attempt`, at most `max_retries` retries; other 4xx fail at once.
Cache: one JSON file per request item under `cache_dir` (local or gs://, through fileio), keyed
by the SHA-256 of the canonical request (endpoint, model, prompt, sampling parameters), written
atomically, so a rerun sends only what is missing.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from clqa_jax import fileio
from clqa_jax.synth import exemplars
from clqa_jax.synth import rewrite


class RewriteHTTPError(RuntimeError):
  """A request that failed for good (non-retryable status or retries exhausted). The message
  names the URL without credentials and never holds the API key or request headers."""


def public_url(url: str) -> str:
  """``url`` without user:password@ and without its query (where keys are often passed)."""
  parts = urllib.parse.urlsplit(url)
  host = parts.hostname or ""
  if parts.port:
    host = f"{host}:{parts.port}"
  return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_base_url(url: str, field: str = "HttpConfig.base_url") -> None:
  """Refuses a URL with credentials (``https://user:password@host/...``): the URL goes into
  stage manifests, request cache keys and log lines. The message never repeats them."""
  if "@" in urllib.parse.urlsplit(url).netloc:
    raise ValueError(
        f"{field}: {public_url(url)} is given with credentials (user:password@ before the host); "
        "remove them from the URL and pass the API key through an environment variable named "
        "by HttpConfig.api_key_env")


class HttpBackend:
  name = "http"

  def __init__(self, base_url: str, model: str, cache_dir: str | None = None, api: str = "chat",
               batch_size: int = 8, max_retries: int = 5, backoff_s: float = 1.0,
               timeout_s: float = 60.0, temperature: float = 0.0, max_tokens: int = 64,
               api_key_env: str | None = None):
    check_base_url(base_url)
    if api not in ("chat", "completions"):
      raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
    self.base_url = base_url.rstrip("/")
    self.model, self.api, self.cache_dir = model, api, cache_dir
    self.batch_size, self.max_retries, self.backoff_s = batch_size, max_retries, backoff_s
    self.timeout_s, self.temperature, self.max_tokens = timeout_s, temperature, max_tokens
    self.api_key = ""
    if api_key_env:  # None: the server needs no key
      self.api_key = os.environ.get(api_key_env, "")
      if not self.api_key:
        raise ValueError(f"HttpConfig.api_key_env: the environment variable {api_key_env} that "
                         "should hold the API key is not set (or empty); export it, or set "
                         "api_key_env = None for a server that needs no key")
    self.stats = {"requests": 0, "retries": 0, "cache_hits": 0}

  # -- cache ---------------------------------------------------------------------------------
  def request(self, *, messages: list[dict[str, str]] | None = None,
              prompt: str | None = None) -> dict[str, Any]:
    """The canonical request of one item (its cache key): chat ``messages`` for api="chat",
    a completion ``prompt`` for api="completions"."""
    req: dict[str, Any] = {"api": self.api, "url": self.base_url, "model": self.model,
                           "temperature": self.temperature, "max_tokens": self.max_tokens}
    if self.api == "chat":
      if messages is None:
        raise ValueError("HttpBackend api='chat' needs messages")
      req["messages"] = messages
    else:
      if prompt is None:
        raise ValueError("HttpBackend api='completions' needs a prompt")
      req["prompt"] = prompt
    return req

  def _item_request(self, item: rewrite.RewriteItem) -> dict[str, Any]:
    if self.api == "chat":
      return self.request(messages=exemplars.chat_messages(item.kind, item.lang, item.cloze))
    return self.request(prompt=exemplars.completion_prompt(item.kind, item.lang, item.cloze))

  def _cache_path(self, req: dict[str, Any]) -> str | None:
    if not self.cache_dir:
      return None
    key = hashlib.sha256(json.dumps(req, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return fileio.join(self.cache_dir, key[:2], key + ".json")

  def _cache_get(self, req: dict[str, Any]) -> str | None:
    path = self._cache_path(req)
    if path and fileio.exists(path):
      return fileio.read_json(path)["reply"]
    return None

  def _cache_put(self, req: dict[str, Any], reply: str) -> None:
    path = self._cache_path(req)
    if not path:
      return
    fileio.atomic_write(path, json.dumps({"request": req, "reply": reply}, ensure_ascii=False))

  # -- transport -----------------------------------------------------------------------------
  def _scrub(self, text: str) -> str:
    """``text`` with the API key blanked (a server may echo the request's headers)."""
    return text.replace(self.api_key, "<api key>") if self.api_key else text

  def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if self.api_key:
      headers["Authorization"] = f"Bearer {self.api_key}"
    url = self.base_url + path
    for attempt in range(self.max_retries + 1):
      try:
        self.stats["requests"] += 1
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
          return json.loads(resp.read().decode("utf-8"))
      except urllib.error.HTTPError as e:
        if e.code < 500 and e.code != 429:
          hint = ("; check the API key (SynthConfig.api_key_env names its environment variable)"
                  if e.code in (401, 403) else "")
          raise RewriteHTTPError(
              f"POST {public_url(url)}: HTTP {e.code} {e.reason}: "
              f"{self._scrub(e.read()[:200].decode('utf-8', 'replace'))!r}{hint}") from None
        error = f"HTTP {e.code}"
      except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
        error = self._scrub(f"{type(e).__name__}: {e}")
      if attempt == self.max_retries:
        raise RewriteHTTPError(
            f"POST {public_url(url)}: giving up after {attempt + 1} attempts ({error})")
      self.stats["retries"] += 1
      time.sleep(self.backoff_s * 2 ** attempt)
    raise AssertionError("unreachable")

  def _chat_one(self, req: dict[str, Any]) -> str:
    payload = {"model": self.model, "messages": req["messages"],
               "temperature": self.temperature, "max_tokens": self.max_tokens}
    resp = self._post("/chat/completions", payload)
    try:
      return resp["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
      raise RewriteHTTPError(
          f"unexpected chat/completions reply: {self._scrub(str(resp)[:200])}") from None

  def _complete_batch(self, reqs: list[dict[str, Any]]) -> list[str]:
    payload = {"model": self.model, "prompt": [r["prompt"] for r in reqs],
               "temperature": self.temperature, "max_tokens": self.max_tokens, "stop": ["\n"]}
    resp = self._post("/completions", payload)
    try:
      choices = sorted(resp["choices"], key=lambda c: c["index"])
      texts = [c["text"] for c in choices]
    except (KeyError, TypeError):
      raise RewriteHTTPError(
          f"unexpected completions reply: {self._scrub(str(resp)[:200])}") from None
    if len(texts) != len(reqs):
      raise RewriteHTTPError(f"completions returned {len(texts)} choices for {len(reqs)} prompts")
    return texts

  def rewrite(self, items: list[rewrite.RewriteItem]) -> list[str]:
    replies = self.replies([self._item_request(it) for it in items])
    return [rewrite.clean_question(r) for r in replies]

  def replies(self, reqs: list[dict[str, Any]]) -> list[str]:
    """The raw reply to each request of ``request`` (cached ones from the cache), in order."""
    replies: list[str | None] = [self._cache_get(r) for r in reqs]
    self.stats["cache_hits"] += sum(r is not None for r in replies)
    todo = [i for i, r in enumerate(replies) if r is None]
    for start in range(0, len(todo), self.batch_size):
      batch = todo[start:start + self.batch_size]
      if self.api == "chat":
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(batch)) as pool:
          texts = list(pool.map(self._chat_one, [reqs[i] for i in batch]))
      else:
        texts = self._complete_batch([reqs[i] for i in batch])
      for i, text in zip(batch, texts):
        replies[i] = text
        self._cache_put(reqs[i], text)
    return [r or "" for r in replies]
