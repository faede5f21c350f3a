//! The EXPORTMI query language: a tokenizer, a recursive-descent parser and an evaluator over
//! the simulated tables.
//!
//! Grammar (keywords case-insensitive):
//! ```text
//! query   := columns "from" TABLE [ "where" expr ] [ "order" "by" order ("," order)* ]
//! columns := "*" | COLUMN ("," COLUMN)*
//! order   := COLUMN [ "asc" | "desc" ]
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | operand OP operand
//! operand := COLUMN | 'string' | number
//! OP      := "=" | "<>" | "!=" | "<" | "<=" | ">" | ">="
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;

use mapping::catalog::ColumnKind;

use crate::db::{key_part, parse_dec, KeyPart, TableData};
use crate::modes::CompanyCondition;
use crate::rows::StampRange;

/// An error in a query: where (1-based character position) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 1-based character position in the query, 0 when not tied to a position.
    pub position: usize,
    /// Human-readable explanation.
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.position > 0 {
            write!(f, "Position {}: {}", self.position, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for QueryError {}

/// A lexical token.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Star,
    Comma,
    LParen,
    RParen,
    Op(CmpOp),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Star => "'*'".into(),
            Tok::Comma => "','".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Op(op) => format!("'{}'", op.symbol()),
            Tok::End => "end of query".into(),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A column by full name (upper-cased).
    Column(String),
    /// A string literal (quotes removed, `''` unescaped).
    Str(String),
    /// A numeric literal as written.
    Num(String),
}

/// A boolean filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a or b`
    Or(Box<Expr>, Box<Expr>),
    /// `a and b`
    And(Box<Expr>, Box<Expr>),
    /// `not a`
    Not(Box<Expr>),
    /// `left op right`
    Cmp(Operand, CmpOp, Operand),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected columns; empty means `*`.
    pub columns: Vec<String>,
    /// The table (upper-cased).
    pub table: String,
    /// The `where` filter.
    pub filter: Option<Expr>,
    /// `order by` columns with `true` for descending.
    pub order: Vec<(String, bool)>,
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            '*' => Some(Tok::Star),
            ',' => Some(Tok::Comma),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '=' => Some(Tok::Op(CmpOp::Eq)),
            _ => None,
        };
        if let Some(t) = single {
            out.push((t, pos));
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        match c {
            '<' => {
                let (t, n) = match next {
                    Some('=') => (CmpOp::Le, 2),
                    Some('>') => (CmpOp::Ne, 2),
                    _ => (CmpOp::Lt, 1),
                };
                out.push((Tok::Op(t), pos));
                i += n;
            }
            '>' => {
                let (t, n) = if next == Some('=') {
                    (CmpOp::Ge, 2)
                } else {
                    (CmpOp::Gt, 1)
                };
                out.push((Tok::Op(t), pos));
                i += n;
            }
            '!' => {
                if next != Some('=') {
                    return Err(QueryError {
                        position: pos + 1,
                        message: "expected '=' after '!'".into(),
                    });
                }
                out.push((Tok::Op(CmpOp::Ne), pos));
                i += 2;
            }
            '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(QueryError {
                                position: pos,
                                message: "unterminated string literal, expected closing quote".into(),
                            })
                        }
                        Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                            s.push('\'');
                            j += 2;
                        }
                        Some('\'') => {
                            j += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), pos));
                i = j;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '.') && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                let mut j = i + 1;
                let mut dots = usize::from(c == '.');
                while let Some(&ch) = chars.get(j) {
                    if ch.is_ascii_digit() {
                        j += 1;
                    } else if ch == '.' {
                        dots += 1;
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[i..j].iter().collect();
                if dots > 1 || parse_dec(&text).is_none() {
                    return Err(QueryError {
                        position: pos,
                        message: format!("malformed number '{text}'"),
                    });
                }
                if chars.get(j).is_some_and(|ch| ch.is_alphabetic() || *ch == '_') {
                    return Err(QueryError {
                        position: j + 1,
                        message: format!("unexpected character '{}' after number", chars[j]),
                    });
                }
                out.push((Tok::Num(text), pos));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '@' || c == '#' || c == '$' => {
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '@' | '#' | '$'))
                {
                    j += 1;
                }
                out.push((Tok::Ident(chars[i..j].iter().collect()), pos));
                i = j;
            }
            other => {
                return Err(QueryError {
                    position: pos,
                    message: format!("unexpected character '{other}'"),
                })
            }
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

const KEYWORDS: &[&str] = &["from", "where", "order", "by", "and", "or", "not", "asc", "desc"];

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    /// Open `(` and `not` around the current position.
    depth: usize,
    /// Comparisons so far.
    comparisons: usize,
}

/// Limits that keep the parser and evaluator far from the stack's end.
const MAX_DEPTH: usize = 64;
const MAX_COMPARISONS: usize = 512;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }

    fn pos(&self) -> usize {
        self.toks[self.i].1
    }

    fn bump(&mut self) -> Tok {
        let t = self.toks[self.i].0.clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn err<T>(&self, expected: &str) -> Result<T, QueryError> {
        Err(QueryError {
            position: self.pos(),
            message: format!("expected {expected}, found {}", self.peek().describe()),
        })
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.err(&format!("'{kw}'"))
        }
    }

    fn name(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek() {
            Tok::Ident(s) if !KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k)) => {
                let s = s.to_ascii_uppercase();
                self.bump();
                Ok(s)
            }
            _ => self.err(what),
        }
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        let mut columns = Vec::new();
        if *self.peek() == Tok::Star {
            self.bump();
        } else {
            columns.push(self.name("column name or '*'")?);
            while *self.peek() == Tok::Comma {
                self.bump();
                columns.push(self.name("column name")?);
            }
        }
        if !self.peek().is_kw("from") {
            return self.err(if columns.is_empty() { "'from'" } else { "',' or 'from'" });
        }
        self.bump();
        let table = self.name("table name")?;
        let filter = if self.eat_kw("where") {
            Some(self.or_expr()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let col = self.name("column name")?;
                let desc = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                order.push((col, desc));
                if *self.peek() == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        if *self.peek() != Tok::End {
            let expected = match (filter.is_some(), order.is_empty()) {
                (_, false) => "',', 'asc', 'desc' or end of query",
                (true, true) => "'and', 'or', 'order by' or end of query",
                (false, true) => "'where', 'order by' or end of query",
            };
            return self.err(expected);
        }
        Ok(Query {
            columns,
            table,
            filter,
            order,
        })
    }

    fn or_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        while self.eat_kw("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.eat_kw("and") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let nested = self.peek().is_kw("not") || *self.peek() == Tok::LParen;
        if nested {
            if self.depth >= MAX_DEPTH {
                return self.err("at most 64 nested '(' or 'not'");
            }
            self.depth += 1;
            let e = if self.eat_kw("not") {
                Expr::Not(Box::new(self.unary()?))
            } else {
                self.bump();
                let e = self.or_expr()?;
                if *self.peek() != Tok::RParen {
                    return self.err("')', 'and' or 'or'");
                }
                self.bump();
                e
            };
            self.depth -= 1;
            return Ok(e);
        }
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return self.err("the end of the condition (at most 512 comparisons)");
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Tok::Op(op) => *op,
            _ => return self.err("comparison operator (=, <>, !=, <, <=, >, >=)"),
        };
        self.bump();
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(Operand::Str(s))
            }
            Tok::Num(n) => {
                self.bump();
                Ok(Operand::Num(n))
            }
            Tok::Ident(_) => Ok(Operand::Column(self.name("column name, string or number")?)),
            _ => self.err("column name, string or number"),
        }
    }
}

/// Parses an EXPORTMI query.
pub fn parse(src: &str) -> Result<Query, QueryError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        comparisons: 0,
    };
    p.query()
}

/// A compiled operand: a column position or a literal (with its numeric value if it has one).
#[derive(Debug, Clone)]
enum Val {
    Col(usize, ColumnKind),
    Lit {
        text: String,
        num: Option<i128>,
        numeric: bool,
    },
}

impl Val {
    fn text<'a>(&'a self, row: &'a [String]) -> &'a str {
        match self {
            Val::Col(p, _) => &row[*p],
            Val::Lit { text, .. } => text,
        }
    }

    fn num(&self, row: &[String]) -> Option<i128> {
        match self {
            Val::Col(p, _) => parse_dec(&row[*p]),
            Val::Lit { num, .. } => *num,
        }
    }

    fn is_numeric_col(&self) -> bool {
        matches!(self, Val::Col(_, k) if *k != ColumnKind::Alpha)
    }
}

#[derive(Debug, Clone)]
enum Compiled {
    /// A comparison dropped by [`CompanyCondition::Ignored`].
    True,
    Or(Box<Compiled>, Box<Compiled>),
    And(Box<Compiled>, Box<Compiled>),
    Not(Box<Compiled>),
    /// `left op right`, compared numerically when `numeric`.
    Cmp {
        l: Val,
        op: CmpOp,
        r: Val,
        numeric: bool,
    },
}

/// Whether an operand is the table's company column.
fn is_company(o: &Operand, data: &TableData) -> bool {
    matches!(o, Operand::Column(c) if data.schema.column_pos(c) == Some(data.schema.cono_pos()))
}

/// Whether the `where` of a query compares the company column (xxCONO) with anything.
pub(crate) fn filters_company(q: &Query, data: &TableData) -> bool {
    fn walk(e: &Expr, data: &TableData) -> bool {
        match e {
            Expr::Or(a, b) | Expr::And(a, b) => walk(a, data) || walk(b, data),
            Expr::Not(a) => walk(a, data),
            Expr::Cmp(l, _, r) => is_company(l, data) || is_company(r, data),
        }
    }
    q.filter.as_ref().is_some_and(|f| walk(f, data))
}

fn compile(e: &Expr, data: &TableData, company: CompanyCondition) -> Result<Compiled, QueryError> {
    let operand = |o: &Operand| -> Result<Val, QueryError> {
        Ok(match o {
            Operand::Column(c) => {
                let pos = column_pos(data, c)?;
                Val::Col(pos, data.schema.col(pos).kind)
            }
            Operand::Str(s) => Val::Lit {
                text: s.clone(),
                num: parse_dec(s),
                numeric: false,
            },
            Operand::Num(n) => Val::Lit {
                text: n.clone(),
                num: parse_dec(n),
                numeric: true,
            },
        })
    };
    Ok(match e {
        Expr::Or(a, b) => Compiled::Or(
            Box::new(compile(a, data, company)?),
            Box::new(compile(b, data, company)?),
        ),
        Expr::And(a, b) => Compiled::And(
            Box::new(compile(a, data, company)?),
            Box::new(compile(b, data, company)?),
        ),
        Expr::Not(a) => Compiled::Not(Box::new(compile(a, data, company)?)),
        Expr::Cmp(l, op, r) => {
            let (lv, rv) = (operand(l)?, operand(r)?);
            for (v, other) in [(&lv, &rv), (&rv, &lv)] {
                if let (
                    Val::Lit {
                        text, numeric: false, ..
                    },
                    Val::Col(_, k),
                ) = (v, other)
                {
                    if *k != ColumnKind::Alpha && parse_dec(text).is_none() {
                        return Err(QueryError {
                            position: 0,
                            message: format!("'{text}' is not a number; cannot compare it with a numeric column"),
                        });
                    }
                }
            }
            if company == CompanyCondition::Ignored && (is_company(l, data) || is_company(r, data)) {
                return Ok(Compiled::True);
            }
            let lit_numeric = |v: &Val| matches!(v, Val::Lit { numeric: true, .. });
            let numeric = lv.is_numeric_col() || rv.is_numeric_col() || (lit_numeric(&lv) && lit_numeric(&rv));
            Compiled::Cmp {
                l: lv,
                op: *op,
                r: rv,
                numeric,
            }
        }
    })
}

fn column_pos(data: &TableData, name: &str) -> Result<usize, QueryError> {
    data.schema.column_pos(name).ok_or_else(|| QueryError {
        position: 0,
        message: format!("Column {name} does not exist in table {}", data.schema.def.name),
    })
}

fn eval(c: &Compiled, row: &[String]) -> bool {
    match c {
        Compiled::True => true,
        Compiled::Or(a, b) => eval(a, row) || eval(b, row),
        Compiled::And(a, b) => eval(a, row) && eval(b, row),
        Compiled::Not(a) => !eval(a, row),
        Compiled::Cmp { l, op, r, numeric } => {
            let ord = match (*numeric).then(|| (l.num(row), r.num(row))) {
                Some((Some(x), Some(y))) => x.cmp(&y),
                _ => l.text(row).trim().cmp(r.text(row).trim()),
            };
            op.holds(ord)
        }
    }
}

/// Bounds on the primary key that every matching row satisfies: an equality prefix (the
/// session company, then key columns compared with `=` in the top-level `and`s) and optional
/// bounds on the next key column.
struct KeyRange {
    prefix: Vec<KeyPart>,
    lower: Option<KeyPart>,
    upper: Option<(KeyPart, bool)>,
}

/// A conjunct `column op literal` (either way round) as (column position, op seen from the
/// column, literal).
fn column_vs_literal(c: &Compiled) -> Option<(usize, CmpOp, &Val)> {
    let Compiled::Cmp { l, op, r, .. } = c else {
        return None;
    };
    match (l, r) {
        (Val::Col(p, _), lit @ Val::Lit { .. }) => Some((*p, *op, lit)),
        (lit @ Val::Lit { .. }, Val::Col(p, _)) => {
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Ge => CmpOp::Le,
                other => *other,
            };
            Some((*p, flipped, lit))
        }
        _ => None,
    }
}

/// The key part a literal stands for when compared with a key column, as `eval` compares it
/// (alpha: trimmed text; numeric: the decimal value).
fn literal_key(data: &TableData, pos: usize, lit: &Val) -> Option<KeyPart> {
    let Val::Lit { text, num, .. } = lit else {
        return None;
    };
    match data.schema.col(pos).kind {
        ColumnKind::Alpha => Some(KeyPart::Str(text.trim().to_string())),
        _ => num.map(KeyPart::Num),
    }
}

/// The top-level `and`s of a filter that compare a column with a literal.
fn conjuncts(filter: Option<&Compiled>) -> Vec<(usize, CmpOp, &Val)> {
    let mut conjuncts = Vec::new();
    let mut stack: Vec<&Compiled> = filter.into_iter().collect();
    while let Some(c) = stack.pop() {
        match c {
            Compiled::And(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            other => conjuncts.extend(column_vs_literal(other)),
        }
    }
    conjuncts
}

fn key_range(conjuncts: &[(usize, CmpOp, &Val)], data: &TableData, cono: u32) -> KeyRange {
    let schema = &data.schema;
    let cono_pos = schema.cono_pos();
    let mut range = KeyRange {
        prefix: vec![key_part(schema.col(cono_pos), &cono.to_string())],
        lower: None,
        upper: None,
    };
    for &pos in &schema.key_pos[1..] {
        let bound = |ops: &[CmpOp]| {
            conjuncts
                .iter()
                .filter(|(p, op, _)| *p == pos && ops.contains(op))
                .find_map(|(_, op, lit)| Some((literal_key(data, pos, lit)?, *op)))
        };
        if let Some((k, _)) = bound(&[CmpOp::Eq]) {
            range.prefix.push(k);
            continue;
        }
        range.lower = bound(&[CmpOp::Gt, CmpOp::Ge]).map(|(k, _)| k);
        range.upper = bound(&[CmpOp::Lt, CmpOp::Le]).map(|(k, op)| (k, op == CmpOp::Le));
        break;
    }
    range
}

impl KeyRange {
    /// Whether a key lies in the range (the keys a key-order scan would visit).
    fn contains(&self, key: &[KeyPart]) -> bool {
        if !key.starts_with(&self.prefix) {
            return false;
        }
        let Some(part) = key.get(self.prefix.len()) else {
            return true;
        };
        self.lower.as_ref().is_none_or(|l| part >= l)
            && self
                .upper
                .as_ref()
                .is_none_or(|(u, inclusive)| part < u || (*inclusive && part == u))
    }
}

/// Bounds on the change timestamp (xxLMTS) that every matching row satisfies, from the
/// top-level `and`s comparing it with a number; `None` when nothing bounds it.
///
/// `eval` compares LMTS numerically when both sides parse, and every stored LMTS is an
/// integer in [`parse_dec`] units, so `> x` is `>= x + 1` and `< x` is `<= x - 1`.
fn stamp_range(conjuncts: &[(usize, CmpOp, &Val)], data: &TableData) -> Option<StampRange> {
    let lmts = data.rows.lmts_pos()?;
    if data.schema.col(lmts).kind == ColumnKind::Alpha {
        // Compared as text: numeric bounds would not hold.
        return None;
    }
    let (mut lo, mut hi): (Option<i128>, Option<i128>) = (None, None);
    for (p, op, lit) in conjuncts {
        let Val::Lit { num: Some(x), .. } = lit else {
            continue;
        };
        if *p != lmts {
            continue;
        }
        let x = *x;
        let (l, h) = match op {
            CmpOp::Eq => (Some(x), Some(x)),
            CmpOp::Ge => (Some(x), None),
            CmpOp::Gt => (Some(x.saturating_add(1)), None),
            CmpOp::Le => (None, Some(x)),
            CmpOp::Lt => (None, Some(x.saturating_sub(1))),
            CmpOp::Ne => (None, None),
        };
        lo = lo.max(l);
        hi = match (hi, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if lo.is_none() && hi.is_none() {
        return None;
    }
    let bound = |v: Option<i128>| v.map_or(Bound::Unbounded, Bound::Included);
    Some(StampRange {
        lower: bound(lo),
        upper: bound(hi),
    })
}

/// The rows in key order that a window on the change timestamp bounds, read through the
/// LMTS index, when that is cheaper than the key-order scan of `range`: `None` when the
/// filter does not bound LMTS, the key range is one row, or the window holds too many rows.
/// `limit` is how many matches the scan could stop after.
fn rows_by_stamp<'a>(
    conjuncts: &[(usize, CmpOp, &Val)],
    data: &'a TableData,
    range: &KeyRange,
    limit: usize,
) -> Option<Vec<&'a Vec<String>>> {
    if range.prefix.len() >= data.schema.key_pos.len() {
        return None;
    }
    let stamps = stamp_range(conjuncts, data)?;
    let total = data.rows.len();
    // Reading a row through the index costs a few times what the scan pays for a row.
    const INDEX_COST: usize = 4;
    // A scan that can stop after `limit` matches reads about limit * total / n rows of a
    // window of n rows, so the index pays when INDEX_COST * n <= that (and <= total).
    let mut cap = total / INDEX_COST;
    if limit != usize::MAX {
        let by_limit = (limit as f64 * total as f64 / INDEX_COST as f64).sqrt() as usize;
        cap = cap.min(by_limit);
    }
    let mut keys = data.rows.keys_by_stamp(stamps, cap, |k| range.contains(k))?;
    keys.sort_unstable();
    Some(keys.into_iter().filter_map(|k| data.rows.get(k)).collect())
}

/// One `order by` value of a row, parsed once for sorting.
#[derive(Debug, Clone, Copy)]
enum SortVal<'a> {
    /// An alphanumeric value (trimmed).
    Text(&'a str),
    /// A numeric or date value, with its text for values that do not parse.
    Num(Option<i128>, &'a str),
}

/// Compares two values of one column: numerically for numeric and date columns (as text when
/// one does not parse), alphanumeric ones trimmed.
fn cmp_sort_val(a: SortVal<'_>, b: SortVal<'_>) -> Ordering {
    match (a, b) {
        (SortVal::Num(Some(x), _), SortVal::Num(Some(y), _)) => x.cmp(&y),
        (SortVal::Num(_, x), SortVal::Num(_, y)) => x.cmp(y),
        (SortVal::Text(x), SortVal::Text(y)) => x.cmp(y),
        (SortVal::Text(x), SortVal::Num(_, y)) | (SortVal::Num(_, x), SortVal::Text(y)) => x.cmp(y),
    }
}

/// Sorts rows (given in key order) by `order`, ties kept in key order, like a stable sort
/// with [`cmp_sort_val`]; each value is parsed once, and with `maxrecs` only the first
/// `maxrecs` rows are fully sorted.
fn sort_rows<'a>(
    rows: Vec<&'a Vec<String>>,
    order: &[(usize, bool)],
    data: &TableData,
    maxrecs: usize,
) -> Vec<&'a Vec<String>> {
    let schema = &data.schema;
    let mut keyed: Vec<(Vec<SortVal<'a>>, usize, &'a Vec<String>)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let vals = order
                .iter()
                .map(|&(p, _)| match schema.col(p).kind {
                    ColumnKind::Alpha => SortVal::Text(r[p].trim()),
                    _ => SortVal::Num(parse_dec(&r[p]), &r[p]),
                })
                .collect();
            (vals, i, r)
        })
        .collect();
    let cmp = |a: &(Vec<SortVal<'a>>, usize, &'a Vec<String>), b: &(Vec<SortVal<'a>>, usize, &'a Vec<String>)| {
        for ((x, y), &(_, desc)) in a.0.iter().zip(&b.0).zip(order) {
            let o = cmp_sort_val(*x, *y);
            let o = if desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.1.cmp(&b.1)
    };
    if maxrecs > 0 && keyed.len() > maxrecs {
        keyed.select_nth_unstable_by(maxrecs - 1, cmp);
        keyed.truncate(maxrecs);
    }
    keyed.sort_unstable_by(cmp);
    keyed.into_iter().map(|(_, _, r)| r).collect()
}

/// The result of running a query: the selected columns' positions and the matching rows'
/// selected values.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Selected columns by full name.
    pub columns: Vec<String>,
    /// Selected column lengths (for `SelectPad`).
    pub lengths: Vec<usize>,
    /// One entry per row, values in `columns` order (normalized, unpadded).
    pub rows: Vec<Vec<String>>,
}

/// Runs a query on one table, restricted to company `cono`, returning at most `maxrecs` rows
/// (`0` = no limit); `company` says how comparisons on the company column count.
///
/// Rows are visited in key order within the part of the key the top-level `and`s pin down
/// (a point read touches one row); without `order by` (or with one the key order already
/// satisfies) the scan stops after `maxrecs` matches; only matching rows are copied. When
/// the top-level `and`s bound the change timestamp (xxLMTS) to a window holding few rows,
/// only the window's rows are read (through the table's LMTS index) and put in key order
/// first, so the answer is the same as the scan's.
pub(crate) fn run(
    q: &Query,
    data: &TableData,
    cono: u32,
    maxrecs: usize,
    company: CompanyCondition,
) -> Result<QueryResult, QueryError> {
    let schema = &data.schema;
    let positions: Vec<usize> = if q.columns.is_empty() {
        (0..schema.def.columns.len()).collect()
    } else {
        q.columns
            .iter()
            .map(|c| column_pos(data, c))
            .collect::<Result<_, _>>()?
    };
    let filter = q.filter.as_ref().map(|f| compile(f, data, company)).transpose()?;
    let cono_pos = schema.cono_pos();
    // Every returned row has the session company: ordering by it changes nothing.
    let order: Vec<(usize, bool)> = q
        .order
        .iter()
        .map(|(c, d)| Ok((column_pos(data, c)?, *d)))
        .collect::<Result<Vec<_>, QueryError>>()?
        .into_iter()
        .filter(|(p, _)| *p != cono_pos)
        .collect();
    let key_ordered = order.len() < schema.key_pos.len()
        && order
            .iter()
            .zip(&schema.key_pos[1..])
            .all(|(&(p, desc), &k)| p == k && !desc);
    let conjuncts = conjuncts(filter.as_ref());
    let range = key_range(&conjuncts, data, cono);
    let limit = if maxrecs == 0 || !key_ordered {
        usize::MAX
    } else {
        maxrecs
    };
    let keep = |r: &&Vec<String>| filter.as_ref().is_none_or(|f| eval(f, r));
    let mut matched: Vec<&Vec<String>> = match rows_by_stamp(&conjuncts, data, &range, limit) {
        Some(window) => window.into_iter().filter(keep).take(limit).collect(),
        None => {
            let mut start = range.prefix.clone();
            start.extend(range.lower.clone());
            let n = range.prefix.len();
            data.rows
                .range_from(&start)
                .take_while(|(k, _)| k.starts_with(&range.prefix))
                .take_while(|(k, _)| match (&range.upper, k.get(n)) {
                    (Some((u, inclusive)), Some(part)) => part < u || (*inclusive && part == u),
                    _ => true,
                })
                .map(|(_, r)| r)
                .filter(keep)
                .take(limit)
                .collect()
        }
    };
    if !key_ordered {
        matched = sort_rows(matched, &order, data, maxrecs);
    }
    if maxrecs > 0 {
        matched.truncate(maxrecs);
    }
    Ok(QueryResult {
        columns: positions.iter().map(|&p| schema.col(p).name.clone()).collect(),
        lengths: positions.iter().map(|&p| usize::from(schema.col(p).length)).collect(),
        rows: matched
            .into_iter()
            .map(|r| positions.iter().map(|&p| r[p].clone()).collect())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares two stored values of a column (numerically for numeric and date columns).
    fn compare_values(kind: ColumnKind, a: &str, b: &str) -> Ordering {
        match kind {
            ColumnKind::Alpha => a.trim().cmp(b.trim()),
            _ => match (parse_dec(a), parse_dec(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => a.cmp(b),
            },
        }
    }

    /// The plain executor: every row, filter, stable sort, cut. `run` must agree with it.
    fn naive(q: &Query, data: &TableData, cono: u32, maxrecs: usize, company: CompanyCondition) -> Vec<Vec<String>> {
        let filter = q.filter.as_ref().map(|f| compile(f, data, company).unwrap());
        let cono_pos = data.schema.cono_pos();
        let mut rows: Vec<&Vec<String>> = data
            .rows
            .values()
            .filter(|r| r[cono_pos] == cono.to_string())
            .filter(|r| filter.as_ref().is_none_or(|f| eval(f, r)))
            .collect();
        rows.sort_by(|a, b| {
            for (c, desc) in &q.order {
                let p = data.schema.column_pos(c).unwrap();
                let o = compare_values(data.schema.col(p).kind, &a[p], &b[p]);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        if maxrecs > 0 {
            rows.truncate(maxrecs);
        }
        rows.into_iter().cloned().collect()
    }

    #[test]
    fn key_ranges_and_early_stops_agree_with_a_full_scan() {
        let mut db = crate::db::Db::new();
        crate::seed::seed(&mut db, 7, 100, 300);
        for (itno, itds) in [("A000001", "Other company"), ("A000150", "Other 2"), ("ZZZ", "Last")] {
            db.insert(
                "MITMAS",
                &[("MMCONO", "200"), ("MMITNO", itno), ("MMITDS", itds)],
                "T",
                200,
            )
            .unwrap();
        }
        // Changes after the seed move rows in the LMTS index: updates (some through the
        // late-commit queue), deletes, a re-insert; several share one timestamp.
        let schema = db.tables["MITMAS"].schema.clone();
        let item = |n: u32| crate::db::Db::make_key(&schema, &["100", &format!("A{n:06}")]).unwrap();
        for n in [3, 40, 41, 90, 120, 121, 122] {
            db.update("MITMAS", &item(n), &[("MMITDS", "Changed")], "T").unwrap();
        }
        for n in [5, 60, 121] {
            db.delete("MITMAS", &item(n), "T").unwrap();
        }
        db.modes.commit_delay_ms = 3_600_000;
        for n in [7, 8, 60] {
            if n == 60 {
                db.insert("MITMAS", &[("MMITNO", "A000060"), ("MMITDS", "Again")], "T", 100)
                    .unwrap();
            } else {
                db.update("MITMAS", &item(n), &[("MMITDS", "Late")], "T").unwrap();
            }
        }
        db.commit_all();
        for t in db.tables.values() {
            assert!(t.rows.index_in_step(), "{}", t.schema.def.name);
        }
        // Sorted LMTS values of a table (as decimals, the units of a query literal).
        let stamps = |table: &str, col: &str| {
            let data = &db.tables[table];
            let p = data.schema.column_pos(col).unwrap();
            let mut v: Vec<i128> = data.rows.values().map(|r| parse_dec(&r[p]).unwrap()).collect();
            v.sort();
            v.into_iter().map(|x| x / 1_000_000_000).collect::<Vec<_>>()
        };
        let v = stamps("MITMAS", "MMLMTS");
        let lmts = (v[v.len() / 3], v[2 * v.len() / 3]);
        // Narrow windows, which the LMTS index answers.
        let (n0, n1, newest) = (v[v.len() / 2], v[v.len() / 2 + 12], v[v.len() - 1]);
        let (head, tail) = (v[6], v[v.len() - 15]);
        let ol = stamps("OOLINE", "OBLMTS");
        let (o0, o1) = (ol[ol.len() / 4], ol[ol.len() / 4 + 9]);
        let narrow = [
            format!("MMCONO, MMITNO, MMLMTS from MITMAS where MMLMTS >= {n0} and MMLMTS < {n1}"),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS = {newest} and MMITNO > 'A000050'"),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS = {newest}"),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS >= {tail}"),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS > {tail}"),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS <= {head}"),
            format!("MMITNO from MITMAS where {n1} > MMLMTS and MMLMTS >= {n0} and MMITDS <> ''"),
            format!("MMITNO from MITMAS where MMLMTS > {n0}.5 and MMLMTS <= '{n1}'"),
            format!("MMITNO from MITMAS where MMLMTS >= {n1} and MMLMTS < {n0}"),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS >= {n0} and MMLMTS < {n1} order by MMLMTS desc"),
            format!("MMITNO from MITMAS where MMLMTS >= {n0} and MMLMTS < {n1} order by MMITNO"),
            format!("MMITNO from MITMAS where MMLMTS >= {n0} and MMLMTS <= {n1} and MMCONO = 200"),
            format!("MMITNO from MITMAS where MMLMTS >= {n0} and MMITNO >= 'A000100' and MMITNO < 'A000200'"),
            format!("MMITNO from MITMAS where MMLMTS <> {n0} and MMLMTS >= {n0} and MMLMTS < {n1}"),
            format!("MMITNO from MITMAS where MMLMTS >= {n0} and MMLMTS < {n1} and MMLMTS > {n0}"),
            format!("MMITNO from MITMAS where (MMLMTS >= {n0} and MMLMTS < {n1}) and not MMSTAT = '90'"),
            format!("OBORNO, OBPONR, OBLMTS from OOLINE where OBLMTS >= {o0} and OBLMTS < {o1}"),
        ];
        let queries = [
            "* from MITMAS where MMITNO = 'A000001'".to_string(),
            "MMITNO from MITMAS where MMITNO = 'A000001 '".into(),
            "MMITNO from MITMAS where 'A000150' = MMITNO and MMSTAT = '20'".into(),
            "MMITNO from MITMAS where MMITNO = 'NOPE'".into(),
            "MMITNO from MITMAS where MMITNO > 'A000123'".into(),
            "MMITNO from MITMAS where MMITNO >= 'A000123' and MMITNO < 'A000140'".into(),
            "MMITNO from MITMAS where MMITNO <= 'A000010' order by MMITNO".into(),
            "MMITNO from MITMAS where 'A000200' < MMITNO and 'BRG' >= MMITNO order by MMITNO desc".into(),
            "MMITNO from MITMAS where MMITNO > 'A000100' or MMITNO = 'A000002'".into(),
            "MMITNO from MITMAS where not MMITNO = 'A000001'".into(),
            "MMITNO from MITMAS where MMITNO = 123".into(),
            "MMCONO, MMITNO from MITMAS where MMCONO = 200".into(),
            "MMCONO, MMITNO from MITMAS where MMCONO = 100 and MMITNO = 'A000001'".into(),
            format!("MMITNO, MMLMTS from MITMAS where MMLMTS >= {} and MMLMTS < {}", lmts.0, lmts.1),
            format!(
                "MMITNO, MMLMTS from MITMAS where MMLMTS > {ts} or (MMLMTS = {ts} and MMITNO > 'A000050') order by MMLMTS, MMITNO",
                ts = lmts.0
            ),
            "MMITNO from MITMAS order by MMCONO, MMITNO".into(),
            "MMITNO from MITMAS order by MMITDS".into(),
            "MMITNO from MITMAS where MMITNO > 'A0001' order by MMITNO, MMITDS desc".into(),
            "OBORNO, OBPONR from OOLINE where OBORNO = '1000005'".into(),
            "OBORNO, OBPONR from OOLINE where OBORNO = '1000005' and OBPONR >= 20".into(),
            "OBORNO, OBPONR from OOLINE where OBORNO = '1000005' and OBPONR > '10' and OBPONR <= 30".into(),
            "OBORNO, OBPONR from OOLINE where OBORNO = '1000007' and OBPONR = 10 and OBPOSX = 0".into(),
            "OBORNO, OBPONR from OOLINE where OBORNO > '1000090' order by OBORNO, OBPONR".into(),
            format!("MMITNO from MITMAS where MMLMTS >= {}", lmts.0),
            format!("MMITNO from MITMAS where MMLMTS > {} and MMLMTS = MMLMTS", lmts.1),
        ];
        let mut nonempty = 0;
        let mut by_index = 0;
        for q in narrow.iter().chain(&queries) {
            let parsed = parse(q).unwrap();
            let data = &db.tables[&parsed.table];
            let filter = parsed
                .filter
                .as_ref()
                .map(|f| compile(f, data, CompanyCondition::Honoured).unwrap());
            let conj = conjuncts(filter.as_ref());
            let indexed = rows_by_stamp(&conj, data, &key_range(&conj, data, 100), usize::MAX).is_some();
            by_index += usize::from(indexed);
            if narrow.contains(q) {
                assert!(indexed, "{q}: expected a read through the LMTS index");
            }
            for company in [CompanyCondition::Honoured, CompanyCondition::Ignored] {
                for cono in [100, 200] {
                    for maxrecs in [0, 1, 5] {
                        let want = naive(&parsed, data, cono, maxrecs, company);
                        let got = run(&parsed, data, cono, maxrecs, company).unwrap();
                        let all = (0..data.schema.def.columns.len()).collect::<Vec<_>>();
                        let positions: Vec<usize> = if parsed.columns.is_empty() {
                            all
                        } else {
                            parsed
                                .columns
                                .iter()
                                .map(|c| data.schema.column_pos(c).unwrap())
                                .collect()
                        };
                        let want: Vec<Vec<String>> = want
                            .iter()
                            .map(|r| positions.iter().map(|&p| r[p].clone()).collect())
                            .collect();
                        nonempty += usize::from(!want.is_empty());
                        assert_eq!(got.rows, want, "{q} cono {cono} maxrecs {maxrecs} {company:?}");
                    }
                }
            }
        }
        let total = narrow.len() + queries.len();
        assert!(nonempty > total * 4, "too few queries return rows: {nonempty}");
        assert!(by_index < total, "every query read through the LMTS index");
    }

    fn col(s: &str) -> Operand {
        Operand::Column(s.into())
    }

    #[test]
    fn parses_the_poller_query() {
        let q = parse(
            "MMCONO, MMITNO, MMITDS, MMLMTS from MITMAS where MMLMTS > 1764000000000 or \
             (MMLMTS = 1764000000000 and MMITNO > 'A000123') order by MMLMTS, MMITNO",
        )
        .unwrap();
        assert_eq!(q.columns, vec!["MMCONO", "MMITNO", "MMITDS", "MMLMTS"]);
        assert_eq!(q.table, "MITMAS");
        assert_eq!(
            q.order,
            vec![("MMLMTS".to_string(), false), ("MMITNO".to_string(), false)]
        );
        let expected = Expr::Or(
            Box::new(Expr::Cmp(
                col("MMLMTS"),
                CmpOp::Gt,
                Operand::Num("1764000000000".into()),
            )),
            Box::new(Expr::And(
                Box::new(Expr::Cmp(
                    col("MMLMTS"),
                    CmpOp::Eq,
                    Operand::Num("1764000000000".into()),
                )),
                Box::new(Expr::Cmp(col("MMITNO"), CmpOp::Gt, Operand::Str("A000123".into()))),
            )),
        );
        assert_eq!(q.filter, Some(expected));
    }

    #[test]
    fn precedence_and_not_and_escapes() {
        let q =
            parse("* FROM mitmas WHERE not MMSTAT = '20' and MMITDS <> 'O''Brien' or MMCHNO >= 2 order by MMITNO desc")
                .unwrap();
        assert!(q.columns.is_empty());
        assert_eq!(q.table, "MITMAS");
        assert_eq!(q.order, vec![("MMITNO".to_string(), true)]);
        match q.filter.unwrap() {
            Expr::Or(a, _) => match *a {
                Expr::And(n, s) => {
                    assert!(matches!(*n, Expr::Not(_)));
                    assert_eq!(*s, Expr::Cmp(col("MMITDS"), CmpOp::Ne, Operand::Str("O'Brien".into())));
                }
                other => panic!("expected and, got {other:?}"),
            },
            other => panic!("expected or, got {other:?}"),
        }
        let q = parse("MMITNO from MITMAS where MMPUPR != -1.5").unwrap();
        assert_eq!(
            q.filter,
            Some(Expr::Cmp(col("MMPUPR"), CmpOp::Ne, Operand::Num("-1.5".into())))
        );
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let e = parse("MMITNO MITMAS").unwrap_err();
        assert_eq!(e.position, 8);
        assert_eq!(e.message, "expected ',' or 'from', found 'MITMAS'");
        let e = parse("MMITNO from MITMAS where MMITNO > ").unwrap_err();
        assert_eq!(e.position, 35);
        assert_eq!(e.message, "expected column name, string or number, found end of query");
        let e = parse("MMITNO from MITMAS where MMITNO = 'abc").unwrap_err();
        assert_eq!(e.position, 35);
        assert!(e.message.contains("unterminated string"), "{}", e.message);
        let e = parse("MMITNO from MITMAS where (MMITNO = 'a'").unwrap_err();
        assert!(e.message.starts_with("expected ')'"), "{}", e.message);
        let e = parse("MMITNO from MITMAS order MMITNO").unwrap_err();
        assert_eq!(e.message, "expected 'by', found 'MMITNO'");
        let e = parse("from MITMAS").unwrap_err();
        assert_eq!(
            (e.position, e.message.as_str()),
            (1, "expected column name or '*', found 'from'")
        );
        let e = parse("MMITNO from MITMAS where MMITNO ~ 'a'").unwrap_err();
        assert_eq!(e.position, 33);
        let e = parse("MMITNO from MITMAS where MMCHNO = 1.2.3").unwrap_err();
        assert!(e.message.contains("malformed number"), "{}", e.message);
    }
}
