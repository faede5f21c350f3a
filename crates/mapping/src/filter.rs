//! Row filters: which rows of a table belong to a message type.
//!
//! A filter is an expression over the table's column names, written in the mapping's `filter`:
//!
//! ```text
//! MMSTAT in ('20','50') and not MMITTY = 'SP'
//! MMPUPR >= 10.5 or (MMITGR <> 'OBS' and MMLMDT > 20260101)
//! ```
//!
//! - comparisons `=`, `<>` (or `!=`), `<`, `<=`, `>`, `>=` between columns and values;
//! - `in ('A','B')` and `not in (...)`;
//! - `and`, `or`, `not` (case-insensitive; `not` binds tightest, then `and`, then `or`) and parentheses;
//! - single-quoted strings (`''` is a quote inside one) and numbers (`10`, `-3`, `10.5`).
//!
//! Numeric and date columns compare as exact decimal numbers (a blank value is 0; a value that is
//! not a number makes the comparison false). Alphanumeric columns compare as strings with the
//! blanks M3 pads with trimmed on both sides (also from string values written in the filter), by
//! byte order, case-sensitively.
//!
//! [`parse`] is a hand-written tokenizer and recursive-descent parser producing an [`Expr`];
//! [`Filter::compile`] resolves its columns against a [`Table`] to row indexes. Errors name the
//! character position (1-based) and what was expected there.

use std::cmp::Ordering;

use crate::catalog::{ColumnKind, Table};
use crate::convert::Decimal;
use crate::names;

/// A filter that cannot be used: a syntax error, an unknown column or a value of the wrong kind.
/// Positions are 1-based character positions in the filter text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    /// The text does not follow the grammar.
    #[error("at character {position}: expected {expected}, found {found}")]
    Syntax {
        /// Where (1-based character position).
        position: usize,
        /// What the parser expected there.
        expected: String,
        /// What it found instead.
        found: String,
    },
    /// A column the table does not have.
    #[error("at character {position}: table {table} has no column `{column}`{}", hint(.suggestion))]
    UnknownColumn {
        /// Where (1-based character position).
        position: usize,
        /// The table.
        table: String,
        /// The column as written.
        column: String,
        /// The closest column name, if one is close.
        suggestion: Option<String>,
    },
    /// A value compared with a numeric or date column that is not a number.
    #[error("at character {position}: column {column} is numeric; expected a number, found {found}")]
    NotANumber {
        /// Where (1-based character position).
        position: usize,
        /// The numeric column it is compared with.
        column: String,
        /// The value as written.
        found: String,
    },
}

fn hint(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
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

/// One side of a comparison, with its 1-based character position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Where it starts in the filter text (1-based character position).
    pub position: usize,
    /// What it is.
    pub value: TermValue,
}

/// A column or a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermValue {
    /// A column name, as written.
    Column(String),
    /// A string literal, quotes removed and `''` unescaped.
    Str(String),
    /// A number literal, as written (`-10.5`).
    Number(String),
}

/// The syntax tree of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// Does not hold.
    Not(Box<Expr>),
    /// `left op right`.
    Compare {
        /// Left side.
        left: Term,
        /// Operator.
        op: CmpOp,
        /// Right side.
        right: Term,
    },
    /// `term [not] in (v1, v2, ...)`; the list holds literals only.
    In {
        /// The value tested.
        term: Term,
        /// The literals.
        list: Vec<Term>,
        /// `not in`.
        negated: bool,
    },
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    Comma,
    Op(CmpOp),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("'{}'", s.replace('\'', "''")),
            Tok::Num(s) => format!("`{s}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Op(op) => format!(
                "`{}`",
                match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "<>",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                }
            ),
            Tok::End => "the end of the filter".into(),
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

fn syntax(position: usize, expected: &str, found: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        position,
        expected: expected.to_string(),
        found: found.into(),
    }
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '=' => Tok::Op(CmpOp::Eq),
            '<' if next == Some('>') => Tok::Op(CmpOp::Ne),
            '<' if next == Some('=') => Tok::Op(CmpOp::Le),
            '<' => Tok::Op(CmpOp::Lt),
            '>' if next == Some('=') => Tok::Op(CmpOp::Ge),
            '>' => Tok::Op(CmpOp::Gt),
            '!' if next == Some('=') => Tok::Op(CmpOp::Ne),
            '!' => {
                return Err(syntax(
                    pos + 1,
                    "`=` after `!`",
                    next.map_or("the end of the filter".into(), |c| format!("`{c}`")),
                ))
            }
            '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(syntax(
                                j + 1,
                                &format!("`'` closing the string opened at character {pos}"),
                                "the end of the filter",
                            ))
                        }
                        Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                            s.push('\'');
                            j += 2;
                        }
                        Some('\'') => break,
                        Some(&c) => {
                            s.push(c);
                            j += 1;
                        }
                    }
                }
                out.push((pos, Tok::Str(s)));
                i = j + 1;
                continue;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && next.is_some_and(|n| n.is_ascii_digit() || (c != '.' && n == '.'))) =>
            {
                let mut j = i + 1;
                let mut dot = c == '.';
                while let Some(&d) = chars.get(j) {
                    if d.is_ascii_digit() {
                        j += 1;
                    } else if d == '.' && !dot {
                        dot = true;
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[i..j].iter().collect();
                if Decimal::parse(&text).is_none() {
                    return Err(syntax(pos, "a number", format!("`{text}`")));
                }
                if let Some(&d) = chars.get(j).filter(|d| d.is_alphanumeric() || **d == '_') {
                    return Err(syntax(
                        j + 1,
                        "an operator, `,`, `)` or a blank after a number",
                        format!("`{d}`"),
                    ));
                }
                out.push((pos, Tok::Num(text)));
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while chars.get(j).is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_') {
                    j += 1;
                }
                out.push((pos, Tok::Ident(chars[i..j].iter().collect())));
                i = j;
                continue;
            }
            other => {
                return Err(syntax(
                    pos,
                    "a column, a value, an operator or a parenthesis",
                    format!("`{other}`"),
                ))
            }
        };
        let width = match (&tok, c) {
            (Tok::Op(CmpOp::Ne | CmpOp::Le | CmpOp::Ge), _) => 2,
            _ => 1,
        };
        out.push((pos, tok));
        i += width;
    }
    out.push((chars.len() + 1, Tok::End));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    /// Open `(` and `not` around the current position.
    depth: usize,
    /// Comparisons so far.
    comparisons: usize,
}

/// Limits that keep parsing, evaluating and dropping a filter far from the stack's end.
const MAX_DEPTH: usize = 32;
const MAX_COMPARISONS: usize = 256;

const EXPECT_PRIMARY: &str = "a column, a value, `not` or `(`";
const EXPECT_OPERATOR: &str = "a comparison operator (=, <>, !=, <, <=, >, >=) or `in`";
const EXPECT_LITERAL: &str = "a string or a number";

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].1
    }

    fn pos(&self) -> usize {
        self.toks[self.at].0
    }

    fn bump(&mut self) -> (usize, Tok) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn error(&self, expected: &str) -> FilterError {
        syntax(self.pos(), expected, self.peek().describe())
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<(), FilterError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek().is_keyword("or") {
            self.bump();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek().is_keyword("and") {
            self.bump();
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let nested = self.peek().is_keyword("not") || *self.peek() == Tok::LParen;
        if nested {
            if self.depth >= MAX_DEPTH {
                return Err(self.error(&format!("at most {MAX_DEPTH} nested `(` or `not`")));
            }
            self.depth += 1;
        }
        let e = if self.peek().is_keyword("not") {
            self.bump();
            Expr::Not(Box::new(self.unary()?))
        } else if *self.peek() == Tok::LParen {
            self.bump();
            let e = self.or()?;
            self.expect(Tok::RParen, "`)`, `and` or `or`")?;
            e
        } else {
            self.comparisons += 1;
            if self.comparisons > MAX_COMPARISONS {
                return Err(self.error(&format!(
                    "the end of the filter (at most {MAX_COMPARISONS} comparisons)"
                )));
            }
            return self.comparison();
        };
        self.depth -= 1;
        Ok(e)
    }

    fn term(&mut self, expected: &str, literal_only: bool) -> Result<Term, FilterError> {
        let position = self.pos();
        let value = match self.peek() {
            Tok::Str(s) => TermValue::Str(s.clone()),
            Tok::Num(n) => TermValue::Number(n.clone()),
            Tok::Ident(c) if !literal_only && !["and", "or", "not", "in"].iter().any(|k| c.eq_ignore_ascii_case(k)) => {
                TermValue::Column(c.clone())
            }
            _ => return Err(self.error(expected)),
        };
        self.bump();
        Ok(Term { position, value })
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let term = self.term(EXPECT_PRIMARY, false)?;
        let negated = self.peek().is_keyword("not");
        if negated {
            self.bump();
            if !self.peek().is_keyword("in") {
                return Err(self.error("`in` after `not`"));
            }
        }
        if self.peek().is_keyword("in") {
            self.bump();
            self.expect(Tok::LParen, "`(` opening the list of values")?;
            let mut list = vec![self.term(EXPECT_LITERAL, true)?];
            while *self.peek() == Tok::Comma {
                self.bump();
                list.push(self.term(EXPECT_LITERAL, true)?);
            }
            self.expect(Tok::RParen, "`,` or `)`")?;
            return Ok(Expr::In { term, list, negated });
        }
        let Tok::Op(op) = *self.peek() else {
            return Err(self.error(EXPECT_OPERATOR));
        };
        self.bump();
        let right = self.term("a column or a value", false)?;
        Ok(Expr::Compare { left: term, op, right })
    }
}

/// Parse a filter into its syntax tree.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    let mut p = Parser {
        toks: tokenize(src)?,
        at: 0,
        depth: 0,
        comparisons: 0,
    };
    let e = p.or()?;
    if *p.peek() != Tok::End {
        return Err(p.error("`and`, `or` or the end of the filter"));
    }
    Ok(e)
}

impl Expr {
    /// The column names the filter uses, as written, in order of first use (duplicates removed).
    pub fn columns(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            let mut add = |t: &'a Term| {
                if let TermValue::Column(c) = &t.value {
                    if !out.contains(&c.as_str()) {
                        out.push(c);
                    }
                }
            };
            match e {
                Expr::And(a, b) | Expr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare { left, right, .. } => {
                    add(left);
                    add(right);
                }
                Expr::In { term, .. } => add(term),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled form

#[derive(Debug, Clone)]
enum Arg {
    /// Row index, and whether the column is numeric (or a date).
    Column { index: usize, numeric: bool },
    /// Trimmed string literal.
    Str(String),
    /// Number literal, as written (validated).
    Number(String),
}

impl Arg {
    fn text<'r>(&'r self, row: &[&'r str]) -> &'r str {
        match self {
            Arg::Column { index, .. } => row.get(*index).copied().unwrap_or("").trim(),
            Arg::Str(s) | Arg::Number(s) => s,
        }
    }

    fn is_numeric_column(&self) -> bool {
        matches!(self, Arg::Column { numeric: true, .. })
    }
}

#[derive(Debug, Clone)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Compare {
        left: Arg,
        op: CmpOp,
        right: Arg,
        numeric: bool,
    },
    In {
        arg: Arg,
        list: Vec<Arg>,
        negated: bool,
        numeric: bool,
    },
}

/// A filter resolved against a table: columns are row indexes, ready to test rows.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    root: Node,
}

impl Filter {
    /// Parse `src` and resolve its columns against `table`. `slot` gives the row index of a
    /// (valid, upper-case) column name, adding it to the row layout if needed.
    pub fn compile(src: &str, table: &Table, slot: &mut dyn FnMut(&str) -> usize) -> Result<Self, FilterError> {
        let expr = parse(src)?;
        let root = resolve(&expr, table, slot)?;
        Ok(Self {
            source: src.to_string(),
            root,
        })
    }

    /// The filter text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `row` (laid out as the slots given at compile time) passes the filter.
    pub fn matches(&self, row: &[&str]) -> bool {
        eval(&self.root, row)
    }
}

fn resolve(e: &Expr, table: &Table, slot: &mut dyn FnMut(&str) -> usize) -> Result<Node, FilterError> {
    Ok(match e {
        Expr::And(a, b) => Node::And(Box::new(resolve(a, table, slot)?), Box::new(resolve(b, table, slot)?)),
        Expr::Or(a, b) => Node::Or(Box::new(resolve(a, table, slot)?), Box::new(resolve(b, table, slot)?)),
        Expr::Not(a) => Node::Not(Box::new(resolve(a, table, slot)?)),
        Expr::Compare { left, op, right } => {
            let (l, lc) = arg(left, table, slot)?;
            let (r, rc) = arg(right, table, slot)?;
            let numeric_col = lc
                .as_deref()
                .filter(|_| l.is_numeric_column())
                .or(rc.as_deref().filter(|_| r.is_numeric_column()));
            let both_numbers = matches!((&l, &r), (Arg::Number(_), Arg::Number(_)));
            if let Some(col) = numeric_col {
                check_number(left, col)?;
                check_number(right, col)?;
            }
            Node::Compare {
                numeric: numeric_col.is_some() || both_numbers,
                left: l,
                op: *op,
                right: r,
            }
        }
        Expr::In { term, list, negated } => {
            let (a, col) = arg(term, table, slot)?;
            let numeric = match (&a, col.as_deref()) {
                (Arg::Column { numeric: true, .. }, Some(col)) => {
                    for t in list {
                        check_number(t, col)?;
                    }
                    true
                }
                (Arg::Number(_), _) => list.iter().all(|t| matches!(t.value, TermValue::Number(_))),
                _ => false,
            };
            let list = list
                .iter()
                .map(|t| arg(t, table, slot).map(|(a, _)| a))
                .collect::<Result<_, _>>()?;
            Node::In {
                arg: a,
                list,
                negated: *negated,
                numeric,
            }
        }
    })
}

/// The compiled argument, and the column's name if it is a column.
fn arg(t: &Term, table: &Table, slot: &mut dyn FnMut(&str) -> usize) -> Result<(Arg, Option<String>), FilterError> {
    Ok(match &t.value {
        TermValue::Str(s) => (Arg::Str(s.trim().to_string()), None),
        TermValue::Number(n) => (Arg::Number(n.clone()), None),
        TermValue::Column(c) => {
            let name = c.to_ascii_uppercase();
            let Some(col) = table.column(&name) else {
                return Err(FilterError::UnknownColumn {
                    position: t.position,
                    table: table.name.clone(),
                    column: c.clone(),
                    suggestion: names::closest(c, table.columns.iter().map(|c| c.name.as_str())),
                });
            };
            let numeric = matches!(col.kind, ColumnKind::Numeric | ColumnKind::Date);
            (
                Arg::Column {
                    index: slot(&name),
                    numeric,
                },
                Some(name),
            )
        }
    })
}

fn check_number(t: &Term, column: &str) -> Result<(), FilterError> {
    match &t.value {
        TermValue::Str(s) if Decimal::parse(s).is_none() => Err(FilterError::NotANumber {
            position: t.position,
            column: column.to_string(),
            found: format!("'{}'", s.replace('\'', "''")),
        }),
        _ => Ok(()),
    }
}

fn compare(left: &str, right: &str, numeric: bool) -> Option<Ordering> {
    if numeric {
        Some(Decimal::parse(left)?.cmp(&Decimal::parse(right)?))
    } else {
        Some(left.cmp(right))
    }
}

fn eval(n: &Node, row: &[&str]) -> bool {
    match n {
        Node::And(a, b) => eval(a, row) && eval(b, row),
        Node::Or(a, b) => eval(a, row) || eval(b, row),
        Node::Not(a) => !eval(a, row),
        Node::Compare {
            left,
            op,
            right,
            numeric,
        } => compare(left.text(row), right.text(row), *numeric).is_some_and(|o| op.holds(o)),
        Node::In {
            arg,
            list,
            negated,
            numeric,
        } => {
            let v = arg.text(row);
            if *numeric {
                let Some(d) = Decimal::parse(v) else {
                    return false;
                };
                let found = list.iter().any(|a| Decimal::parse(a.text(row)).is_some_and(|x| x == d));
                found != *negated
            } else {
                list.iter().any(|a| a.text(row) == v) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::standard_table;

    /// Compile against MITMAS with the table's own column order as the row layout.
    fn compile(src: &str) -> Result<Filter, FilterError> {
        let t = standard_table("MITMAS").unwrap();
        let t2 = t.clone();
        Filter::compile(src, &t, &mut |c| t2.column_index(c).unwrap())
    }

    /// A MITMAS row with some columns set (others blank).
    fn row(set: &[(&str, &str)]) -> Vec<&'static str> {
        let t = standard_table("MITMAS").unwrap();
        let mut r = vec![""; t.columns.len()];
        for (c, v) in set {
            let v: &'static str = Box::leak(v.to_string().into_boxed_str());
            r[t.column_index(c).unwrap()] = v;
        }
        r
    }

    #[test]
    fn parses_precedence_and_in_lists() {
        let e = parse("MMSTAT in ('20','50') and not MMITTY = 'SP' or MMCONO=1").unwrap();
        let Expr::Or(left, right) = &e else {
            panic!("or is loosest: {e:?}")
        };
        let Expr::And(a, b) = &**left else { panic!("{left:?}") };
        assert!(matches!(&**a, Expr::In { list, negated: false, .. } if list.len() == 2));
        assert!(matches!(&**b, Expr::Not(_)));
        assert_eq!(
            **right,
            Expr::Compare {
                left: Term {
                    position: 48,
                    value: TermValue::Column("MMCONO".into())
                },
                op: CmpOp::Eq,
                right: Term {
                    position: 55,
                    value: TermValue::Number("1".into())
                },
            }
        );
        assert_eq!(e.columns(), vec!["MMSTAT", "MMITTY", "MMCONO"]);
        let q = parse("MMITDS = 'O''Brien'").unwrap();
        assert!(matches!(q, Expr::Compare { right: Term { value: TermValue::Str(s), .. }, .. } if s == "O'Brien"));
    }

    #[test]
    fn syntax_errors_name_the_position_and_what_was_expected() {
        let msg = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("MMSTAT = '20' and"),
            "at character 18: expected a column, a value, `not` or `(`, found the end of the filter"
        );
        assert_eq!(
            msg("MMSTAT '20'"),
            "at character 8: expected a comparison operator (=, <>, !=, <, <=, >, >=) or `in`, found '20'"
        );
        assert_eq!(
            msg("MMSTAT in ('20' '50')"),
            "at character 17: expected `,` or `)`, found '50'"
        );
        assert_eq!(
            msg("(MMSTAT = '20'"),
            "at character 15: expected `)`, `and` or `or`, found the end of the filter"
        );
        assert_eq!(
            msg("MMSTAT = 'x"),
            "at character 12: expected `'` closing the string opened at character 10, found the end of the filter"
        );
        assert_eq!(
            msg("MMSTAT = 20 MMITTY"),
            "at character 13: expected `and`, `or` or the end of the filter, found `MMITTY`"
        );
        assert_eq!(
            msg("MMSTAT not = '20'"),
            "at character 12: expected `in` after `not`, found `=`"
        );
        assert_eq!(
            msg("MMSTAT ! '20'"),
            "at character 9: expected `=` after `!`, found ` `"
        );
        assert_eq!(
            msg("MMSTAT = #"),
            "at character 10: expected a column, a value, an operator or a parenthesis, found `#`"
        );
        assert_eq!(
            msg(""),
            "at character 1: expected a column, a value, `not` or `(`, found the end of the filter"
        );
    }

    #[test]
    fn unknown_columns_and_non_numbers_are_refused_at_compile() {
        assert_eq!(
            compile("MMSTAT = '20' and MMITYY <> 'SP'").unwrap_err().to_string(),
            "at character 19: table MITMAS has no column `MMITYY`; did you mean `MMITTY`?"
        );
        assert_eq!(
            compile("MMPUPR >= 'cheap'").unwrap_err(),
            FilterError::NotANumber {
                position: 11,
                column: "MMPUPR".into(),
                found: "'cheap'".into()
            }
        );
        assert!(compile("MMCONO in (100, 'x')").is_err());
    }

    #[test]
    fn the_example_filter_selects_the_right_rows() {
        let f = compile("MMSTAT in ('20','50') and not MMITTY = 'SP'").unwrap();
        assert!(f.matches(&row(&[("MMSTAT", "20"), ("MMITTY", "FG ")])));
        assert!(f.matches(&row(&[("MMSTAT", "50 "), ("MMITTY", "")])));
        assert!(!f.matches(&row(&[("MMSTAT", "20"), ("MMITTY", "SP ")])));
        assert!(!f.matches(&row(&[("MMSTAT", "90"), ("MMITTY", "FG")])));
        let f = compile("mmstat not in ('90') AND (MMITTY = 'SP' OR MMITTY = 'FG')").unwrap();
        assert!(f.matches(&row(&[("MMSTAT", "20"), ("MMITTY", "FG")])));
        assert!(!f.matches(&row(&[("MMSTAT", "90"), ("MMITTY", "FG")])));
        assert!(!f.matches(&row(&[("MMSTAT", "20"), ("MMITTY", "RM")])));
    }

    #[test]
    fn numeric_columns_compare_as_numbers_and_alpha_columns_as_strings() {
        let f = compile("MMPUPR >= 10.5").unwrap();
        assert!(f.matches(&row(&[("MMPUPR", "10.500000")])));
        assert!(f.matches(&row(&[("MMPUPR", "  100.0")])));
        // As strings "9.75" > "10.5"; as numbers it is less.
        assert!(!f.matches(&row(&[("MMPUPR", "9.75")])));
        assert!(!f.matches(&row(&[("MMPUPR", "")])), "blank is 0");
        assert!(!f.matches(&row(&[("MMPUPR", "n/a")])), "not a number: false");
        let f = compile("MMCONO = '100' and MMLMDT > 20260101").unwrap();
        assert!(f.matches(&row(&[("MMCONO", "100"), ("MMLMDT", "20260102")])));
        assert!(!f.matches(&row(&[("MMCONO", "100"), ("MMLMDT", "20260101")])));
        let f = compile("MMCONO in (1, 100.0)").unwrap();
        assert!(f.matches(&row(&[("MMCONO", "100")])));
        assert!(!f.matches(&row(&[("MMCONO", "10")])));
        let f = compile("MMITGR <> 'OBS' and MMITGR >= 'B'").unwrap();
        assert!(f.matches(&row(&[("MMITGR", "BOLTS   ")])));
        assert!(!f.matches(&row(&[("MMITGR", "OBS     ")])));
        assert!(!f.matches(&row(&[("MMITGR", "ABC")])));
        let f = compile("MMSTAT != 20").unwrap();
        assert!(!f.matches(&row(&[("MMSTAT", "20")])));
        assert!(f.matches(&row(&[("MMSTAT", "020")])), "alpha: text compare");
        let f = compile("MMITDS = 'O''Brien'").unwrap();
        assert!(f.matches(&row(&[("MMITDS", "O'Brien  ")])));
    }
}
