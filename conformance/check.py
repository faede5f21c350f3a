#!/usr/bin/env python3
"""Conformance checks of a running erp-bridge with validators and clients nobody here wrote.

Run by crates/erp-bridge/tests/api/conformance.rs (which starts erp-bridge with a Kafka broker and
a mapping with every field type) with the interpreter of conformance/.venv (scripts/setup.sh
installs conformance/requirements.txt there). Checks:

* JSON Schema 2020-12 (python-jsonschema, with format checking: rfc3339-validator for
  `date-time`, rfc3986-validator for `uri`): every message schema against the meta-schema, served
  as `application/schema+json` at its absolute `$id`; the read models and the message log
  against them;
* the Kafka records (kafka-python), read with the CloudEvents SDK in the configured mode and
  checked against the AsyncAPI document: headers against the header schema, key against the
  Kafka key binding, value against the payload, data against the schema its absolute
  `dataschema` points to;
* commands produced with kafka-python as an envelope and as a CloudEvent (the SDK's binary
  mode), and a malformed one: their receipts and the dead letter, against the AsyncAPI document;
* `promtool check metrics` on /metrics (the prometheus_client parser when promtool is missing);
* the Python and Node snippets of docs/CONSUMING.md, run against the same broker.

Prints every problem found; exits 1 if there is any.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, from_structured, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from jsonschema import Draft202012Validator, FormatChecker
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

FORMATS = FormatChecker()
PROBLEMS = []


def problem(what):
    PROBLEMS.append(what)
    print(f"PROBLEM: {what}", flush=True)


def note(what):
    print(f"ok: {what}", flush=True)


class Api:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token

    def get(self, path_or_url):
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("content-type", ""), r.read()

    def json(self, path_or_url):
        status, _, body = self.get(path_or_url)
        if status != 200:
            raise RuntimeError(f"GET {path_or_url}: {status}")
        return json.loads(body)


def validate(schema, instance, what, limit=5):
    """Validate with format checking; report at most `limit` errors. True when valid."""
    errors = sorted(Draft202012Validator(schema, format_checker=FORMATS).iter_errors(instance), key=str)
    for e in errors[:limit]:
        path = "/".join(str(p) for p in e.absolute_path)
        problem(f"{what}: at `{path}`: {e.message}")
    return not errors


def absolute_uri(u):
    p = urllib.parse.urlparse(u)
    return bool(p.scheme) and bool(p.netloc)


def check_format_checkers():
    for f in ("date-time", "date", "time", "uri"):
        if f not in FORMATS.checkers:
            problem(f"the format checker cannot check `{f}` (a validator package is missing)")
    # The checker really rejects what RFC 3339 rejects: a date-time without an offset.
    if FORMATS.conforms("2026-10-30T23:29:56", "date-time"):
        problem("the date-time checker accepts a value without an offset")


# --- AsyncAPI helpers --------------------------------------------------------------------------


def resolve(doc, node):
    while isinstance(node, dict) and node.get("$ref", "").startswith("#/"):
        target = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def channel_messages(doc, channel):
    msgs = doc["channels"][channel].get("messages", {})
    return {name: resolve(doc, ref) for name, ref in msgs.items()}


def dataschema_of(message, structured):
    if structured:
        return message["payload"]["properties"]["dataschema"]["const"]
    return message["headers"]["properties"]["ce_dataschema"]["const"]


def check_record(doc_messages, record, what):
    """Check one Kafka record against the AsyncAPI message it claims to be. Returns the headers
    (decoded) and the decoded value."""
    headers = {k: (v or b"").decode() for k, v in (record.headers or [])}
    value = record.value
    name = what[1]
    message = doc_messages.get(name)
    if message is None:
        problem(f"{what[0]}: record of `{name}` is not in the AsyncAPI channel")
        return headers, None
    label = f"{what[0]} {name} at {record.topic}/{record.partition}/{record.offset}"
    if "headers" in message:
        validate(message["headers"], headers, f"{label}: headers")
    key_schema = message.get("bindings", {}).get("kafka", {}).get("key")
    if key_schema is not None:
        validate(key_schema, (record.key or b"").decode(), f"{label}: key")
    try:
        decoded = json.loads(value)
    except ValueError:
        decoded = None
    if "payload" in message and decoded is not None:
        validate(message["payload"], decoded, f"{label}: value")
    return headers, decoded


def consume_all(brokers, topic, idle_s=3.0, until=None, deadline_s=60.0):
    """Every record of `topic` from the beginning until the end offsets (and `until(records)`)."""
    c = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, group_id=None)
    try:
        start = time.time()
        parts = None
        while parts is None and time.time() - start < deadline_s:
            parts = c.partitions_for_topic(topic)
            if parts is None:
                time.sleep(0.5)
        if not parts:
            problem(f"topic {topic} does not exist")
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        records = []
        while time.time() - start < deadline_s:
            batch = c.poll(timeout_ms=1000)
            for rs in batch.values():
                records.extend(rs)
            ends = c.end_offsets(tps)
            at_end = all(c.position(tp) >= ends[tp] for tp in tps)
            if at_end and (until is None or until(records)):
                return records
        if until is not None and not until(records):
            problem(f"{topic}: what was awaited did not arrive within {deadline_s:.0f} s ({len(records)} records)")
        return records
    finally:
        c.close()


# --- The checks --------------------------------------------------------------------------------


def check_schemas(api, doc, structured):
    schemas = {}
    for name, message in channel_messages(doc, "events").items():
        url = dataschema_of(message, structured)
        if not absolute_uri(url):
            problem(f"{name}: dataschema {url!r} is not an absolute URI")
            continue
        status, ctype, body = api.get(url)
        if not ctype.startswith("application/schema+json"):
            problem(f"{name}: the schema is served as {ctype!r}, not application/schema+json")
        schema = json.loads(body)
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # jsonschema.SchemaError
            problem(f"{name}: schema is not valid JSON Schema 2020-12: {e}")
        if schema.get("$id") != url:
            problem(f"{name}: $id {schema.get('$id')!r} differs from the dataschema {url!r}")
        schemas[name] = schema
        described = message["payload"]["properties"]["data"] if structured else message["payload"]
        if {k: v for k, v in described.items() if k != "$schema"} != {k: v for k, v in schema.items() if k != "$schema"}:
            problem(f"{name}: the AsyncAPI payload differs from the served schema")
    note(f"{len(schemas)} message schemas: 2020-12, absolute $id, application/schema+json")
    return schemas


def datetime_fields(schema):
    return [n for n, s in schema.get("properties", {}).items() if s.get("format") == "date-time"]


def check_read_models(api, connection, mapping, schemas):
    mappings = api.json(f"/api/connections/{connection}/mappings")["mappings"]
    m = next((m for m in mappings if m["name"] == mapping), None)
    if m is None:
        problem(f"mapping {mapping} is not listed")
        return []
    schema = schemas.get(f"{mapping}Updated")
    page = api.json(f"/api/connections/{connection}/read-models/{m['resource']}?limit=1000")
    items = page["items"]
    if not items:
        problem(f"read model {m['resource']} is empty")
    valid = sum(validate(schema, item, f"read model {m['resource']} item") for item in items)
    dated = [i for i in items for f in datetime_fields(schema) if isinstance(i.get(f), str)]
    if not dated:
        problem("no read-model item has a date-time value: the format check proved nothing")
    note(f"read model {m['resource']}: {valid}/{len(items)} items valid with format checking")
    return items


def check_message_log(api, connection, schemas):
    page = api.json(f"/api/connections/{connection}/messages?limit=1000")
    n = 0
    for msg in page["messages"]:
        schema = schemas.get(msg["type"])
        if schema is None:
            continue
        validate(schema, msg["data"], f"message log {msg['type']} #{msg['seq']}")
        n += 1
    if n == 0:
        problem("the message log has no message of a described type")
    note(f"message log: {n} messages checked")


def check_events(api, doc, brokers, structured, mapping):
    topic = doc["channels"]["events"]["address"]
    described = channel_messages(doc, "events")
    records = consume_all(brokers, topic)
    fmt = JSONFormat()
    fetched = {}
    counts = {}
    for r in records:
        headers = {k: v for k, v in (r.headers or [])}
        msg = KafkaMessage(headers=headers, key=r.key, value=r.value)
        has_ce_headers = any(k.startswith("ce_") for k in headers)
        if has_ce_headers == structured:
            problem(f"{topic}/{r.partition}/{r.offset}: record is not in {'structured' if structured else 'binary'} mode")
            continue
        try:
            event = from_structured(msg, fmt) if structured else from_binary(msg, fmt)
        except Exception as e:
            problem(f"{topic}/{r.partition}/{r.offset}: the CloudEvents SDK cannot read it: {e!r}")
            continue
        ty = event.get_type()
        check_record(described, r, ("event", ty))
        if (r.key or b"").decode() != event.get_subject():
            problem(f"{ty} {event.get_id()}: key {r.key!r} differs from subject {event.get_subject()!r}")
        url = event.get_dataschema()
        if not url or not absolute_uri(url):
            problem(f"{ty} {event.get_id()}: dataschema {url!r} is not an absolute URI")
            continue
        if url not in fetched:
            fetched[url] = json.loads(api.get(url)[2])
        validate(fetched[url], event.get_data(), f"{ty} {event.get_id()}: data")
        if event.get_time() is None or event.get_time().tzinfo is None:
            problem(f"{ty} {event.get_id()}: time has no offset")
        counts[ty] = counts.get(ty, 0) + 1
    if not counts.get(f"{mapping}Updated"):
        problem(f"no {mapping}Updated record on {topic}")
    note(f"{topic}: {sum(counts.values())} records read with the CloudEvents SDK ({counts})")


def check_commands(doc, brokers, item_number):
    commands_topic = doc["channels"]["commands"]["address"]
    receipts_topic = doc["channels"]["receipts"]["address"]
    dead_topic = doc["channels"]["deadletter"]["address"]
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all")
    envelope_id = f"conf-{uuid.uuid4()}"
    envelope = {"commandId": envelope_id, "command": "UpdateItem",
                "data": {"itemNumber": item_number, "name": "Checked by kafka-python"}}
    validate(resolve(doc, doc["components"]["messages"]["UpdateItem"])["payload"], envelope, "the command envelope sent")
    producer.send(commands_topic, key=item_number.encode(), value=json.dumps(envelope).encode()).get(30)
    ce_id = f"conf-ce-{uuid.uuid4()}"
    event = CloudEvent(attributes={"id": ce_id, "type": "UpdateItem", "source": "conformance/check.py",
                                   "datacontenttype": "application/json"},
                       data={"itemNumber": item_number, "name": "Checked by the CloudEvents SDK"})
    m = to_binary(event, JSONFormat())
    ce_headers = {k: v.decode() for k, v in m.headers.items()}
    validate(resolve(doc, doc["components"]["messages"]["UpdateItemCloudEvent"])["headers"], ce_headers,
             "the CloudEvents command's headers")
    producer.send(commands_topic, key=item_number.encode(), value=m.value, headers=list(m.headers.items())).get(30)
    meta = producer.send(commands_topic, key=b"broken", value=b'{"nonsense": true}').get(30)
    broken_id = f"{commands_topic}/{meta.partition}/{meta.offset}"
    producer.flush()
    producer.close()
    wanted = {envelope_id, ce_id, broken_id}

    def keys(records):
        return {(r.key or b"").decode() for r in records}

    receipts = consume_all(brokers, receipts_topic, until=lambda rs: wanted <= keys(rs), deadline_s=90)
    described = channel_messages(doc, "receipts")
    by_id = {}
    for r in receipts:
        if (r.key or b"").decode() in wanted:
            _, value = check_record(described, r, ("receipt", "CommandReceipt"))
            by_id[(r.key or b"").decode()] = value or {}
            try:
                from_binary(KafkaMessage(headers=dict(r.headers), key=r.key, value=r.value), JSONFormat())
            except Exception as e:
                problem(f"receipt {r.key!r}: the CloudEvents SDK cannot read it: {e!r}")
    for cid, status in [(envelope_id, "succeeded"), (ce_id, "succeeded"), (broken_id, "rejected")]:
        got = by_id.get(cid, {}).get("status")
        if got != status:
            problem(f"command {cid}: receipt status {got!r}, expected {status!r} ({by_id.get(cid)})")
    dead = consume_all(brokers, dead_topic, until=lambda rs: broken_id in keys(rs), deadline_s=60)
    described = channel_messages(doc, "deadletter")
    n = 0
    for r in dead:
        if (r.key or b"").decode() == broken_id:
            headers, _ = check_record(described, r, ("dead letter", "DeadLetter"))
            n += 1
            if headers.get("erp_bridge_origin") != broken_id:
                problem(f"dead letter: erp_bridge_origin {headers.get('erp_bridge_origin')!r}, expected {broken_id!r}")
    if n != 1:
        problem(f"expected one dead letter for {broken_id}, found {n}")
    note(f"commands: envelope and CloudEvents forms succeeded, malformed one rejected and dead-lettered")


def check_metrics(api):
    status, ctype, body = api.get("/metrics")
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
        if r.returncode != 0:
            problem(f"promtool check metrics: {(r.stdout + r.stderr).decode().strip()}")
        else:
            note("promtool check metrics: clean")
    else:
        from prometheus_client.parser import text_string_to_metric_families
        try:
            families = list(text_string_to_metric_families(body.decode()))
            note(f"/metrics parsed by prometheus_client ({len(families)} families; promtool not installed)")
        except Exception as e:
            problem(f"/metrics does not parse: {e}")


def check_docs(path, env):
    """Run the docs' Python and Node snippets. A snippet may be preceded by
    `<!-- conformance: expect "REGEX" -->`: its output must then match."""
    text = open(path, encoding="utf-8").read()
    blocks = re.findall(r'(?:<!-- conformance: expect "([^"]*)" -->\n)?```(python|js)\n(.*?)```', text, flags=re.S)
    if not blocks:
        problem(f"{path}: no python or js snippets")
    here = os.path.dirname(os.path.abspath(__file__))
    for i, (expect, lang, code) in enumerate(blocks, 1):
        # Node snippets run beside conformance/node_modules (kafkajs, cloudevents).
        suffix, folder = (".py", None) if lang == "python" else (".mjs", here)
        with tempfile.NamedTemporaryFile("w", suffix=suffix, prefix=".snippet-", dir=folder, delete=False) as f:
            f.write(code)
        program = [sys.executable] if lang == "python" else ["node"]
        try:
            r = subprocess.run(program + [f.name], capture_output=True, timeout=120, env=env)
        finally:
            os.unlink(f.name)
        out = (r.stdout + r.stderr).decode().strip()
        label = f"{path}: {lang} snippet {i}"
        if r.returncode != 0:
            problem(f"{label} failed ({r.returncode}): {out[-2000:]}")
        elif expect and not re.search(expect, out):
            problem(f"{label}: output does not match {expect!r}: {out[-2000:]}")
        else:
            note(f"{label} ran: {out.splitlines()[-1] if out else ''}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--api", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--connection", default="demo")
    p.add_argument("--brokers", required=True)
    p.add_argument("--mode", choices=["binary", "structured"], required=True)
    p.add_argument("--mapping", required=True, help="the mapping with every field type")
    p.add_argument("--docs", help="docs/CONSUMING.md: run its python snippets")
    p.add_argument("--skip-commands", action="store_true")
    a = p.parse_args()
    api = Api(a.api, a.token)
    structured = a.mode == "structured"
    check_format_checkers()
    doc = api.json(f"/api/connections/{a.connection}/asyncapi")
    schemas = check_schemas(api, doc, structured)
    items = check_read_models(api, a.connection, a.mapping, schemas)
    check_message_log(api, a.connection, schemas)
    check_events(api, doc, a.brokers, structured, a.mapping)
    if not a.skip_commands and items:
        check_commands(doc, a.brokers, items[0]["itemNumber"])
    check_metrics(api)
    if a.docs:
        env = dict(os.environ,
                   BROKERS=a.brokers,
                   EVENTS_TOPIC=doc["channels"]["events"]["address"],
                   COMMANDS_TOPIC=doc["channels"]["commands"]["address"],
                   RECEIPTS_TOPIC=doc["channels"]["receipts"]["address"],
                   ITEM_NUMBER=items[0]["itemNumber"] if items else "",
                   IDLE_MS="3000")
        check_docs(a.docs, env)
    if PROBLEMS:
        print(f"{len(PROBLEMS)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print("all conformance checks passed")


if __name__ == "__main__":
    main()
