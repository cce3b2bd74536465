//! The YouZan open API as the input of `youzan_order`, in place of a file: `input` names the API's
//! base URL (`https://open.youzan.com`) and the task pages through `youzan.trades.sold.get` over a
//! closed time window (`data/youzan/FORMAT.md`, "the trade list API").
//!
//! - [`ApiParams`] — the params (always compiled, so that a task naming the API is checked and
//!   described the same everywhere): the token's source (`token_file` or `token_env`, read when a
//!   run starts, never stored), `start_created` / `end_created` (Beijing time, the end in the past),
//!   `page_size` (≤ 100), `requests_per_second`, `api_version`, `trade_status`.
//! - `YouzanApiInput` (feature `youzan-api`) — the chunk runner's
//!   [`RecordSource`](crate::records::RecordSource) over the API: an HTTPS client (reqwest over
//!   rustls with ring's crypto), pages at the configured rate, retries, and the [`ApiCursor`] as
//!   the checkpoint's position. Without the feature, a task naming the API is refused with a
//!   `CONFIGURATION_ERROR` saying so.

#[cfg(feature = "youzan-api")]
mod client;
mod config;
#[cfg(feature = "youzan-api")]
mod source;

use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "youzan-api")]
pub(crate) use client::ApiClient;
pub(crate) use config::API_PARAMS;
pub use config::{ApiParams, TokenSource};
#[cfg(feature = "youzan-api")]
pub use source::YouzanApiInput;

/// Where a read of the API resumes: the page to ask for next (from 1), how many of its trades are
/// done, and how many trades are done in all (`{"page": 3, "index": 17, "records": 217}` with pages
/// of 100). A checkpoint's source position when the input is the API.
///
/// ```
/// use batch_tasks::youzan::ApiCursor;
///
/// assert_eq!(ApiCursor::after(217, 100), ApiCursor { page: 3, index: 17, records: 217 });
/// assert_eq!(ApiCursor::after(200, 100), ApiCursor { page: 3, index: 0, records: 200 });
/// assert_eq!(ApiCursor::default(), ApiCursor::after(0, 100));
/// assert_eq!(ApiCursor::after(217, 100).to_string(), "page 3, trade 17 of it (217 trades done)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApiCursor {
    /// The page to ask for next, from 1.
    pub page: u64,
    /// Its trades already done.
    pub index: u64,
    /// Trades done in all.
    pub records: u64,
}

impl ApiCursor {
    /// The cursor after `records` trades listed in pages of `page_size`.
    pub fn after(records: u64, page_size: u64) -> ApiCursor {
        let page_size = page_size.max(1);
        ApiCursor { page: records / page_size + 1, index: records % page_size, records }
    }
}

impl Default for ApiCursor {
    /// The first page.
    fn default() -> ApiCursor {
        ApiCursor { page: 1, index: 0, records: 0 }
    }
}

impl fmt::Display for ApiCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "page {}, trade {} of it ({} trades done)", self.page, self.index, self.records)
    }
}
