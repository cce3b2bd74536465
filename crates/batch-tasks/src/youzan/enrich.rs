//! The per-record work: [`YouzanProcessor::process_line`] turns one input line into an
//! [`EnrichedOrder`] (region, categories, totals) or the [`YouzanIssue`] that makes it invalid.

use serde::{Deserialize, Serialize};

use crate::youzan::categories::{Categories, CategoryId};
use crate::youzan::error::{IssueKind, YouzanIssue};
use crate::youzan::money::Money;
use crate::youzan::parse::{self, AddressExtra, AddressInfo, ObjectField, Scalar};
use crate::youzan::provinces::{Province, Provinces, UNKNOWN_REGION};
use crate::youzan::validate::{self, FieldPath, TradeStatus};

/// One valid trade, enriched: the output record of the `youzan_order` kind (one JSON line each).
///
/// Optional fields are `null` when the input lacks them (or holds an empty string or a value of the
/// wrong kind there: the fields the validation rules do not cover are informational). Money is an
/// exact decimal string with two fraction digits.
///
/// ```json
/// {"tid":"E20241104143713093806201","status":"TRADE_SUCCESS","created":"2024-11-04 14:37:13",
///  "pay_time":"2024-11-04 14:38:02","paid":true,"trade_type":0,"shop_name":"成都旗舰店",
///  "buyer_id":"yz_8fK2","region":"西南","province":"四川省","province_code":"51","city":"成都市",
///  "district":"武侯区","item_count":2,"total_fee":"288.00","post_fee":"8.00","gmv":"281.70",
///  "main_category":"食品饮料","items":[{"oid":"3092","item_id":41,"sku_id":0,
///  "title":"皇家草莓双层奶油蛋糕 (6寸)","sku_properties_name":null,"num":2,"price":"140.00",
///  "total_fee":"280.00","payment":"273.70","is_present":false,"category":"食品饮料"}]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedOrder {
    /// `order_info.tid`.
    pub tid: String,
    /// `order_info.status`.
    pub status: TradeStatus,
    /// `order_info.created`, as given (`YYYY-MM-DD HH:MM:SS`, China time).
    pub created: String,
    /// `order_info.pay_time` as given, `null` when empty.
    pub pay_time: Option<String>,
    /// Whether the trade is paid: `pay_time` is set and the status is neither `WAIT_BUYER_PAY` nor
    /// `TRADE_CLOSED`.
    pub paid: bool,
    /// `order_info.type` (0 normal, 1 gift, ...).
    pub trade_type: Option<i64>,
    /// `order_info.shop_name`.
    pub shop_name: Option<String>,
    /// `buyer_info.yz_open_id`.
    pub buyer_id: Option<String>,
    /// The region of the province, or `未知` when it could not be resolved.
    pub region: String,
    /// The province's full name; `null` when unresolved.
    pub province: Option<String>,
    /// The province's two-digit code; `null` when unresolved.
    pub province_code: Option<String>,
    /// `address_info.delivery_city`.
    pub city: Option<String>,
    /// `address_info.delivery_district`.
    pub district: Option<String>,
    /// The sum of the line items' `num`.
    pub item_count: u64,
    /// `pay_info.total_fee`: the price before discounts.
    pub total_fee: Option<Money>,
    /// `pay_info.post_fee`: the delivery fee.
    pub post_fee: Option<Money>,
    /// `pay_info.payment`: what the buyer paid.
    pub gmv: Money,
    /// The category whose line items have the largest sum of `payment` (ties: the earlier rule; the
    /// fallback ranks last).
    pub main_category: String,
    /// The line items, in input order.
    pub items: Vec<EnrichedItem>,
}

/// One line item of an [`EnrichedOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedItem {
    /// `oid`.
    pub oid: Option<String>,
    /// `item_id`.
    pub item_id: Option<i64>,
    /// `sku_id` (0: no SKU).
    pub sku_id: Option<i64>,
    /// `title`.
    pub title: String,
    /// `sku_properties_name`; `null` when empty.
    pub sku_properties_name: Option<String>,
    /// `num`.
    pub num: u64,
    /// `price`: the unit price.
    pub price: Option<Money>,
    /// `total_fee`: the line total before its discount share.
    pub total_fee: Option<Money>,
    /// `payment`: the line total paid.
    pub payment: Money,
    /// `is_present`: a free gift.
    pub is_present: bool,
    /// The category by the rules.
    pub category: String,
}

/// The compiled tables (provinces and category rules) and the per-record work.
///
/// `process_line` is pure and takes `&self`: share one processor across threads (it is `Sync`).
///
/// ```
/// use batch_tasks::youzan::YouzanProcessor;
///
/// let processor = YouzanProcessor::with_defaults();
/// let line = r#"{"full_order_info": {
///     "order_info": {"tid": "E1", "status": "TRADE_SUCCESS", "created": "2024-11-04 14:37:13",
///                    "pay_time": "2024-11-04 14:38:02"},
///     "address_info": {"delivery_province": "四川", "delivery_city": "成都市"},
///     "pay_info": {"payment": "281.70", "total_fee": "288.00", "post_fee": "8.00"},
///     "orders": [{"title": "皇家草莓双层奶油蛋糕 (6寸)", "num": 2, "payment": "273.70"}]}}"#;
/// let order = processor.process_line(line).unwrap();
/// assert_eq!((order.region.as_str(), order.province.as_deref()), ("西南", Some("四川省")));
/// assert_eq!(order.main_category, "食品饮料");
/// assert_eq!((order.item_count, order.gmv.to_string()), (2, "281.70".to_owned()));
/// assert!(order.paid);
/// ```
#[derive(Debug, Clone)]
pub struct YouzanProcessor {
    provinces: Provinces,
    categories: Categories,
}

impl YouzanProcessor {
    /// A processor over `provinces` and `categories`.
    pub fn new(provinces: Provinces, categories: Categories) -> YouzanProcessor {
        YouzanProcessor { provinces, categories }
    }

    /// A processor over the compiled-in tables ([`Provinces::defaults`], [`Categories::defaults`]).
    pub fn with_defaults() -> YouzanProcessor {
        YouzanProcessor::new(Provinces::defaults(), Categories::defaults())
    }

    /// The provinces table.
    pub fn provinces(&self) -> &Provinces {
        &self.provinces
    }

    /// The category rules.
    pub fn categories(&self) -> &Categories {
        &self.categories
    }

    /// Parses, validates and enriches one line (without its newline). The line is the
    /// `full_order_info` object or `{"full_order_info": {...}}`; unknown fields are ignored. A blank
    /// line is invalid too.
    ///
    /// The first rule broken, in the order `FORMAT.md` lists them (the line, then `order_info`,
    /// `pay_info` and `orders`; then `tid`, `status`, `created`; then the money of `pay_info`; then
    /// each line item in order: `title`, `num`, `price`, `total_fee`, `payment`), is the issue.
    pub fn process_line(&self, line: &str) -> Result<EnrichedOrder, YouzanIssue> {
        if line.trim().is_empty() {
            return Err(YouzanIssue::record(IssueKind::BlankLine, "is a blank line"));
        }
        let parsed = match parse::parse_line(line) {
            Ok(ObjectField::Present(parsed)) => parsed,
            Ok(ObjectField::Wrong(kind)) => {
                return Err(YouzanIssue::record(
                    IssueKind::NotAnObject,
                    format_args!("is not a JSON object, got {kind}"),
                ));
            }
            Ok(ObjectField::Missing) => {
                return Err(YouzanIssue::record(IssueKind::NotAnObject, "is not a JSON object"));
            }
            Err(error) => {
                return Err(YouzanIssue::record(
                    IssueKind::InvalidJson,
                    format_args!("is not valid JSON: {error}"),
                ));
            }
        };
        let trade = parsed
            .into_trade()
            .map_err(|kind| validate::absent_or_wrong("full_order_info", Some(kind), "an object"))?;

        let order_info = validate::object("order_info", trade.order_info)?;
        let pay_info = validate::object("pay_info", trade.pay_info)?;
        let line_items = validate::non_empty_array("orders", trade.orders)?;

        let tid = validate::required_text("order_info.tid", &order_info.tid)?;
        let status = validate::status("order_info.status", &order_info.status)?;
        let created = validate::date_time("order_info.created", &order_info.created)?;

        let total_fee = validate::money("pay_info.total_fee", &pay_info.total_fee, false)?;
        let gmv = validate::money("pay_info.payment", &pay_info.payment, true)?.unwrap_or_default();
        let post_fee = validate::money("pay_info.post_fee", &pay_info.post_fee, false)?;

        let mut items = Vec::with_capacity(line_items.len());
        let mut item_categories: Vec<(CategoryId, Money)> = Vec::with_capacity(line_items.len());
        let mut item_count: u64 = 0;
        for (idx, line_item) in line_items.into_iter().enumerate() {
            let item = validate::object(FieldPath::Item { idx, name: "" }, line_item)?;
            let title = validate::required_text(FieldPath::Item { idx, name: "title" }, &item.title)?;
            let num = validate::quantity(FieldPath::Item { idx, name: "num" }, &item.num)?;
            let price = validate::money(FieldPath::Item { idx, name: "price" }, &item.price, false)?;
            let line_total =
                validate::money(FieldPath::Item { idx, name: "total_fee" }, &item.total_fee, false)?;
            let payment = validate::money(FieldPath::Item { idx, name: "payment" }, &item.payment, true)?
                .unwrap_or_default();
            let sku_text = item.sku_properties_name.as_text().unwrap_or("");
            let category = self.categories.categorize(title, sku_text);
            item_categories.push((category, payment));
            item_count = item_count.saturating_add(num);
            items.push(EnrichedItem {
                oid: item.oid.non_empty_text(),
                item_id: item.item_id.as_i64(),
                sku_id: item.sku_id.as_i64(),
                title: title.to_owned(),
                sku_properties_name: item.sku_properties_name.non_empty_text(),
                num,
                price,
                total_fee: line_total,
                payment,
                is_present: matches!(item.is_present, Scalar::Bool(true)),
                category: self.categories.name(category).to_owned(),
            });
        }
        let main_category = main_category(&mut item_categories);

        let address = match trade.address_info {
            ObjectField::Present(address) => address,
            ObjectField::Missing | ObjectField::Wrong(_) => AddressInfo::default(),
        };
        let province = self.resolve_province(&address);
        let pay_time = order_info.pay_time.non_empty_text();
        let buyer_id = match &trade.buyer_info {
            ObjectField::Present(buyer) => buyer.yz_open_id.non_empty_text(),
            ObjectField::Missing | ObjectField::Wrong(_) => None,
        };
        Ok(EnrichedOrder {
            tid: tid.to_owned(),
            status,
            created: created.to_owned(),
            paid: pay_time.is_some() && status.may_be_paid(),
            pay_time,
            trade_type: order_info.trade_type.as_i64(),
            shop_name: order_info.shop_name.non_empty_text(),
            buyer_id,
            region: province.map_or(UNKNOWN_REGION, |province| province.region.as_str()).to_owned(),
            province: province.map(|province| province.name.clone()),
            province_code: province.map(|province| province.code.clone()),
            city: address.delivery_city.non_empty_text(),
            district: address.delivery_district.non_empty_text(),
            item_count,
            total_fee,
            post_fee,
            gmv,
            main_category: self.categories.name(main_category).to_owned(),
            items,
        })
    }

    /// The province by `delivery_province`, else by the area code in `address_extra`.
    fn resolve_province(&self, address: &AddressInfo<'_>) -> Option<&Province> {
        if let Some(province) =
            address.delivery_province.as_text().and_then(|name| self.provinces.by_name(name))
        {
            return Some(province);
        }
        let extra_text = address.address_extra.as_text()?;
        let extra: AddressExtra<'_> = match parse::parse_extra(extra_text) {
            Ok(ObjectField::Present(extra)) => extra,
            Ok(_) | Err(_) => return None,
        };
        match &extra.area_code {
            Scalar::Text(code) => self.provinces.by_area_code(code),
            Scalar::Integer(code) if (100_000..=999_999).contains(code) => {
                self.provinces.by_area_code(&code.to_string())
            }
            _ => None,
        }
    }
}

/// The category with the largest sum of line payments; ties go to the lower rank (the earlier rule,
/// the fallback last). Sorts `lines` by category.
fn main_category(lines: &mut [(CategoryId, Money)]) -> CategoryId {
    lines.sort_unstable_by_key(|(category, _)| *category);
    let mut best: Option<(CategoryId, Money)> = None;
    let mut idx = 0;
    while idx < lines.len() {
        let category = lines[idx].0;
        let mut sum = Money::ZERO;
        while idx < lines.len() && lines[idx].0 == category {
            sum += lines[idx].1;
            idx += 1;
        }
        // Categories come in rank order: only a strictly larger sum displaces an earlier one.
        if best.is_none_or(|(_, best_sum)| sum > best_sum) {
            best = Some((category, sum));
        }
    }
    best.map_or(CategoryId(0), |(category, _)| category)
}
