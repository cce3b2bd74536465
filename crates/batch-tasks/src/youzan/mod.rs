//! The `youzan_order` task kind's logic: YouZan (有赞) trade records (`docs/youzan-format.md`) parsed,
//! validated, enriched with region and product categories, and summed with exact money.
//!
//! # The seam
//!
//! The per-record work is [`YouzanProcessor::process_line`]: pure, `&self`, thread-safe. The kind,
//! [`YouzanOrderKind`], hands it to the standard chunk runner ([`crate::records`]) as a
//! [`RecordJob`](crate::records::RecordJob): the runner calls it on each line (`concurrency` at a time, in order), writes each
//! [`EnrichedOrder`] as a JSON line and each [`YouzanIssue`] as a dead letter (`VALIDATION_ERROR`,
//! the field named), and keeps the [`YouzanSummary`] in its checkpoints ([`YouzanSummary::add`],
//! [`YouzanSummary::add_invalid`]; summaries of parts [`merge`](YouzanSummary::merge)). [`YouzanParams`] reads
//! the task's params and loads the tables they name. The input is a file, or the YouZan open API
//! (`input` = its base URL, [`ApiParams`]; the HTTP client behind the `youzan-api` feature).
//!
//! ```
//! use batch_tasks::youzan::{YouzanSummary, YouzanProcessor};
//!
//! let processor = YouzanProcessor::with_defaults();
//! let mut summary = YouzanSummary::default();
//! for line in [
//!     r#"{"order_info": {"tid": "E1", "status": "WAIT_BUYER_PAY", "created": "2024-11-04 14:37:13"},
//!         "address_info": {"delivery_province": "", "address_extra": "{\"areaCode\":\"330106\"}"},
//!         "pay_info": {"payment": "59.00"}, "orders": [{"title": "保温杯", "num": 1, "payment": "59.00"}]}"#,
//!     r#"{"order_info": {"tid": "E2"}}"#,
//!     "",
//! ] {
//!     match processor.process_line(line) {
//!         Ok(order) => summary.add(&order),
//!         Err(_issue) => summary.add_invalid(),
//!     }
//! }
//! assert_eq!((summary.valid, summary.invalid), (1, 2));
//! assert_eq!(summary.regions["华东"].gmv.to_string(), "59.00");
//! assert_eq!(summary.categories["家居日用"].orders, 1);
//! ```
//!
//! # Decisions where the format leaves room
//!
//! - **Which fields are required.** The validation rules name `order_info`, `pay_info`, `orders`,
//!   `tid`, `status`, `created`, the money fields and each line item's `title` and `num`. Of the money
//!   fields, `pay_info.payment` and each line item's `payment` are required (the GMV and the category
//!   sums are made of them); `total_fee`, `post_fee` and `price` may be absent or `null`, and are
//!   checked when present. Every other field is informational: when absent, empty or of the wrong
//!   JSON type it is `null` in the output, never an error (province resolution is never an error,
//!   says the format, and the validation list is closed).
//! - **Empty text.** `tid` and `title` that hold only whitespace count as empty; a line of only
//!   whitespace is a blank line.
//! - **Money.** Digits with an optional point and one or two digits: `"12"`, `"12.5"` and `"12.50"`
//!   are valid; `"1."`, `".5"`, `"+1"`, `" 1"`, `"1e2"` are not; a value beyond `i64::MAX` fen is
//!   refused ([`Money`]). Line payments are not required to add up to `pay_info.payment` (post fees,
//!   order-level discounts and rounding make them differ in real records).
//! - **Dates.** Exactly `YYYY-MM-DD HH:MM:SS`, a real calendar date and a time up to `23:59:59`.
//!   `pay_time` is not validated (the format lists no rule for it): a non-empty `pay_time` makes a
//!   trade paid, unless its status is `WAIT_BUYER_PAY` or `TRADE_CLOSED`.
//! - **Wrapping.** A line with a `full_order_info` key is the wrapped form; its value must then be an
//!   object. Field paths in issues are relative to `full_order_info` either way.
//! - **A field named twice** (in the fields the task reads) makes the record invalid JSON: which of
//!   the two values is meant is unknowable.
//! - **Province names** are compared after trimming surrounding whitespace; `areaCode` may be a
//!   six-digit string or integer. Tid uniqueness is not checked (it would need state across records
//!   and chunks).
//! - **Issues** report the first broken rule in the order of the format's list (see
//!   [`YouzanProcessor::process_line`]).

mod api;
mod categories;
mod config;
mod enrich;
mod error;
pub mod generator;
mod kind;
mod money;
mod params;
mod parse;
mod provinces;
mod summary;
mod validate;

#[cfg(test)]
mod tests;

#[cfg(feature = "youzan-api")]
pub use api::YouzanApiInput;
pub use api::{ApiCursor, ApiParams, TokenSource};
pub use categories::{Categories, CategoryId, MatchField};
pub use config::YouzanParams;
pub use enrich::{EnrichedItem, EnrichedOrder, YouzanProcessor};
pub use error::{IssueKind, YouzanError, YouzanIssue};
pub use kind::YouzanOrderKind;
pub use money::{Money, MoneyError};
pub use provinces::{Province, Provinces, UNKNOWN_REGION};
pub use summary::{Totals, YouzanSummary};
pub use validate::TradeStatus;
