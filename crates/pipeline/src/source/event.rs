//! Webhook bodies as change hints: the one place that reads what M3 (or a gateway in front of it)
//! pushes about a changed row, in each shape Infor documents, and turns it into [`ChangeHint`]s.
//!
//! A hint says "this row of this table was created, updated or deleted, and these are the column
//! values the event carried". It is never the truth: the connector re-reads the row from M3 before
//! anything is written, so nothing here decides a value, a timestamp or a delete.
//!
//! # What Infor documents, and what this module accepts
//!
//! - **Event Hub `EventData` XML.** Infor's IEC guide, page "EventData messages overview"
//!   (docs.infor.com/m3coretech/13.4.x/en-us/m3coretechopolh/ientcolpatug/vjq1493403551760.html),
//!   publishes the XSD of the message a `MECEventHubSubscriber` channel receives:
//!   `EventData{Publisher, DocumentName, Operation, TrackingId (UUID), SentTimestamp,
//!   Document{ElementData{Name, Value?, OldValue?}*}}`, element names in that case, no namespace.
//!   Accepted as XML (`application/xml`, `text/xml`, `*+xml`, or a body starting with `<`);
//!   namespace prefixes are ignored, entities, character references and CDATA are decoded, and
//!   `xsi:nil="true"` reads as an absent value. Several `EventData` under one root element are
//!   several events (the XSD defines one per message; a batch root is tolerated, not documented).
//!   No public page says Event Hub itself POSTs this XML to a URL: it reaches a webhook when IEC,
//!   ION or a relay forwards it, which is why the JSON and XML forms are read alike.
//! - **Operation codes.** The IEC and M3 CE admin pages "Adding a subscription"
//!   (docs.infor.com/m3coretech/13.4.x/en-us/m3coretechopolh/ientcolpatug/jwq1493403551854.html,
//!   docs.infor.com/m3core/latest/en-us/useradminlib_cloud/m3cecoreag_cloud/yzw1601022784641.html)
//!   give the subscription format `Publisher:DocumentName:Operations` (`M3:MITMAS:CU`) and list
//!   the operation characters C create, U update, D delete, S start, X exit, F fail, Q request, R response; the Infor
//!   Process Automation page "The Event Hub Publisher activity node"
//!   (docs.infor.com/lmrk/2023.x/en-us/lmrkolh/lpdug/jno1541477633326.html) spells the long forms
//!   `C = CREATE`, `U = UPDATE`, `D = DELETE`, `S = START`, `X = EXIT`, `Q = REQUEST`,
//!   `R = RESPONSE`. `C`/`U`/`D` and `CREATE`/`UPDATE`/`DELETE` (any case) are accepted; the
//!   others are program or messaging events, not table changes, and are refused naming the code.
//! - **Database events carry whole records.** "M3 Event Overview"
//!   (docs.infor.com/m3udi/16.x/en-us/m3beud/appfoundhs/nom1567533910409.html): database events
//!   hold the complete record before and after the change, the program and the user; only changes
//!   through M3's database layer appear. Hence: after image in `Value`, before image in `OldValue`.
//! - **Event Subscriber Web Service (CMS045/CMS049).** "Event Subscriber Web Service"
//!   (docs.infor.com/help_m3beud_16.x/topic/com.infor.help.appfoundhs_16.x/L53580075661307.html and
//!   docs.infor.com/m3udi/16.x/en-us/m3beud/appfoundhs/zny1567533969128.html): a fire-and-forget
//!   web service call "including the event information in a JSON format", the table name as event
//!   name and `M3` as publisher, optionally with an "information message" sent "together with" the
//!   original event. **The JSON layout itself is not published.** Accepted, as the most likely
//!   renderings of the documented `EventData`: this project's own form
//!   `{"publisher","documentName","operation","trackingId","sentTimestamp",
//!   "elements":[{"name","value","oldValue"}]}`; the XML structure rendered as JSON
//!   (`{"EventData":{..., "Document":{"ElementData":[...]}}}`, a single `ElementData` object
//!   standing for a list of one); field names in any case, with or without `_`/`-`; values as
//!   strings, numbers, booleans or `null`; a JSON array of events; and an event object nested one
//!   or more levels inside an envelope that carries other fields (the information message).
//! - **Event Hub 4** ("Event Hub administration tasks",
//!   docs.infor.com/m3core/2023.x/en-us/useradminlib_cloud/m3cecoreag_cloud/bsb1506676600497.html)
//!   runs on Kafka and adds a `keyValue` element (the event's primary key) used for partitioning;
//!   order is kept per key only. Its wire format for external subscribers is not published;
//!   `keyValue` and any other unknown field is ignored (the key comes from the row's columns).
//!
//! Not found in any public Infor source, so not specially handled: a JSON schema for Event Hub or
//! CMS049 payloads, ION API gateway webhooks (ION documents BODs through connection points, not
//! table events), the time zone and format of `SentTimestamp` (it is not used: a webhook must not
//! set a timestamp), whether `OldValue` is filled on deletes (the before image falls back to the
//! after image per column), and batching of several events per call.
//!
//! # Rules
//!
//! - Table: the event's `DocumentName` when present, else the URL's table; both are compared
//!   without regard to case and a mismatch is an error naming both. The hint's table is upper case.
//! - Column names are upper-cased; values are trimmed. Create/Update carry the after image
//!   (`Value`); Delete carries the before image (`OldValue`), per column falling back to `Value`
//!   when the old value is absent or blank. A column named twice in one event is an error.
//! - Every error names the field (as the body spelled it, with its position) and what was expected.

use std::collections::BTreeMap;
use std::fmt;

use quick_xml::events::Event;
use quick_xml::Reader;

/// What an event says happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The row was created (`C`, `CREATE`).
    Create,
    /// The row was updated (`U`, `UPDATE`).
    Update,
    /// The row was deleted (`D`, `DELETE`).
    Delete,
}

impl Operation {
    /// Event Hub's one-letter code (`C`, `U`, `D`).
    pub fn code(self) -> &'static str {
        match self {
            Operation::Create => "C",
            Operation::Update => "U",
            Operation::Delete => "D",
        }
    }
}

/// One event, read as a hint that a row changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeHint {
    /// The table, upper case (`MITMAS`).
    pub table: String,
    /// What happened to the row.
    pub operation: Operation,
    /// Upper-case column name -> trimmed value: the after image for Create/Update, the before
    /// image (falling back to the after image) for Delete. Only the columns the event carried.
    pub values: BTreeMap<String, String>,
    /// Event Hub's id of the event, when it carried one.
    pub tracking_id: Option<String>,
}

/// The syntax a body was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON.
    Json,
    /// XML.
    Xml,
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyFormat::Json => "JSON",
            BodyFormat::Xml => "XML",
        })
    }
}

/// Why a webhook body cannot be read as change events. Each names the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The `Content-Type` is neither JSON nor XML.
    #[error("Content-Type `{0}`: expected JSON (application/json) or XML (application/xml, text/xml)")]
    ContentType(String),
    /// Nothing but blanks.
    #[error("body: expected an event as JSON or XML, got an empty body")]
    Empty,
    /// The body is not well-formed in its format.
    #[error("body: expected well-formed {format}: {detail}")]
    Syntax {
        /// The format it was read as.
        format: BodyFormat,
        /// The parser's complaint, with its position.
        detail: String,
    },
    /// A required field is absent.
    #[error("{field}: missing; expected {expected}")]
    Missing {
        /// The field, with its position in the body.
        field: String,
        /// What should be there.
        expected: &'static str,
    },
    /// A field holds something else than expected.
    #[error("{field}: expected {expected}, got {got}")]
    Invalid {
        /// The field, with its position in the body.
        field: String,
        /// What should be there.
        expected: &'static str,
        /// What is there.
        got: String,
    },
    /// The event names another table than the URL.
    #[error("{field}: the event's table `{document}` does not match the URL's table `{url}`")]
    TableMismatch {
        /// The field holding the event's table.
        field: String,
        /// The event's table.
        document: String,
        /// The URL's table.
        url: String,
    },
}

/// Read a webhook body: one or more events, each a hint that one row of `table_in_url` changed.
/// `content_type` is the request's `Content-Type`; without one (or with `text/plain`) the body's
/// first character decides between JSON and XML.
pub fn parse_event(body: &[u8], content_type: Option<&str>, table_in_url: &str) -> Result<Vec<ChangeHint>, EventError> {
    let format = body_format(body, content_type)?;
    let text = std::str::from_utf8(body).map_err(|e| EventError::Syntax {
        format,
        detail: format!("not UTF-8 at byte {}", e.valid_up_to()),
    })?;
    let text = text.trim_start_matches('\u{feff}');
    let root = match format {
        BodyFormat::Json => json_tree(text)?,
        BodyFormat::Xml => xml_tree(text)?,
    };
    let mut events = Vec::new();
    collect_events(&root, "", 0, true, &mut events)?;
    if events.is_empty() {
        return Err(EventError::Missing {
            field: "operation".into(),
            expected: EVENT_SHAPE,
        });
    }
    events
        .into_iter()
        .map(|(path, entries)| hint(&path, entries, table_in_url))
        .collect()
}

const EVENT_SHAPE: &str = "an M3 event: EventData{Publisher, DocumentName, Operation, TrackingId, SentTimestamp, \
     Document{ElementData{Name, Value, OldValue}}} or {\"documentName\", \"operation\", \"elements\": [{\"name\", \"value\", \"oldValue\"}]}";

/// Deepest nesting read; webhook events are three levels deep.
const MAX_DEPTH: usize = 16;

fn body_format(body: &[u8], content_type: Option<&str>) -> Result<BodyFormat, EventError> {
    let first = body
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(body)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    let Some(&first) = first else {
        return Err(EventError::Empty);
    };
    let media = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/json" | "text/json" => return Ok(BodyFormat::Json),
        m if m.ends_with("+json") => return Ok(BodyFormat::Json),
        "application/xml" | "text/xml" => return Ok(BodyFormat::Xml),
        m if m.ends_with("+xml") => return Ok(BodyFormat::Xml),
        "" | "text/plain" | "application/octet-stream" => {}
        _ => {
            return Err(EventError::ContentType(
                content_type.unwrap_or_default().trim().to_string(),
            ))
        }
    }
    match first {
        b'<' => Ok(BodyFormat::Xml),
        b'{' | b'[' => Ok(BodyFormat::Json),
        other => Err(EventError::Invalid {
            field: "body".into(),
            expected: "a JSON object or array, or an XML document",
            got: format!("a body starting with {:?}", char::from(other)),
        }),
    }
}

/// JSON and XML read into one shape: objects and elements with children become maps (keys in
/// body order, repeated keys kept), arrays lists, and everything else text (`None` for `null`).
enum Node {
    Text(Option<String>),
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Text(Some(s)) => format!("{:?}", s.chars().take(60).collect::<String>()),
            Node::Text(None) => "null".into(),
            Node::Map(_) => "an object".into(),
            Node::List(_) => "a list".into(),
        }
    }
}

fn json_tree(text: &str) -> Result<Node, EventError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| EventError::Syntax {
        format: BodyFormat::Json,
        detail: e.to_string(),
    })?;
    Ok(json_node(value))
}

fn json_node(value: serde_json::Value) -> Node {
    use serde_json::Value;
    match value {
        Value::Null => Node::Text(None),
        Value::String(s) => Node::Text(Some(s)),
        Value::Bool(b) => Node::Text(Some(b.to_string())),
        Value::Number(n) => Node::Text(Some(n.to_string())),
        Value::Array(items) => Node::List(items.into_iter().map(json_node).collect()),
        Value::Object(map) => Node::Map(map.into_iter().map(|(k, v)| (k, json_node(v))).collect()),
    }
}

/// An element being read: its name, children so far, text so far, and whether it is `xsi:nil`.
struct Open {
    name: String,
    children: Vec<(String, Node)>,
    text: String,
    nil: bool,
}

impl Open {
    fn new(e: &quick_xml::events::BytesStart<'_>) -> Self {
        let nil = e
            .attributes()
            .flatten()
            .any(|a| a.key.local_name().as_ref() == b"nil" && a.value.as_ref().eq_ignore_ascii_case(b"true"));
        Open {
            name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
            children: Vec::new(),
            text: String::new(),
            nil,
        }
    }

    fn into_entry(self) -> (String, Node) {
        let node = if !self.children.is_empty() {
            Node::Map(self.children)
        } else if self.nil {
            Node::Text(None)
        } else {
            Node::Text(Some(self.text))
        };
        (self.name, node)
    }
}

fn xml_tree(text: &str) -> Result<Node, EventError> {
    let syntax = |position: u64, detail: String| EventError::Syntax {
        format: BodyFormat::Xml,
        detail: format!("{detail} (at byte {position})"),
    };
    let mut reader = Reader::from_str(text);
    let document = Open {
        name: String::new(),
        children: Vec::new(),
        text: String::new(),
        nil: false,
    };
    let mut stack = vec![document];
    loop {
        let event = reader
            .read_event()
            .map_err(|e| syntax(reader.error_position(), e.to_string()))?;
        let position = reader.buffer_position();
        let top = stack.last_mut().expect("the document stays open");
        match event {
            Event::Start(e) => {
                if stack.len() > MAX_DEPTH {
                    return Err(syntax(position, format!("more than {MAX_DEPTH} nested elements")));
                }
                stack.push(Open::new(&e));
            }
            Event::Empty(e) => {
                let entry = Open::new(&e).into_entry();
                top.children.push(entry);
            }
            Event::End(_) => {
                let open = stack.pop().expect("the reader checks end tags");
                let entry = open.into_entry();
                stack.last_mut().expect("the document stays open").children.push(entry);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| syntax(position, e.to_string()))?;
                top.text.push_str(&s);
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| syntax(position, e.to_string()))?;
                top.text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| syntax(position, e.to_string()))?.into_owned();
                match r.resolve_char_ref().map_err(|e| syntax(position, e.to_string()))? {
                    Some(c) => top.text.push(c),
                    None => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => top.text.push_str(s),
                        None => return Err(syntax(position, format!("unknown entity &{name};"))),
                    },
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if stack.len() > 1 {
        let open = stack.last().map(|o| o.name.clone()).unwrap_or_default();
        return Err(syntax(
            reader.buffer_position(),
            format!("element <{open}> is not closed"),
        ));
    }
    let document = stack.pop().expect("the document stays open");
    if document.children.is_empty() {
        return Err(syntax(reader.buffer_position(), "no root element".into()));
    }
    Ok(Node::Map(document.children))
}

/// A key as compared: lower case, without `_` and `-` (`OldValue`, `oldValue`, `old_value`).
fn norm(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_event(entries: &[(String, Node)]) -> bool {
    entries.iter().any(|(k, _)| norm(k) == "operation")
}

/// Find the events in a body: the root itself, the items of a root list, every `EventData`, or
/// event objects nested in an envelope. `strict`: every item of this list must be an event.
fn collect_events<'a>(
    node: &'a Node,
    path: &str,
    depth: usize,
    strict: bool,
    out: &mut Vec<(String, &'a [(String, Node)])>,
) -> Result<(), EventError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    match node {
        Node::Map(entries) if is_event(entries) => out.push((path.to_string(), entries)),
        Node::Map(entries) => {
            let before = out.len();
            for (k, v) in entries {
                if norm(k) == "eventdata" {
                    // Each EventData must be an event.
                    for (i, item) in items(v).into_iter().enumerate() {
                        let p = indexed(&field(path, k), i, v);
                        match item {
                            Node::Map(e) if is_event(e) => out.push((p, e)),
                            other => {
                                return Err(missing_operation(&p, other));
                            }
                        }
                    }
                } else if matches!(v, Node::Map(_) | Node::List(_)) {
                    collect_events(v, &field(path, k), depth + 1, false, out)?;
                }
            }
            if strict && out.len() == before {
                return Err(missing_operation(path, node));
            }
        }
        Node::List(list) => {
            for (i, item) in list.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let before = out.len();
                collect_events(item, &p, depth + 1, false, out)?;
                if strict && out.len() == before {
                    return Err(missing_operation(&p, item));
                }
            }
        }
        Node::Text(_) if strict => return Err(missing_operation(path, node)),
        Node::Text(_) => {}
    }
    Ok(())
}

fn missing_operation(path: &str, node: &Node) -> EventError {
    match node {
        Node::Map(_) => EventError::Missing {
            field: field(path, "operation"),
            expected: EVENT_SHAPE,
        },
        other => EventError::Invalid {
            field: if path.is_empty() {
                "body".into()
            } else {
                path.to_string()
            },
            expected: EVENT_SHAPE,
            got: other.describe(),
        },
    }
}

/// A list's items, or a single node standing for a list of one (XML rendered as JSON does that).
fn items(node: &Node) -> Vec<&Node> {
    match node {
        Node::List(list) => list.iter().collect(),
        Node::Text(Some(s)) if s.trim().is_empty() => Vec::new(),
        other => vec![other],
    }
}

fn indexed(path: &str, i: usize, container: &Node) -> String {
    match container {
        Node::List(_) => format!("{path}[{i}]"),
        _ => path.to_string(),
    }
}

/// The first entry whose key matches `name` (normalised).
fn get<'a>(entries: &'a [(String, Node)], name: &str) -> Option<(&'a str, &'a Node)> {
    entries
        .iter()
        .find(|(k, _)| norm(k) == name)
        .map(|(k, v)| (k.as_str(), v))
}

/// Every entry whose key matches `name` (XML repeats elements; JSON keys are unique).
fn get_all<'a>(entries: &'a [(String, Node)], name: &'a str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
    entries
        .iter()
        .filter(move |(k, _)| norm(k) == name)
        .map(|(k, v)| (k.as_str(), v))
}

/// A text field: `Ok(None)` when absent or `null`.
fn text<'a>(
    entries: &'a [(String, Node)],
    path: &str,
    name: &str,
    expected: &'static str,
) -> Result<Option<&'a str>, EventError> {
    match get(entries, name) {
        None | Some((_, Node::Text(None))) => Ok(None),
        Some((_, Node::Text(Some(s)))) => Ok(Some(s.as_str())),
        Some((k, other)) => Err(EventError::Invalid {
            field: field(path, k),
            expected,
            got: other.describe(),
        }),
    }
}

fn hint(path: &str, entries: &[(String, Node)], table_in_url: &str) -> Result<ChangeHint, EventError> {
    let op_key = get(entries, "operation").map_or("operation", |(k, _)| k);
    let operation = match text(entries, path, "operation", "C, U or D (CREATE, UPDATE, DELETE)")? {
        None => {
            return Err(EventError::Missing {
                field: field(path, op_key),
                expected: "C, U or D (CREATE, UPDATE, DELETE)",
            })
        }
        Some(raw) => parse_operation(raw).ok_or_else(|| EventError::Invalid {
            field: field(path, op_key),
            expected: "C, U or D (CREATE, UPDATE, DELETE): a change of a table row",
            got: describe_operation(raw),
        })?,
    };

    let doc_key = get(entries, "documentname").map_or("documentName", |(k, _)| k);
    let document = text(entries, path, "documentname", "the table's name (MITMAS)")?
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let url = table_in_url.trim();
    let table = match (document, url.is_empty()) {
        (Some(d), false) if !d.eq_ignore_ascii_case(url) => {
            return Err(EventError::TableMismatch {
                field: field(path, doc_key),
                document: d.to_string(),
                url: url.to_string(),
            })
        }
        (Some(d), _) => d.to_ascii_uppercase(),
        (None, false) => url.to_ascii_uppercase(),
        (None, true) => {
            return Err(EventError::Missing {
                field: field(path, doc_key),
                expected: "the table's name (MITMAS), in the event or the URL",
            })
        }
    };

    let tracking_id = text(entries, path, "trackingid", "the event's id (a UUID)")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);

    let values = values(path, entries, operation)?;
    Ok(ChangeHint {
        table,
        operation,
        values,
        tracking_id,
    })
}

fn parse_operation(raw: &str) -> Option<Operation> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "C" | "CREATE" => Some(Operation::Create),
        "U" | "UPDATE" => Some(Operation::Update),
        "D" | "DELETE" => Some(Operation::Delete),
        _ => None,
    }
}

fn describe_operation(raw: &str) -> String {
    let what = match raw.trim().to_ascii_uppercase().as_str() {
        "S" | "START" => " (START: a program event, not a row change)",
        "X" | "EXIT" => " (EXIT: a program event, not a row change)",
        "F" | "FAIL" => " (FAIL: a program event, not a row change)",
        "Q" | "REQUEST" => " (REQUEST: a message, not a row change)",
        "R" | "RESPONSE" => " (RESPONSE: a message, not a row change)",
        _ => "",
    };
    format!("{:?}{what}", raw.chars().take(40).collect::<String>())
}

const ELEMENTS: &str = "the row's columns: \"elements\": [{\"name\", \"value\", \"oldValue\"}] or Document/ElementData{Name, Value, OldValue}";

/// The column elements of an event, each with its path: `elements`, `ElementData` at the event's
/// level, or `Document` holding `ElementData` (or holding the elements as a list).
fn elements<'a>(path: &str, entries: &'a [(String, Node)]) -> Result<Option<Vec<(String, &'a Node)>>, EventError> {
    let mut found = false;
    let mut out = Vec::new();
    let add = |base: String, container: &'a Node, out: &mut Vec<(String, &'a Node)>| {
        for (i, item) in items(container).into_iter().enumerate() {
            out.push((indexed(&base, i, container), item));
        }
    };
    for name in ["elements", "elementdata"] {
        for (k, v) in get_all(entries, name) {
            found = true;
            add(field(path, k), v, &mut out);
        }
    }
    for (k, doc) in get_all(entries, "document") {
        found = true;
        let base = field(path, k);
        match doc {
            Node::Map(inner) => {
                let mut any = false;
                for (ek, v) in get_all(inner, "elementdata") {
                    any = true;
                    add(field(&base, ek), v, &mut out);
                }
                if !any && get(inner, "name").is_some() {
                    out.push((base, doc));
                }
            }
            Node::List(_) => add(base, doc, &mut out),
            Node::Text(Some(s)) if s.trim().is_empty() => {}
            other => {
                return Err(EventError::Invalid {
                    field: base,
                    expected: ELEMENTS,
                    got: other.describe(),
                })
            }
        }
    }
    Ok(found.then_some(out))
}

fn values(
    path: &str,
    entries: &[(String, Node)],
    operation: Operation,
) -> Result<BTreeMap<String, String>, EventError> {
    let Some(elements) = elements(path, entries)? else {
        return Err(EventError::Missing {
            field: field(path, "elements"),
            expected: ELEMENTS,
        });
    };
    if elements.is_empty() {
        return Err(EventError::Invalid {
            field: field(path, "elements"),
            expected: ELEMENTS,
            got: "no columns".into(),
        });
    }
    let mut values = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (p, element) in elements {
        let Node::Map(e) = element else {
            return Err(EventError::Invalid {
                field: p,
                expected: "a column: {name, value, oldValue}",
                got: element.describe(),
            });
        };
        let name_key = get(e, "name").map_or("name", |(k, _)| k);
        let name = text(e, &p, "name", "a column name (MMITNO)")?
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| EventError::Missing {
                field: field(&p, name_key),
                expected: "a column name (MMITNO)",
            })?
            .to_ascii_uppercase();
        let after = text(e, &p, "value", "the column's value after the change: text or a number")?.map(str::trim);
        let before = text(
            e,
            &p,
            "oldvalue",
            "the column's value before the change: text or a number",
        )?
        .map(str::trim);
        let value = match operation {
            Operation::Create | Operation::Update => after,
            Operation::Delete => match (before, after) {
                (Some(b), _) if !b.is_empty() => Some(b),
                (_, Some(a)) => Some(a),
                (b, None) => b,
            },
        };
        if !seen.insert(name.clone()) {
            return Err(EventError::Invalid {
                field: field(&p, name_key),
                expected: "each column once per event",
                got: format!("{name} a second time"),
            });
        }
        if let Some(v) = value {
            values.insert(name, v.to_string());
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str, content_type: Option<&str>, table: &str) -> ChangeHint {
        let mut hints = parse_event(body.as_bytes(), content_type, table).unwrap();
        assert_eq!(hints.len(), 1, "{hints:?}");
        hints.remove(0)
    }

    fn err(body: &str, content_type: Option<&str>, table: &str) -> EventError {
        parse_event(body.as_bytes(), content_type, table).unwrap_err()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The field an error names.
    fn field_of(e: &EventError) -> &str {
        match e {
            EventError::Missing { field, .. }
            | EventError::Invalid { field, .. }
            | EventError::TableMismatch { field, .. } => field,
            other => panic!("no field in {other:?}"),
        }
    }

    const TODAY: &str = r#"{"publisher":"M3","documentName":"MITMAS","operation":"U",
        "trackingId":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","sentTimestamp":"2026-03-01T10:00:00Z",
        "elements":[{"name":"MMCONO","value":100,"oldValue":100},
                    {"name":"mmitno","value":"A100      ","oldValue":"A100"},
                    {"name":"MMITDS","value":" Bolt ","oldValue":"Screw"},
                    {"name":"MMLMTS","value":"1767261600000"}]}"#;

    #[test]
    fn todays_json_form_is_a_hint_with_the_after_image() {
        let h = one(TODAY, Some("application/json"), "MITMAS");
        assert_eq!(h.table, "MITMAS");
        assert_eq!(h.operation, Operation::Update);
        assert_eq!(h.tracking_id.as_deref(), Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        assert_eq!(
            h.values,
            map(&[
                ("MMCONO", "100"),
                ("MMITNO", "A100"),
                ("MMITDS", "Bolt"),
                ("MMLMTS", "1767261600000")
            ])
        );
    }

    #[test]
    fn event_hub_xml_per_infors_xsd() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<EventData>
  <Publisher>M3</Publisher>
  <DocumentName>MITMAS</DocumentName>
  <Operation>C</Operation>
  <TrackingId>6f1c0d8e-2b7a-4c55-9a3e-0c1d2e3f4a5b</TrackingId>
  <SentTimestamp>2026-03-01T10:00:00.000+01:00</SentTimestamp>
  <Document>
    <ElementData><Name>MMCONO</Name><Value>100</Value><OldValue/></ElementData>
    <ElementData><Name>MMITNO</Name><Value>A&amp;B &#x31;</Value></ElementData>
    <ElementData><Name>MMITDS</Name><Value><![CDATA[<bolt> ]]></Value><OldValue></OldValue></ElementData>
    <ElementData><Name>MMUNMS</Name></ElementData>
  </Document>
</EventData>"#;
        let h = one(body, Some("text/xml; charset=UTF-8"), "MITMAS");
        assert_eq!(h.operation, Operation::Create);
        assert_eq!(h.tracking_id.as_deref(), Some("6f1c0d8e-2b7a-4c55-9a3e-0c1d2e3f4a5b"));
        // MMUNMS carried no Value: not in the after image.
        assert_eq!(
            h.values,
            map(&[("MMCONO", "100"), ("MMITNO", "A&B 1"), ("MMITDS", "<bolt>")])
        );
        // Without a Content-Type the leading `<` says XML.
        assert_eq!(one(body, None, "MITMAS"), h);
    }

    #[test]
    fn xml_namespaces_nil_and_several_events_under_one_root() {
        let body = r#"<ev:Events xmlns:ev="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ev:EventData><ev:DocumentName>MITMAS</ev:DocumentName><ev:Operation>DELETE</ev:Operation>
    <ev:Document><ev:ElementData><ev:Name>MMITNO</ev:Name><ev:Value xsi:nil="true"/><ev:OldValue>A1</ev:OldValue></ev:ElementData></ev:Document>
  </ev:EventData>
  <ev:EventData><ev:DocumentName>MITMAS</ev:DocumentName><ev:Operation>u</ev:Operation>
    <ev:Document><ev:ElementData><ev:Name>MMITNO</ev:Name><ev:Value>A2</ev:Value></ev:ElementData></ev:Document>
  </ev:EventData>
</ev:Events>"#;
        let hints = parse_event(body.as_bytes(), Some("application/xml"), "MITMAS").unwrap();
        assert_eq!(hints.len(), 2);
        assert_eq!(hints[0].operation, Operation::Delete);
        assert_eq!(hints[0].values, map(&[("MMITNO", "A1")]));
        assert_eq!(hints[0].tracking_id, None);
        assert_eq!(hints[1].operation, Operation::Update);
        assert_eq!(hints[1].values, map(&[("MMITNO", "A2")]));
    }

    #[test]
    fn eventdata_rendered_as_json_with_pascal_case_and_a_single_element() {
        let body = r#"{"EventData":{"Publisher":"M3","DocumentName":"mitmas","Operation":"Update",
            "TrackingId":"t-1","Document":{"ElementData":{"Name":"MMITNO","Value":"A1","OldValue":"A0"}}}}"#;
        let h = one(body, Some("application/json"), "MITMAS");
        assert_eq!(h.table, "MITMAS");
        assert_eq!(h.operation, Operation::Update);
        assert_eq!(h.values, map(&[("MMITNO", "A1")]));

        let list = r#"{"eventData":[{"documentName":"MITMAS","operation":"C","document":{"elementData":[{"name":"MMITNO","value":"A1"}]}},
            {"documentName":"MITMAS","operation":"D","old_value_ignored":1,"element_data":[{"NAME":"MMITNO","old_value":"A2"}]}]}"#;
        let hints = parse_event(list.as_bytes(), None, "MITMAS").unwrap();
        assert_eq!(hints.len(), 2);
        assert_eq!(hints[0].values, map(&[("MMITNO", "A1")]));
        assert_eq!(hints[1].operation, Operation::Delete);
        assert_eq!(hints[1].values, map(&[("MMITNO", "A2")]));
    }

    #[test]
    fn a_json_array_is_several_events_and_an_envelope_is_looked_through() {
        let body = format!(
            "[{TODAY}, {}]",
            TODAY.replace(r#""operation":"U""#, r#""operation":"create""#)
        );
        let hints = parse_event(body.as_bytes(), Some("application/json"), "MITMAS").unwrap();
        assert_eq!(
            hints.iter().map(|h| h.operation).collect::<Vec<_>>(),
            [Operation::Update, Operation::Create]
        );
        // CMS049 sends the event "together with" an optional information message; its layout is
        // not published, so an event nested beside other fields is found.
        let wrapped = format!(r#"{{"message":"Item changed in MMS001","subscription":{{"id":7}},"event":{TODAY}}}"#);
        assert_eq!(one(&wrapped, None, "MITMAS"), one(TODAY, None, "MITMAS"));
    }

    #[test]
    fn delete_carries_the_before_image_falling_back_to_the_after_image() {
        let body = r#"{"documentName":"MITMAS","operation":"D","elements":[
            {"name":"MMCONO","value":"","oldValue":"100"},
            {"name":"MMITNO","value":"A1","oldValue":"  "},
            {"name":"MMITDS","oldValue":"Bolt"},
            {"name":"MMUNMS","value":null,"oldValue":null}]}"#;
        let h = one(body, None, "MITMAS");
        assert_eq!(h.operation, Operation::Delete);
        assert_eq!(
            h.values,
            map(&[("MMCONO", "100"), ("MMITNO", "A1"), ("MMITDS", "Bolt")])
        );
    }

    #[test]
    fn the_table_comes_from_the_event_or_else_the_url() {
        let body = r#"{"operation":"U","elements":[{"name":"MMITNO","value":"A1"}]}"#;
        assert_eq!(one(body, None, "mitmas").table, "MITMAS");
        let e = err(TODAY, None, "OCUSMA");
        assert_eq!(
            e,
            EventError::TableMismatch {
                field: "documentName".into(),
                document: "MITMAS".into(),
                url: "OCUSMA".into()
            }
        );
        assert!(
            e.to_string().contains("MITMAS") && e.to_string().contains("OCUSMA"),
            "{e}"
        );
        assert_eq!(field_of(&err(body, None, " ")), "documentName");
    }

    #[test]
    fn operations_other_than_row_changes_are_refused_naming_the_code() {
        for code in ["S", "X", "F", "Q", "R", "START", "upsert", ""] {
            let body = TODAY.replace(r#""operation":"U""#, &format!(r#""operation":"{code}""#));
            let e = err(&body, None, "MITMAS");
            assert_eq!(field_of(&e), "operation", "{code}: {e}");
            assert!(e.to_string().contains(&format!("{code:?}")), "{e}");
        }
        let xml = "<EventData><DocumentName>MITMAS</DocumentName><Operation>S</Operation><Document/></EventData>";
        let e = err(xml, None, "MITMAS");
        assert_eq!(field_of(&e), "EventData.Operation", "{e}");
        assert!(e.to_string().contains("START"), "{e}");
    }

    #[test]
    fn content_types_pick_the_parser_and_unknown_ones_are_refused() {
        assert_eq!(
            one(TODAY, Some("application/json; charset=utf-8"), "MITMAS").operation,
            Operation::Update
        );
        assert_eq!(one(TODAY, Some("text/plain"), "MITMAS").operation, Operation::Update);
        assert_eq!(
            err(TODAY, Some("application/x-www-form-urlencoded"), "MITMAS"),
            EventError::ContentType("application/x-www-form-urlencoded".into())
        );
        // Declared XML but sent JSON: the XML reader complains.
        assert!(matches!(
            err(TODAY, Some("application/xml"), "MITMAS"),
            EventError::Syntax {
                format: BodyFormat::Xml,
                ..
            }
        ));
    }

    #[test]
    fn malformed_bodies_name_the_format() {
        assert_eq!(err("  \n", None, "MITMAS"), EventError::Empty);
        assert_eq!(err("", Some("application/json"), "MITMAS"), EventError::Empty);
        assert!(matches!(
            err(r#"{"operation":"#, None, "MITMAS"),
            EventError::Syntax {
                format: BodyFormat::Json,
                ..
            }
        ));
        assert!(matches!(
            err("<EventData><Operation>U</Oops></EventData>", None, "MITMAS"),
            EventError::Syntax {
                format: BodyFormat::Xml,
                ..
            }
        ));
        assert!(matches!(
            err("<EventData><Operation>U", None, "MITMAS"),
            EventError::Syntax {
                format: BodyFormat::Xml,
                ..
            }
        ));
        assert!(matches!(
            err("<EventData><Operation>&bogus;</Operation></EventData>", None, "MITMAS"),
            EventError::Syntax {
                format: BodyFormat::Xml,
                ..
            }
        ));
        let e = parse_event(b"{\"operation\":\"\xff\"}", None, "MITMAS").unwrap_err();
        assert!(
            matches!(
                e,
                EventError::Syntax {
                    format: BodyFormat::Json,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(field_of(&err("operation=U", None, "MITMAS")), "body");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: &[(&str, &str)] = &[
            (r#"{"documentName":"MITMAS","elements":[]}"#, "operation"),
            (r#"[{"operation":"U","elements":[{"name":"MMITNO","value":"1"}]}, {"foo":1}]"#, "[1].operation"),
            (r#"[{"operation":"U","elements":[{"name":"MMITNO","value":"1"}]}, 5]"#, "[1]"),
            (r#"{"operation":{"code":"U"},"elements":[]}"#, "operation"),
            (r#"{"operation":"U","documentName":["MITMAS"],"elements":[]}"#, "documentName"),
            (r#"{"operation":"U","trackingId":{},"elements":[{"name":"MMITNO","value":"1"}]}"#, "trackingId"),
            (r#"{"operation":"U"}"#, "elements"),
            (r#"{"operation":"U","elements":[]}"#, "elements"),
            (r#"{"operation":"U","elements":"MMITNO"}"#, "elements"),
            (r#"{"operation":"U","elements":[{"value":"1"}]}"#, "elements[0].name"),
            (r#"{"operation":"U","elements":[{"name":"MMITNO","value":"1"},{"name":" ","value":"2"}]}"#, "elements[1].name"),
            (r#"{"operation":"U","elements":[{"name":"MMITNO","value":{"x":1}}]}"#, "elements[0].value"),
            (r#"{"operation":"D","elements":[{"name":"MMITNO","oldValue":[1]}]}"#, "elements[0].oldValue"),
            (r#"{"operation":"U","elements":[{"name":"MMITNO","value":"1"},{"name":"mmitno","value":"2"}]}"#, "elements[1].name"),
            (r#"{"operation":"U","Document":"MMITNO=1"}"#, "Document"),
            (r#"{"EventData":[{"Operation":"U","Document":{"ElementData":{"Name":"MMITNO","Value":"1"}}},{"Document":{}}]}"#, "EventData[1].operation"),
            ("<EventData><Operation>U</Operation><Document/></EventData>", "EventData.elements"),
            ("<EventData><Operation>U</Operation><Document><ElementData><Value>1</Value></ElementData></Document></EventData>", "EventData.Document.ElementData.name"),
            ("<EventData><DocumentName>MITMAS</DocumentName></EventData>", "EventData.operation"),
        ];
        for (body, field) in cases {
            let e = err(body, None, "MITMAS");
            assert_eq!(field_of(&e), *field, "{body}: {e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn operation_codes_round_trip() {
        for op in [Operation::Create, Operation::Update, Operation::Delete] {
            assert_eq!(parse_operation(op.code()), Some(op));
        }
    }
}
