//! The validation rules of `FORMAT.md`, one function per kind of field: each takes what was read
//! and returns the checked value or a [`YouzanIssue`] naming the field.

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::youzan::error::{IssueKind, YouzanIssue};
use crate::youzan::money::{Money, MoneyError};
use crate::youzan::parse::{ArrayField, JsonKind, ObjectField, Scalar};

/// The longest part of a field's value quoted in a message; longer values are cut.
const QUOTE_LIMIT: usize = 64;

/// A trade's status: the seven values YouZan documents, spelled exactly (case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    /// Waiting for the buyer to pay.
    WaitBuyerPay,
    /// Paid.
    TradePaid,
    /// Waiting for confirmation (e.g. a group buy that has not formed).
    WaitConfirm,
    /// Waiting for the seller to ship.
    WaitSellerSendGoods,
    /// Shipped, waiting for the buyer to confirm receipt.
    WaitBuyerConfirmGoods,
    /// Completed.
    TradeSuccess,
    /// Closed (cancelled, refunded or never paid).
    TradeClosed,
}

impl TradeStatus {
    /// Every status.
    pub const ALL: [TradeStatus; 7] = [
        TradeStatus::WaitBuyerPay,
        TradeStatus::TradePaid,
        TradeStatus::WaitConfirm,
        TradeStatus::WaitSellerSendGoods,
        TradeStatus::WaitBuyerConfirmGoods,
        TradeStatus::TradeSuccess,
        TradeStatus::TradeClosed,
    ];

    /// The status's spelling (`TRADE_SUCCESS`).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradePaid => "TRADE_PAID",
            TradeStatus::WaitConfirm => "WAIT_CONFIRM",
            TradeStatus::WaitSellerSendGoods => "WAIT_SELLER_SEND_GOODS",
            TradeStatus::WaitBuyerConfirmGoods => "WAIT_BUYER_CONFIRM_GOODS",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
        }
    }

    /// The status spelled exactly `text`.
    pub fn from_spelling(text: &str) -> Option<TradeStatus> {
        TradeStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether a trade in this status counts as paid once it has a payment time: every status but
    /// `WAIT_BUYER_PAY` and `TRADE_CLOSED`.
    pub fn may_be_paid(self) -> bool {
        !matches!(self, TradeStatus::WaitBuyerPay | TradeStatus::TradeClosed)
    }
}

/// The path of a field, formatted only when an issue names it (the happy path formats nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldPath {
    /// A fixed path (`order_info.created`).
    Name(&'static str),
    /// A line item (`orders[2]`) or one of its fields (`orders[2].num`, when `name` is not empty).
    Item { idx: usize, name: &'static str },
}

impl From<&'static str> for FieldPath {
    fn from(name: &'static str) -> FieldPath {
        FieldPath::Name(name)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Name(name) => f.write_str(name),
            FieldPath::Item { idx, name: "" } => write!(f, "orders[{idx}]"),
            FieldPath::Item { idx, name } => write!(f, "orders[{idx}].{name}"),
        }
    }
}

/// `text` quoted for a message, cut to [`QUOTE_LIMIT`] bytes on a character boundary.
pub(crate) fn quote(text: &str) -> String {
    if text.len() <= QUOTE_LIMIT {
        format!("{text:?}")
    } else {
        format!("{:?}…", &text[..text.floor_char_boundary(QUOTE_LIMIT)])
    }
}

/// The issue for a required field that is absent or of the wrong kind.
pub(crate) fn absent_or_wrong(
    field: impl Into<FieldPath>,
    kind: Option<JsonKind>,
    expected: &str,
) -> YouzanIssue {
    let field: FieldPath = field.into();
    match kind {
        None | Some(JsonKind::Null) => YouzanIssue::new(IssueKind::Missing, field, "is missing"),
        Some(kind) => {
            YouzanIssue::new(IssueKind::WrongType, field, format_args!("must be {expected}, got {kind}"))
        }
    }
}

/// A required object.
pub(crate) fn object<T>(field: impl Into<FieldPath>, value: ObjectField<T>) -> Result<T, YouzanIssue> {
    let field: FieldPath = field.into();
    match value {
        ObjectField::Present(value) => Ok(value),
        ObjectField::Missing => Err(absent_or_wrong(field, None, "an object")),
        ObjectField::Wrong(kind) => Err(absent_or_wrong(field, Some(kind), "an object")),
    }
}

/// A required, non-empty array.
pub(crate) fn non_empty_array<T>(
    field: impl Into<FieldPath>,
    value: ArrayField<T>,
) -> Result<Vec<T>, YouzanIssue> {
    let field: FieldPath = field.into();
    match value {
        ArrayField::Present(items) if items.is_empty() => {
            Err(YouzanIssue::new(IssueKind::EmptyOrders, field, "is empty"))
        }
        ArrayField::Present(items) => Ok(items),
        ArrayField::Missing => Err(absent_or_wrong(field, None, "an array")),
        ArrayField::Wrong(kind) => Err(absent_or_wrong(field, Some(kind), "an array")),
    }
}

/// A required string that is not empty nor only whitespace.
pub(crate) fn required_text<'s>(
    field: impl Into<FieldPath>,
    value: &'s Scalar<'_>,
) -> Result<&'s str, YouzanIssue> {
    let field: FieldPath = field.into();
    match value {
        Scalar::Text(text) if text.trim().is_empty() => {
            Err(YouzanIssue::new(IssueKind::EmptyText, field, "is empty"))
        }
        Scalar::Text(text) => Ok(text),
        other => Err(absent_or_wrong(field, other.kind(), "a string")),
    }
}

/// A required status, spelled exactly as listed.
pub(crate) fn status(field: impl Into<FieldPath>, value: &Scalar<'_>) -> Result<TradeStatus, YouzanIssue> {
    let field: FieldPath = field.into();
    match value {
        Scalar::Text(text) => TradeStatus::from_spelling(text).ok_or_else(|| {
            YouzanIssue::new(
                IssueKind::UnknownStatus,
                field,
                format_args!("is not a known status: {}", quote(text)),
            )
        }),
        other => Err(absent_or_wrong(field, other.kind(), "a string")),
    }
}

/// A required `YYYY-MM-DD HH:MM:SS` that is a real date and time; returns the text as given.
pub(crate) fn date_time<'s>(
    field: impl Into<FieldPath>,
    value: &'s Scalar<'_>,
) -> Result<&'s str, YouzanIssue> {
    let field: FieldPath = field.into();
    let text = match value {
        Scalar::Text(text) => text,
        other => return Err(absent_or_wrong(field, other.kind(), "a string")),
    };
    let Some([year, month, day, hour, minute, second]) = date_time_parts(text) else {
        return Err(YouzanIssue::new(
            IssueKind::InvalidDateTime,
            field,
            format_args!("is not YYYY-MM-DD HH:MM:SS: {}", quote(text)),
        ));
    };
    let real = i32::try_from(year).ok().and_then(|year| NaiveDate::from_ymd_opt(year, month, day)).is_some()
        && NaiveTime::from_hms_opt(hour, minute, second).is_some();
    if !real {
        return Err(YouzanIssue::new(
            IssueKind::InvalidDateTime,
            field,
            format_args!("is not a real date and time: {}", quote(text)),
        ));
    }
    Ok(text)
}

/// The six numbers of `YYYY-MM-DD HH:MM:SS`, when `text` has exactly that shape.
fn date_time_parts(text: &str) -> Option<[u32; 6]> {
    let bytes = text.as_bytes();
    if bytes.len() != 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b' '
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes[from..to]
            .iter()
            .try_fold(0u32, |value, byte| byte.is_ascii_digit().then(|| value * 10 + u32::from(byte - b'0')))
    };
    Some([number(0, 4)?, number(5, 7)?, number(8, 10)?, number(11, 13)?, number(14, 16)?, number(17, 19)?])
}

/// A money field: a decimal string, non-negative, at most two fraction digits. `None` when the field
/// is absent or `null` and `required` is false.
pub(crate) fn money(
    field: impl Into<FieldPath>,
    value: &Scalar<'_>,
    required: bool,
) -> Result<Option<Money>, YouzanIssue> {
    let field: FieldPath = field.into();
    match value {
        Scalar::Text(text) => match Money::parse(text) {
            Ok(amount) => Ok(Some(amount)),
            Err(error) => {
                let kind = match error {
                    MoneyError::Negative => IssueKind::NegativeMoney,
                    MoneyError::TooManyFractionDigits => IssueKind::TooManyFractionDigits,
                    _ => IssueKind::InvalidMoney,
                };
                Err(YouzanIssue::new(kind, field, format_args!("{error}: {}", quote(text))))
            }
        },
        Scalar::Missing | Scalar::Null if !required => Ok(None),
        other => Err(absent_or_wrong(field, other.kind(), "a decimal string")),
    }
}

/// A required quantity: an integer of at least 1.
pub(crate) fn quantity(field: impl Into<FieldPath>, value: &Scalar<'_>) -> Result<u64, YouzanIssue> {
    let field: FieldPath = field.into();
    match value {
        Scalar::Integer(number) => {
            u64::try_from(*number).ok().filter(|number| *number >= 1).ok_or_else(|| {
                YouzanIssue::new(
                    IssueKind::InvalidQuantity,
                    field,
                    format_args!("must be at least 1, got {number}"),
                )
            })
        }
        other => Err(absent_or_wrong(field, other.kind(), "an integer")),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn text(value: &str) -> Scalar<'_> {
        Scalar::Text(Cow::Borrowed(value))
    }

    #[test]
    fn date_times_must_have_the_shape_and_be_real() {
        assert_eq!(date_time("created", &text("2024-02-29 23:59:59")).unwrap(), "2024-02-29 23:59:59");
        for (value, complaint) in [
            ("2023-02-29 10:00:00", "is not a real date and time"),
            ("2024-02-30 10:00:00", "is not a real date and time"),
            ("2024-04-31 10:00:00", "is not a real date and time"),
            ("2024-13-01 10:00:00", "is not a real date and time"),
            ("2024-01-01 24:00:00", "is not a real date and time"),
            ("2024-01-01 23:60:00", "is not a real date and time"),
            ("2024-01-01 23:59:60", "is not a real date and time"),
            ("2024-1-01 10:00:00", "is not YYYY-MM-DD HH:MM:SS"),
            ("2024-01-01T10:00:00", "is not YYYY-MM-DD HH:MM:SS"),
            ("2024-01-01 10:00", "is not YYYY-MM-DD HH:MM:SS"),
            ("2024-01-01 10:00:00+08:00", "is not YYYY-MM-DD HH:MM:SS"),
            ("２０２４-01-01 10:00:0", "is not YYYY-MM-DD HH:MM:SS"),
            ("", "is not YYYY-MM-DD HH:MM:SS"),
        ] {
            let issue = date_time("order_info.created", &text(value)).unwrap_err();
            assert_eq!(issue.kind, IssueKind::InvalidDateTime);
            assert_eq!(issue.message, format!("order_info.created {complaint}: {value:?}"));
        }
        assert_eq!(
            date_time("created", &Scalar::Integer(1_700_000_000)).unwrap_err().kind,
            IssueKind::WrongType
        );
        assert_eq!(date_time("created", &Scalar::Missing).unwrap_err().kind, IssueKind::Missing);
    }

    #[test]
    fn statuses_are_case_sensitive() {
        assert_eq!(status("s", &text("TRADE_SUCCESS")).unwrap(), TradeStatus::TradeSuccess);
        let issue = status("order_info.status", &text("trade_success")).unwrap_err();
        assert_eq!(issue.kind, IssueKind::UnknownStatus);
        assert_eq!(issue.message, r#"order_info.status is not a known status: "trade_success""#);
        for spelling in TradeStatus::ALL {
            assert_eq!(TradeStatus::from_spelling(spelling.as_str()), Some(spelling));
            assert_eq!(serde_json::to_value(spelling).unwrap(), spelling.as_str());
        }
    }

    #[test]
    fn money_fields_name_what_is_wrong() {
        assert_eq!(money("p", &text("1.50"), true).unwrap(), Some(Money::from_fen(150)));
        assert_eq!(money("p", &Scalar::Missing, false).unwrap(), None);
        assert_eq!(money("p", &Scalar::Null, false).unwrap(), None);
        for (value, kind, message) in [
            (text("-1.00"), IssueKind::NegativeMoney, r#"pay_info.payment is negative: "-1.00""#),
            (
                text("1.001"),
                IssueKind::TooManyFractionDigits,
                r#"pay_info.payment has more than two fraction digits: "1.001""#,
            ),
            (text(""), IssueKind::InvalidMoney, r#"pay_info.payment is empty: """#),
            (text("abc"), IssueKind::InvalidMoney, r#"pay_info.payment is not a decimal number: "abc""#),
            (Scalar::Float, IssueKind::WrongType, "pay_info.payment must be a decimal string, got a number"),
            (
                Scalar::Integer(3),
                IssueKind::WrongType,
                "pay_info.payment must be a decimal string, got a number",
            ),
            (Scalar::Missing, IssueKind::Missing, "pay_info.payment is missing"),
            (Scalar::Null, IssueKind::Missing, "pay_info.payment is missing"),
        ] {
            let issue = money("pay_info.payment", &value, true).unwrap_err();
            assert_eq!((issue.kind, issue.message.as_str()), (kind, message));
        }
        // Optional money fields are checked the same way when present.
        assert_eq!(money("p", &Scalar::Float, false).unwrap_err().kind, IssueKind::WrongType);
    }

    #[test]
    fn quantities_are_integers_of_at_least_one() {
        assert_eq!(quantity("n", &Scalar::Integer(3)).unwrap(), 3);
        assert_eq!(
            quantity("orders[0].num", &Scalar::Integer(0)).unwrap_err().message,
            "orders[0].num must be at least 1, got 0"
        );
        assert_eq!(quantity("n", &Scalar::Integer(-2)).unwrap_err().kind, IssueKind::InvalidQuantity);
        assert_eq!(quantity("n", &Scalar::Float).unwrap_err().kind, IssueKind::WrongType);
        assert_eq!(quantity("n", &text("2")).unwrap_err().kind, IssueKind::WrongType);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "状".repeat(100);
        let issue = status("order_info.status", &text(&long)).unwrap_err();
        assert!(issue.message.len() < 120, "{}", issue.message);
        assert!(issue.message.ends_with('…'));
    }
}
