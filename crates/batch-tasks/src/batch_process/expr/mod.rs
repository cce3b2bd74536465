//! Filter expressions: the language, its syntax tree, and [`FilterExpr`], a parsed expression that
//! decides whether a record is kept.
//!
//! The [lexer] turns the text into tokens, the [parser] (recursive descent) builds the tree, and the
//! [evaluator] runs it against a record. The grammar, precedence and the comparison rules are in
//! the [`batch_process`](crate::batch_process) module docs.

mod evaluator;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use crate::batch_process::error::FilterError;
use crate::batch_process::number::Number;
use crate::batch_process::path::FieldPath;

/// How deep parentheses and `!` may nest. It bounds the parser's and the evaluator's recursion,
/// so no expression can overflow the stack.
pub(crate) const MAX_DEPTH: usize = 64;

/// A parsed filter expression.
///
/// ```
/// use batch_tasks::batch_process::FilterExpr;
/// use serde_json::json;
///
/// let filter = FilterExpr::parse(r#"amount >= 100 && region == "华东""#).unwrap();
/// assert!(filter.matches(&json!({ "amount": "120.50", "region": "华东" })));
/// assert!(!filter.matches(&json!({ "amount": 99.99, "region": "华东" })));
/// assert!(!filter.matches(&json!({ "region": "华东" }))); // a missing amount is null: not >= 100
/// // Display shows how the expression was grouped.
/// assert_eq!(FilterExpr::parse("a || b && !c").unwrap().to_string(), "(a || (b && !c))");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FilterExpr {
    expr: Expr,
}

impl FilterExpr {
    /// Parses `expression`. A failure says why and points at the bad token (its byte offset and
    /// 1-based character column); it never panics, whatever the input.
    pub fn parse(expression: &str) -> Result<FilterExpr, FilterError> {
        parser::parse(expression).map(|expr| FilterExpr { expr })
    }

    /// Whether `record` passes: the expression's value is `true` (or the string `"true"`).
    pub fn matches(&self, record: &Value) -> bool {
        evaluator::matches(&self.expr, record)
    }
}

impl fmt::Display for FilterExpr {
    /// The expression fully parenthesised, literals in canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.expr, f)
    }
}

/// A node of the syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A field of the record; missing fields are `null`.
    Field(FieldPath),
    /// A constant.
    Literal(Literal),
    /// `!operand`.
    Not(Box<Expr>),
    /// `a && b && ...`, two or more operands (n-ary, so long chains do not nest deeply).
    And(Vec<Expr>),
    /// `a || b || ...`, two or more operands.
    Or(Vec<Expr>),
    /// `left op right`.
    Compare { op: CompareOp, left: Box<Expr>, right: Box<Expr> },
    /// `operand in [list]`.
    In { operand: Box<Expr>, list: Vec<Literal> },
    /// `whole contains part`.
    Contains { whole: Box<Expr>, part: Box<Expr> },
}

/// A constant in an expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    /// A number, with its text as written (for display).
    Number {
        value: Number,
        text: String,
    },
    String(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, items: &[Expr], operator: &str| {
            f.write_str("(")?;
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    write!(f, " {operator} ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::Field(path) => write_path(path, f),
            Expr::Literal(literal) => write!(f, "{literal}"),
            Expr::Not(operand) => write!(f, "!{operand}"),
            Expr::And(items) => joined(f, items, "&&"),
            Expr::Or(items) => joined(f, items, "||"),
            Expr::Compare { op, left, right } => write!(f, "({left} {} {right})", op.as_str()),
            Expr::In { operand, list } => {
                write!(f, "({operand} in [")?;
                for (index, literal) in list.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{literal}")?;
                }
                f.write_str("])")
            }
            Expr::Contains { whole, part } => write!(f, "({whole} contains {part})"),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(flag) => write!(f, "{flag}"),
            Literal::Number { text, .. } => f.write_str(text),
            Literal::String(text) => f.write_str(&serde_json::to_string(text).map_err(|_| fmt::Error)?),
        }
    }
}

/// A path as the lexer reads it back: plain segments bare, others backquoted.
fn write_path(path: &FieldPath, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (index, segment) in path.segments().iter().enumerate() {
        if index > 0 {
            f.write_str(".")?;
        }
        let first = segment.chars().next();
        let plain = segment.chars().all(lexer::is_name_char)
            && (index > 0 || first.is_some_and(lexer::is_name_start))
            && (path.segments().len() > 1 || !lexer::is_keyword(segment));
        if plain {
            f.write_str(segment)?;
        } else {
            write!(f, "`{segment}`")?;
        }
    }
    Ok(())
}
