"""Request and response bodies on the wire: brotli or gzip both ways, the size limit, JSON parsing.

The size limit counts the body *after* decompression, so a small gzip or brotli
bomb is refused as surely as a large plain body. Responses are compressed when the
client accepts it, with brotli when it does (``Accept-Encoding: br``), else gzip: a
first pull of a municipality is mostly repetitive JSON, and brotli's window holds a
whole page (gzip's 32 kB holds a tenth of one), so the words and ids a page repeats
are sent once (make bench: bytes per visit). The handshake names the encodings
the server reads (:data:`CONTENT_ENCODINGS`), so a laptop sends brotli only to a
server that reads it.
"""

import gzip
import json
import re
import zlib

import brotli
from flask import request

from .errors import MalformedJson, PayloadTooLarge

__all__ = ["json_body", "compress_response", "accepted_encoding", "MIN_COMPRESS_BYTES", "MAX_JSON_DEPTH",
           "CONTENT_ENCODINGS", "BROTLI_QUALITY", "BROTLI_WINDOW_BITS", "GZIP_LEVEL"]

#: Below this a gzip header costs more than it saves.
MIN_COMPRESS_BYTES = 512
#: The request body encodings the server reads, best first (the handshake tells laptops).
CONTENT_ENCODINGS = ("br", "gzip")
#: Chosen by measurement (README "Performance and robustness"): bytes against server CPU per pull page.
BROTLI_QUALITY = 5
#: A 4 MiB window: a whole pull page (500 records, ~800 kB of JSON) is in it.
BROTLI_WINDOW_BITS = 22
GZIP_LEVEL = 9


def json_body(max_bytes):
    """The request's JSON body (gunzipped when Content-Encoding says gzip), at most ``max_bytes`` of it."""
    raw = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, max_bytes)
    elif encoding == "br":
        raw = _unbrotli(raw, max_bytes)
    elif encoding not in ("identity", ""):
        raise MalformedJson(f"Content-Encoding {encoding!r} is not supported: send br, gzip or plain JSON",
                            details={"content_encoding": [encoding]})
    if len(raw) > max_bytes:
        raise PayloadTooLarge(_too_large(max_bytes), details={"max_bytes": max_bytes})
    if not raw.strip():
        raise MalformedJson("the request body is empty: send a JSON object", details={})
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedJson(f"the body is not valid JSON ({exc}): nothing of it was applied",
                            details={"position": getattr(exc, "pos", None)}) from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    if _depth(body) > MAX_JSON_DEPTH:
        raise _too_deep()
    if _SURROGATE_ESCAPE.search(raw):
        _refuse_lone_surrogates(body)
    return body


#: No request of the protocol nests deeper than about six levels (a round item's field
#: inside a change inside a batch); a body nested far deeper is an attack on whatever
#: walks it later (a 700-deep base once froze a record for everyone).
MAX_JSON_DEPTH = 32


def _depth(value):
    """How deep lists and objects nest in a parsed JSON value (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep():
    return MalformedJson(f"the body nests lists or objects deeper than {MAX_JSON_DEPTH} levels: "
                         "no request of the protocol does; nothing of it was applied",
                         details={"max_depth": MAX_JSON_DEPTH})


# A \uD800-\uDFFF escape: JSON's grammar allows a lone one, but it is no character and
# SQLite (UTF-8) cannot store it. Found by the schemathesis fuzzing of issue 6 (it was a 500).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_lone_surrogates(body):
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedJson("the body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is no "
                            "character: send valid Unicode", details={}) from exc


def _gunzip(raw, max_bytes):
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        # Inflate one byte past the limit at most: enough to know it is over.
        data = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedJson(f"the body says gzip but is not gzip ({exc})", details={}) from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(_too_large(max_bytes), details={"max_bytes": max_bytes})
    if not inflater.eof:
        raise MalformedJson("the gzip body is cut short", details={})
    return data


def _unbrotli(raw, max_bytes):
    inflater = brotli.Decompressor()
    try:
        # Inflate one byte past the limit at most: enough to know it is over.
        data = inflater.process(raw, output_buffer_limit=max_bytes + 1)
    except brotli.error as exc:
        raise MalformedJson(f"the body says br but is not brotli ({exc})", details={}) from exc
    if len(data) > max_bytes or not inflater.can_accept_more_data():
        raise PayloadTooLarge(_too_large(max_bytes), details={"max_bytes": max_bytes})
    if not inflater.is_finished():
        raise MalformedJson("the brotli body is cut short", details={})
    return data


def _too_large(max_bytes):
    return (f"the request body is over {max_bytes} bytes (counted after decompression): "
            "send fewer changes per batch")


def compress_response(response):
    """Compress a JSON response, with brotli or gzip as the client accepts (an ``after_request`` hook)."""
    if (response.direct_passthrough or response.status_code < 200 or "Content-Encoding" in response.headers
            or response.mimetype != "application/json"):
        return response
    encoding = accepted_encoding(request.headers.get("Accept-Encoding", ""))
    if encoding is None:
        return response
    data = response.get_data()
    if len(data) < MIN_COMPRESS_BYTES:
        return response
    if encoding == "br":
        response.set_data(brotli.compress(data, quality=BROTLI_QUALITY, lgwin=BROTLI_WINDOW_BITS))
    else:
        response.set_data(gzip.compress(data, compresslevel=GZIP_LEVEL))
    response.headers["Content-Encoding"] = encoding
    response.vary.add("Accept-Encoding")
    return response


def accepted_encoding(header):
    """The encoding to answer in for an ``Accept-Encoding`` header: ``br``, ``gzip`` or None (plain)."""
    accepted = {part.partition(";")[0].strip() for part in header.lower().split(",")}
    return next((e for e in CONTENT_ENCODINGS if e in accepted), None)
