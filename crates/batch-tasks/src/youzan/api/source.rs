//! The YouZan API as the chunk runner's [`RecordSource`]: pages fetched one at a time at the
//! configured rate (pump-core's `throttle`), each listed trade a record, the page cursor as the
//! position.

use std::num::NonZeroU32;
use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use pump_core::flow::time::Throttle;
use pump_core::source::{BoxSource, FilePosition, Record, SourceStage};
use pump_core::{PipelineError, Source, SourceExt as _, StageContext};

use super::ApiCursor;
use super::client::ApiClient;
use crate::records::{RecordSource, SourceElement};

/// The trades of a closed time window, listed page by page by `youzan.trades.sold.get`.
///
/// Each listed trade is a record whose text is the list item exactly as the API sent it (a
/// `{"full_order_info": {...}}` object); its `line` is its 1-based ordinal in the listing and its
/// `offset` the 0-based one. The position after a record is an [`ApiCursor`]: the page to ask for
/// next and how many of its trades are done. A resume asks for that page again and skips those:
/// exact as long as the window is closed (its end in the past), which the params require.
///
/// Page requests start at most `requests_per_second` a second (a token bucket, pump-core's
/// `throttle`, in backpressure mode: a page is not even asked for before its token); each is bounded
/// by the task's `timeout` and retried up to its `max_retries` times after a backoff (the runner's
/// `RunnerOptions`), or after the API's `Retry-After` on HTTP 429. A refused token, another refusal,
/// or retries spent end the run with a [`SourceFailure`](crate::records::SourceFailure).
#[derive(Debug, Clone)]
pub struct YouzanApiInput {
    client: Arc<ApiClient>,
    page_size: u64,
    throttle: Throttle,
}

impl YouzanApiInput {
    pub(crate) fn new(client: ApiClient, page_size: u32, requests_per_second: u32) -> YouzanApiInput {
        let rate = NonZeroU32::new(requests_per_second).unwrap_or(NonZeroU32::MIN);
        YouzanApiInput {
            client: Arc::new(client),
            page_size: u64::from(page_size.max(1)),
            throttle: Throttle::per_second(rate),
        }
    }
}

impl RecordSource for YouzanApiInput {
    type Position = ApiCursor;
    type Source = BoxSource<SourceElement>;

    fn open(&self, position: Option<&ApiCursor>) -> BoxSource<SourceElement> {
        let cursor = position.copied().unwrap_or_default();
        Pages { client: Arc::clone(&self.client), page_size: self.page_size, cursor }
            .throttle(self.throttle)
            .flat_map(FetchedPage::into_records as fn(FetchedPage) -> Vec<SourceElement>)
            .boxed()
    }

    fn position_after(&self, element: &SourceElement) -> ApiCursor {
        let done = match element {
            Ok(record) => record.end.offset,
            Err(error) => error.end.offset,
        };
        ApiCursor::after(done, self.page_size)
    }

    fn describe(&self) -> String {
        self.client.name().to_owned()
    }

    fn estimated_total(&self, done: u64, _position: &ApiCursor) -> Option<u64> {
        self.client.total().map(|total| total.max(done))
    }
}

/// A fetched page on its way to be cut into records.
struct FetchedPage {
    records: Vec<String>,
    /// The ordinal of the page's first trade.
    first: u64,
    /// Trades of the page already done (a resume inside the page).
    skip: usize,
}

impl FetchedPage {
    fn into_records(self) -> Vec<SourceElement> {
        let FetchedPage { records, first, skip } = self;
        (first..)
            .zip(records)
            .skip(skip)
            .map(|(ordinal, value)| {
                Ok(Record {
                    value,
                    line: ordinal + 1,
                    offset: ordinal,
                    end: FilePosition { offset: ordinal + 1, line: ordinal + 2 },
                })
            })
            .collect()
    }
}

/// The pages from a cursor on, one request per pull; the run fails with the client's failure.
struct Pages {
    client: Arc<ApiClient>,
    page_size: u64,
    cursor: ApiCursor,
}

impl Source for Pages {
    type Item = FetchedPage;
    type Stream = SourceStage<BoxStream<'static, FetchedPage>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("youzan_api");
        let failing = stage.clone();
        let Pages { client, page_size, cursor } = self;
        let pages = futures::stream::unfold(Some(cursor), move |next| {
            let (client, failing) = (Arc::clone(&client), failing.clone());
            async move {
                let cursor = next?;
                match client.page(cursor.page).await {
                    Ok(page) if page.records.is_empty() => None,
                    Ok(page) => {
                        let next = (!page.last).then(|| ApiCursor::after(cursor.page * page_size, page_size));
                        let first = cursor.page.saturating_sub(1) * page_size;
                        let skip = usize::try_from(cursor.index).unwrap_or(usize::MAX);
                        Some((FetchedPage { records: page.records, first, skip }, next))
                    }
                    Err(failure) => {
                        failing.fail(PipelineError::io(failing.name(), failure));
                        None
                    }
                }
            }
        })
        .boxed();
        SourceStage::new(pages, &stage, ctx)
    }
}
