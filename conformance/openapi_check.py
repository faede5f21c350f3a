#!/usr/bin/env python3
"""OpenAPI conformance of a running erp-bridge, with validators nobody here wrote.

Run by crates/erp-bridge/tests/api/openapi.rs with the interpreter of conformance/.venv
(scripts/setup.sh installs conformance/requirements.txt there and @redocly/cli into
conformance/node_modules). The test starts erp-bridge, fetches its OpenAPI documents, makes real
requests with every scope of token, and writes one JSON file:

    {"documents": {"<name>": <OpenAPI document>, ...},
     "exchanges": [{"documents": ["<name>", ...], "scope": "admin", "method": "GET",
                    "url": "http://127.0.0.1:PORT/api/...", "status": 200,
                    "content_type": "application/json", "headers": {...}, "body": "<text>"}, ...]}

Checks:

* every document with openapi-spec-validator (OpenAPI 3.1 schema and semantics);
* every document with `redocly lint` and its recommended rules: 0 errors (warnings are printed);
* every exchange with openapi-core: the operation exists in each named document, the status is
  declared for it, and headers and body fit what is declared for that status.

Prints every problem found and a summary line; exits 1 if there is any problem.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit, parse_qsl

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate as validate_spec

HERE = os.path.dirname(os.path.abspath(__file__))


def check_spec(name, doc, problems):
    try:
        validate_spec(doc)
    except Exception as e:  # the validator's own error types; any is a problem
        problems.append(f"{name}: openapi-spec-validator: {e}")


def lint(name, doc, redocly, problems):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.openapi.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        run = subprocess.run(
            [redocly, "lint", "--config", os.path.join(HERE, "openapi_redocly.yaml"), "--format", "json", path],
            capture_output=True,
            text=True,
            env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
        )
    try:
        report = json.loads(run.stdout[run.stdout.index("{"):])
    except ValueError:
        problems.append(f"{name}: redocly lint gave no JSON report (exit {run.returncode}): {run.stdout}{run.stderr}")
        return
    for p in report.get("problems", []):
        where = ", ".join(loc.get("pointer", "") for loc in p.get("location", []))
        line = f"{name}: redocly {p.get('severity')} {p.get('ruleId')}: {p.get('message')} at {where}"
        if p.get("severity") == "error":
            problems.append(line)
        else:
            print(line)
    totals = report.get("totals", {})
    print(f"{name}: redocly lint: {totals.get('errors')} errors, {totals.get('warnings')} warnings")


def check_exchange(ex, apis, problems):
    url = urlsplit(ex["url"])
    request = MockRequest(
        f"{url.scheme}://{url.netloc}",
        ex["method"].lower(),
        url.path,
        args=dict(parse_qsl(url.query, keep_blank_values=True)),
        headers=ex.get("request_headers") or {},
    )
    response = MockResponse(
        ex["body"].encode(),
        status_code=ex["status"],
        headers=ex.get("headers") or {},
        content_type=ex.get("content_type") or "",
    )
    for name in ex["documents"]:
        try:
            apis[name].validate_response(request, response)
        except Exception as e:
            cause = e.__cause__ or e.__context__
            detail = f"{type(e).__name__}: {str(e)[:400]}" + (f" ({type(cause).__name__}: {str(cause)[:400]})" if cause else "")
            for sub in getattr(e, "schema_errors", None) or getattr(cause, "schema_errors", None) or []:
                detail += f"\n    - {'/'.join(str(x) for x in sub.path)}: {sub.message[:400]}"
            problems.append(
                f"{name}: {ex['method']} {url.path}{'?' + url.query if url.query else ''} "
                f"({ex['scope']}) -> {ex['status']}: {detail}\n    body: {ex['body'][:300]}"
            )


def template(doc, method, path):
    """The path template of `doc` that `path` matches (concrete paths first), or None."""
    best = None
    for t, item in doc.get("paths", {}).items():
        if method.lower() not in item:
            continue
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"
        if re.match(pattern, path):
            if best is None or t.count("{") < best.count("{"):
                best = t
    return best


def coverage(name, doc, exchanges):
    """Print which declared (operation, status) pairs the exchanges exercised."""
    seen = set()
    for ex in exchanges:
        if name in ex["documents"]:
            t = template(doc, ex["method"], urlsplit(ex["url"]).path)
            seen.add((ex["method"].lower(), t, str(ex["status"])))
    declared = [
        (m, t, code)
        for t, item in doc.get("paths", {}).items()
        for m, op in item.items()
        if isinstance(op, dict) and "responses" in op
        for code in op["responses"]
    ]
    missing = [d for d in declared if d not in seen]
    print(f"{name}: {len(declared) - len(missing)} of {len(declared)} declared answers exercised")
    for m, t, code in missing:
        print(f"{name}:   not exercised: {m.upper()} {t} {code}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exchanges", help="the JSON file the test wrote")
    ap.add_argument("--redocly", default=os.path.join(HERE, "node_modules", ".bin", "redocly"))
    args = ap.parse_args()
    with open(args.exchanges) as f:
        data = json.load(f)
    problems = []
    apis = {}
    for name, doc in data["documents"].items():
        check_spec(name, doc, problems)
        lint(name, doc, args.redocly, problems)
        # JSON Schemas are served as `application/schema+json`: JSON, read as such; a connector
        # bundle (`application/toml` text, `application/x-tar` bytes) is a string.
        config = Config(
            extra_media_type_deserializers={
                "application/schema+json": json.loads,
                "application/toml": lambda b: b.decode(),
                "application/x-tar": lambda b: b.decode("latin-1"),
            }
        )
        apis[name] = OpenAPI.from_dict(doc, config=config)
    for ex in data["exchanges"]:
        check_exchange(ex, apis, problems)
    for name, doc in data["documents"].items():
        coverage(name, doc, data["exchanges"])
    for p in problems:
        print(p)
    print(f"openapi: {len(data['documents'])} documents, {len(data['exchanges'])} exchanges, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
