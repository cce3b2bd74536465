//! The task's result: [`YouzanSummary`], orders, items and GMV per region and per category, with counts of
//! valid, invalid and unresolved-province records. Mergeable (chunks processed apart add up) and
//! serialisable (it rides in checkpoints).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::youzan::enrich::EnrichedOrder;
use crate::youzan::money::Money;

/// Orders, items and GMV of one region or one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Orders: in a region, those delivered there; in a category, those whose `main_category` it is.
    pub orders: u64,
    /// Items (sum of `num`): of the orders, or of the line items in the category.
    pub items: u64,
    /// GMV: the orders' `pay_info.payment`, or the `payment` of the line items in the category.
    pub gmv: Money,
}

impl Totals {
    fn merge(&mut self, other: &Totals) {
        self.orders = self.orders.saturating_add(other.orders);
        self.items = self.items.saturating_add(other.items);
        self.gmv += other.gmv;
    }
}

/// The summary of a run: what [`YouzanSummary::add`] and [`YouzanSummary::add_invalid`] saw.
///
/// Maps are keyed by name (regions such as `华东`, `未知`; categories such as `食品饮料`, `其他`) and
/// hold only the names seen. Money is written with two fraction digits.
///
/// ```
/// use batch_tasks::youzan::{YouzanSummary, YouzanProcessor};
///
/// let processor = YouzanProcessor::with_defaults();
/// let line = r#"{"order_info": {"tid": "E1", "status": "TRADE_PAID", "created": "2024-11-04 14:37:13"},
///                "address_info": {"delivery_province": "广东省"},
///                "pay_info": {"payment": "15.50"},
///                "orders": [{"title": "纯棉袜子", "num": 3, "payment": "10.50"},
///                           {"title": "手机壳", "num": 1, "payment": "5.00"}]}"#;
/// let mut summary = YouzanSummary::default();
/// summary.add(&processor.process_line(line).unwrap());
/// summary.add_invalid();
/// assert_eq!((summary.valid, summary.invalid), (1, 1));
/// assert_eq!(summary.regions["华南"].gmv.to_string(), "15.50");
/// assert_eq!(summary.categories["服饰鞋包"].orders, 1);
/// assert_eq!(summary.categories["数码家电"].items, 1);
/// assert_eq!(serde_json::to_value(&summary).unwrap()["categories"]["数码家电"]["gmv"], "5.00");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct YouzanSummary {
    /// Valid records (one output line each).
    pub valid: u64,
    /// Invalid records (one dead letter each).
    pub invalid: u64,
    /// Valid records whose province could not be resolved (region `未知`).
    pub unresolved_province: u64,
    /// The GMV of every valid record.
    pub gmv: Money,
    /// Per region.
    pub regions: BTreeMap<String, Totals>,
    /// Per category.
    pub categories: BTreeMap<String, Totals>,
}

impl YouzanSummary {
    /// Counts a valid, enriched order.
    pub fn add(&mut self, order: &EnrichedOrder) {
        let items = order.items.iter().map(|item| (item.category.as_str(), item.num, item.payment));
        self.add_parts(
            &order.region,
            order.province.is_some(),
            order.gmv,
            order.item_count,
            &order.main_category,
            items,
        );
    }

    /// Counts a valid order from its tally.
    pub(crate) fn add_tally(&mut self, tally: &OrderTally) {
        let items = tally.items.iter().map(|(category, num, payment)| (category.as_str(), *num, *payment));
        self.add_parts(
            &tally.region,
            tally.resolved,
            tally.gmv,
            tally.item_count,
            &tally.main_category,
            items,
        );
    }

    fn add_parts<'i>(
        &mut self,
        region_name: &str,
        resolved: bool,
        gmv: Money,
        item_count: u64,
        main_category: &str,
        items: impl Iterator<Item = (&'i str, u64, Money)>,
    ) {
        self.valid += 1;
        if !resolved {
            self.unresolved_province += 1;
        }
        self.gmv += gmv;
        let region = entry(&mut self.regions, region_name);
        region.orders += 1;
        region.items = region.items.saturating_add(item_count);
        region.gmv += gmv;
        entry(&mut self.categories, main_category).orders += 1;
        for (name, num, payment) in items {
            let category = entry(&mut self.categories, name);
            category.items = category.items.saturating_add(num);
            category.gmv += payment;
        }
    }

    /// Counts an invalid record.
    pub fn add_invalid(&mut self) {
        self.invalid += 1;
    }

    /// Adds what `other` counted (e.g. a chunk processed apart) to this summary.
    pub fn merge(&mut self, other: &YouzanSummary) {
        self.valid += other.valid;
        self.invalid += other.invalid;
        self.unresolved_province += other.unresolved_province;
        self.gmv += other.gmv;
        for (name, totals) in &other.regions {
            entry(&mut self.regions, name).merge(totals);
        }
        for (name, totals) in &other.categories {
            entry(&mut self.categories, name).merge(totals);
        }
    }

    /// Every record seen, valid or not.
    pub fn records(&self) -> u64 {
        self.valid + self.invalid
    }
}

/// What one valid order adds to a [`YouzanSummary`], without the rest of the order: a worker turns the
/// order into its tally (moving the few strings it keeps), so the serial summary stage frees little.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderTally {
    region: String,
    resolved: bool,
    gmv: Money,
    item_count: u64,
    main_category: String,
    /// (category, num, payment) per line item.
    items: Vec<(String, u64, Money)>,
}

impl From<EnrichedOrder> for OrderTally {
    fn from(order: EnrichedOrder) -> OrderTally {
        OrderTally {
            resolved: order.province.is_some(),
            region: order.region,
            gmv: order.gmv,
            item_count: order.item_count,
            main_category: order.main_category,
            items: order.items.into_iter().map(|item| (item.category, item.num, item.payment)).collect(),
        }
    }
}

/// The totals under `name`, created empty when absent (without allocating a key when present).
fn entry<'m>(map: &'m mut BTreeMap<String, Totals>, name: &str) -> &'m mut Totals {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), Totals::default());
    }
    match map.get_mut(name) {
        Some(totals) => totals,
        None => unreachable!("the key was inserted above"),
    }
}
