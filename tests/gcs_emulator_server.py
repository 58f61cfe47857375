"""Runs ``gcp-storage-emulator`` with GCS's generation preconditions, which tensorstore needs.

tensorstore (orbax's array writer) commits each OCDBT manifest with a conditional write
(``ifGenerationMatch``) and re-reads it with ``ifGenerationNotMatch``, taking the object's
generation from the ``x-goog-generation`` response header. The emulator ignores those query
parameters and sends no such header, so a re-read fails with "Malformed StorageGeneration"
now and then (whenever tensorstore's cached manifest is stale). This adds what real GCS does
(https://cloud.google.com/storage/docs/request-preconditions):

  * media downloads and metadata reads carry ``x-goog-generation`` / ``x-goog-metageneration``;
  * ``ifGenerationMatch`` (``0``: the object must not exist) answers 412 on a mismatch, on
    reads, uploads (media and multipart) and deletes;
  * ``ifGenerationNotMatch`` answers 304 on a read (412 on a write) when the generation matches.

The emulator's HTTP server handles one request at a time, so a check and the write after it
cannot interleave with another request. Usage is the emulator's own:
``python gcs_emulator_server.py start --host 127.0.0.1 --port N --in-memory --quiet``.
"""
from __future__ import annotations

import functools
import sys
from http import HTTPStatus

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects


def _current_generation(storage, bucket: str, name: str) -> str | None:
  try:
    return str(storage.get_file_obj(bucket, name)["generation"])
  except NotFound:
    return None


def _query(request, key: str) -> str | None:
  values = request.query.get(key)
  return values[0] if values else None


def _precondition_status(request, current: str | None, *, read: bool) -> HTTPStatus | None:
  """The status GCS answers for the request's generation preconditions, or None to proceed."""
  match = _query(request, "ifGenerationMatch")
  if match is not None and (current or "0") != match:
    return HTTPStatus.PRECONDITION_FAILED
  not_match = _query(request, "ifGenerationNotMatch")
  if not_match is not None and (current or "0") == not_match:
    return HTTPStatus.NOT_MODIFIED if read else HTTPStatus.PRECONDITION_FAILED
  return None


def _refuse(response, status: HTTPStatus) -> None:
  response.status = status
  if status == HTTPStatus.PRECONDITION_FAILED:
    response.json({"error": {"code": 412, "message": "Precondition Failed"}})


def _with_generation_headers(response, storage, bucket: str, name: str) -> None:
  if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
    obj = storage.get_file_obj(bucket, name)
    response["x-goog-generation"] = str(obj["generation"])
    response["x-goog-metageneration"] = str(obj["metageneration"])


def _reading(handler):
  @functools.wraps(handler)
  def wrapped(request, response, storage, *args, **kwargs):
    bucket, name = request.params["bucket_name"], request.params["object_id"]
    current = _current_generation(storage, bucket, name)
    if current is not None:
      status = _precondition_status(request, current, read=True)
      if status is not None:
        return _refuse(response, status)
    result = handler(request, response, storage, *args, **kwargs)
    if current is not None:
      _with_generation_headers(response, storage, bucket, name)
    return result
  return wrapped


def _writing(handler, name_of):
  @functools.wraps(handler)
  def wrapped(request, response, storage, *args, **kwargs):
    bucket, name = request.params["bucket_name"], name_of(request)
    if name is not None:
      status = _precondition_status(request, _current_generation(storage, bucket, name),
                                    read=False)
      if status is not None:
        return _refuse(response, status)
    return handler(request, response, storage, *args, **kwargs)
  return wrapped


def _inserted_name(request) -> str | None:
  """The object an upload writes: the ``name`` query parameter, or for a multipart upload
  (gcsfs's small files) the name in its metadata part."""
  name = _query(request, "name")
  if name is None and _query(request, "uploadType") == "multipart":
    name = (request.data or {}).get("meta", {}).get("name")
  return name


def install() -> None:
  """Wraps the emulator's object handlers; must run before its server module is imported
  (the route table holds the handler functions)."""
  assert "gcp_storage_emulator.server" not in sys.modules, "install() before the server import"
  objects.download = _reading(objects.download)
  objects.get = _reading(objects.get)
  objects.insert = _writing(objects.insert, _inserted_name)
  objects.delete = _writing(objects.delete, lambda r: r.params["object_id"])


if __name__ == "__main__":
  install()
  from gcp_storage_emulator.__main__ import main  # pylint: disable=g-import-not-at-top

  sys.exit(main())
