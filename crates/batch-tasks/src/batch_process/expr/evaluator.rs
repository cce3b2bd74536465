//! The filter evaluator: runs an [`Expr`] against a record, following the comparison and coercion
//! rules of the [`batch_process`](crate::batch_process) module docs.
//!
//! Evaluation never fails: a comparison that makes no sense (a number against a word, anything
//! ordered against `null`) is simply false.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::batch_process::expr::{CompareOp, Expr, Literal};
use crate::batch_process::number::Number;

/// Whether `record` passes `expr`.
pub(crate) fn matches(expr: &Expr, record: &Value) -> bool {
    eval(expr, record).is_truthy()
}

/// A value during evaluation, borrowed from the record or the expression.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    /// `null`, or a missing field.
    Null,
    Bool(bool),
    /// A JSON number or a number literal (not a string that looks like one).
    Number(Number),
    Str(&'a str),
    Array(&'a [Value]),
    Object(&'a Map<String, Value>),
}

impl<'a> Val<'a> {
    fn of_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(flag) => Val::Bool(*flag),
            Value::Number(number) => Val::Number(Number::of_json(number)),
            Value::String(text) => Val::Str(text),
            Value::Array(items) => Val::Array(items),
            Value::Object(map) => Val::Object(map),
        }
    }

    fn of_literal(literal: &'a Literal) -> Val<'a> {
        match literal {
            Literal::Null => Val::Null,
            Literal::Bool(flag) => Val::Bool(*flag),
            Literal::Number { value, .. } => Val::Number(*value),
            Literal::String(text) => Val::Str(text),
        }
    }

    /// `true`, or the string `"true"` (a CSV cell).
    fn is_truthy(self) -> bool {
        matches!(self, Val::Bool(true) | Val::Str("true"))
    }
}

fn eval<'a>(expr: &'a Expr, record: &'a Value) -> Val<'a> {
    match expr {
        Expr::Field(path) => path.lookup(record).map_or(Val::Null, Val::of_json),
        Expr::Literal(literal) => Val::of_literal(literal),
        Expr::Not(operand) => Val::Bool(!eval(operand, record).is_truthy()),
        Expr::And(items) => Val::Bool(items.iter().all(|item| eval(item, record).is_truthy())),
        Expr::Or(items) => Val::Bool(items.iter().any(|item| eval(item, record).is_truthy())),
        Expr::Compare { op, left, right } => {
            let (left, right) = (eval(left, record), eval(right, record));
            Val::Bool(match op {
                CompareOp::Eq => equals(left, right),
                CompareOp::Ne => !equals(left, right),
                CompareOp::Lt => order(left, right) == Some(Ordering::Less),
                CompareOp::Le => matches!(order(left, right), Some(Ordering::Less | Ordering::Equal)),
                CompareOp::Gt => order(left, right) == Some(Ordering::Greater),
                CompareOp::Ge => matches!(order(left, right), Some(Ordering::Greater | Ordering::Equal)),
            })
        }
        Expr::In { operand, list } => {
            let operand = eval(operand, record);
            Val::Bool(list.iter().any(|literal| equals(operand, Val::of_literal(literal))))
        }
        Expr::Contains { whole, part } => Val::Bool(contains(eval(whole, record), eval(part, record))),
    }
}

/// `==`: numbers (with a numeric-looking string on the other side) by value, a boolean against
/// `"true"`/`"false"`, strings exactly, arrays and objects element by element, `null` only
/// against `null`; any other pair is unequal.
fn equals(left: Val<'_>, right: Val<'_>) -> bool {
    match (left, right) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(left), Val::Bool(right)) => left == right,
        (Val::Bool(flag), Val::Str(text)) | (Val::Str(text), Val::Bool(flag)) => match text {
            "true" => flag,
            "false" => !flag,
            _ => false,
        },
        (Val::Number(left), Val::Number(right)) => left.compare(right) == Some(Ordering::Equal),
        (Val::Number(number), Val::Str(text)) | (Val::Str(text), Val::Number(number)) => {
            Number::parse(text).is_some_and(|parsed| number.compare(parsed) == Some(Ordering::Equal))
        }
        (Val::Str(left), Val::Str(right)) => left == right,
        (Val::Array(left), Val::Array(right)) => {
            left.len() == right.len()
                && left.iter().zip(right).all(|(left, right)| equals(Val::of_json(left), Val::of_json(right)))
        }
        (Val::Object(left), Val::Object(right)) => {
            left.len() == right.len()
                && left.iter().all(|(key, value)| {
                    right.get(key).is_some_and(|other| equals(Val::of_json(value), Val::of_json(other)))
                })
        }
        _ => false,
    }
}

/// The order of `<`, `<=`, `>`, `>=`: numbers by value (a string on the other side must look like
/// a number), two strings by Unicode code points; `None` (every ordering false) otherwise.
fn order(left: Val<'_>, right: Val<'_>) -> Option<Ordering> {
    match (left, right) {
        (Val::Number(left), Val::Number(right)) => left.compare(right),
        (Val::Number(left), Val::Str(text)) => left.compare(Number::parse(text)?),
        (Val::Str(text), Val::Number(right)) => Number::parse(text)?.compare(right),
        (Val::Str(left), Val::Str(right)) => Some(left.cmp(right)),
        _ => None,
    }
}

/// `contains`: a substring of a string, or an element (by `==`) of an array; false otherwise.
fn contains(whole: Val<'_>, part: Val<'_>) -> bool {
    match (whole, part) {
        (Val::Str(whole), Val::Str(part)) => whole.contains(part),
        (Val::Array(items), part) => items.iter().any(|item| equals(Val::of_json(item), part)),
        _ => false,
    }
}
