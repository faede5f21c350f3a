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

use mapping::catalog::ColumnKind;

use crate::db::{compare_values, parse_dec, TableData};

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

/// A compiled operand: a column position or a literal.
#[derive(Debug, Clone)]
enum Val {
    Col(usize, ColumnKind),
    Lit(String, bool),
}

#[derive(Debug, Clone)]
enum Compiled {
    Or(Box<Compiled>, Box<Compiled>),
    And(Box<Compiled>, Box<Compiled>),
    Not(Box<Compiled>),
    Cmp(Val, CmpOp, Val),
}

fn compile(e: &Expr, data: &TableData) -> Result<Compiled, QueryError> {
    let operand = |o: &Operand| -> Result<Val, QueryError> {
        Ok(match o {
            Operand::Column(c) => {
                let pos = column_pos(data, c)?;
                Val::Col(pos, data.schema.col(pos).kind)
            }
            Operand::Str(s) => Val::Lit(s.clone(), false),
            Operand::Num(n) => Val::Lit(n.clone(), true),
        })
    };
    Ok(match e {
        Expr::Or(a, b) => Compiled::Or(Box::new(compile(a, data)?), Box::new(compile(b, data)?)),
        Expr::And(a, b) => Compiled::And(Box::new(compile(a, data)?), Box::new(compile(b, data)?)),
        Expr::Not(a) => Compiled::Not(Box::new(compile(a, data)?)),
        Expr::Cmp(l, op, r) => {
            let (l, r) = (operand(l)?, operand(r)?);
            for (v, other) in [(&l, &r), (&r, &l)] {
                if let (Val::Lit(s, false), Val::Col(_, k)) = (v, other) {
                    if *k != ColumnKind::Alpha && parse_dec(s).is_none() {
                        return Err(QueryError {
                            position: 0,
                            message: format!("'{s}' is not a number; cannot compare it with a numeric column"),
                        });
                    }
                }
            }
            Compiled::Cmp(l, *op, r)
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
        Compiled::Or(a, b) => eval(a, row) || eval(b, row),
        Compiled::And(a, b) => eval(a, row) && eval(b, row),
        Compiled::Not(a) => !eval(a, row),
        Compiled::Cmp(l, op, r) => {
            let numeric = |v: &Val| match v {
                Val::Col(_, k) => *k != ColumnKind::Alpha,
                Val::Lit(_, n) => *n,
            };
            let text = |v: &Val| -> String {
                match v {
                    Val::Col(p, _) => row[*p].clone(),
                    Val::Lit(s, _) => s.clone(),
                }
            };
            let is_col_numeric = matches!(l, Val::Col(_, k) if *k != ColumnKind::Alpha)
                || matches!(r, Val::Col(_, k) if *k != ColumnKind::Alpha);
            let both_lit_num = numeric(l) && numeric(r);
            let (a, b) = (text(l), text(r));
            let ord = if is_col_numeric || both_lit_num {
                match (parse_dec(&a), parse_dec(&b)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => a.trim().cmp(b.trim()),
                }
            } else {
                a.trim().cmp(b.trim())
            };
            op.holds(ord)
        }
    }
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
/// (`0` = no limit).
pub(crate) fn run(q: &Query, data: &TableData, cono: u32, maxrecs: usize) -> Result<QueryResult, QueryError> {
    let schema = &data.schema;
    let positions: Vec<usize> = if q.columns.is_empty() {
        (0..schema.def.columns.len()).collect()
    } else {
        q.columns
            .iter()
            .map(|c| column_pos(data, c))
            .collect::<Result<_, _>>()?
    };
    let filter = q.filter.as_ref().map(|f| compile(f, data)).transpose()?;
    let order: Vec<(usize, bool)> = q
        .order
        .iter()
        .map(|(c, d)| Ok((column_pos(data, c)?, *d)))
        .collect::<Result<_, QueryError>>()?;
    let cono_pos = schema.cono_pos();
    let cono_text = cono.to_string();
    let mut matched: Vec<&Vec<String>> = data
        .rows
        .values()
        .filter(|r| r[cono_pos] == cono_text)
        .filter(|r| filter.as_ref().is_none_or(|f| eval(f, r)))
        .collect();
    if !order.is_empty() {
        matched.sort_by(|a, b| {
            for &(p, desc) in &order {
                let o = compare_values(schema.col(p).kind, &a[p], &b[p]);
                let o = if desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
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
