//! Hand-checked cases for every validation and enrichment rule of `FORMAT.md`, each through
//! [`YouzanProcessor::process_line`] as a user's record would go.

use serde_json::{Value, json};

use super::*;
use crate::youzan::kind::EnrichedLine;

/// A valid trade with every field the task reads, and some it does not.
fn trade() -> Value {
    json!({
        "order_info": {
            "tid": "E20241104143713093806201",
            "status": "TRADE_SUCCESS",
            "created": "2024-11-04 14:37:13",
            "pay_time": "2024-11-04 14:38:02",
            "type": 0,
            "shop_name": "成都旗舰店",
            "order_tags": {"is_payed": true},
        },
        "address_info": {
            "delivery_province": "四川省",
            "delivery_city": "成都市",
            "delivery_district": "武侯区",
            "address_extra": "{\"areaCode\":\"510107\",\"lon\":103.98,\"lat\":30.67}",
        },
        "pay_info": {"total_fee": "288.00", "payment": "281.70", "post_fee": "8.00"},
        "buyer_info": {"yz_open_id": "yz_8fK2"},
        "orders": [
            {"oid": "3092", "item_id": 41, "sku_id": 0, "title": "皇家草莓双层奶油蛋糕 (6寸)",
             "sku_properties_name": "", "num": 2, "price": "140.00", "total_fee": "280.00",
             "payment": "273.70", "is_present": false},
        ],
    })
}

/// A trade whose line items are `(title, sku, payment)`.
fn trade_with_items(items: &[(&str, &str, &str)]) -> Value {
    let mut value = trade();
    value["orders"] = items
        .iter()
        .map(|(title, sku, payment)| json!({"title": title, "sku_properties_name": sku, "num": 1, "payment": payment}))
        .collect();
    value
}

fn processor() -> YouzanProcessor {
    YouzanProcessor::with_defaults()
}

fn order(value: &Value) -> EnrichedOrder {
    match processor().process_line(&value.to_string()) {
        Ok(order) => order,
        Err(issue) => panic!("{value} is invalid: {issue}"),
    }
}

/// The kind and field of the issue `line` is rejected with.
fn issue_of(line: &str) -> (IssueKind, String) {
    match processor().process_line(line) {
        Ok(order) => panic!("{line} is valid: {order:?}"),
        Err(issue) => {
            assert_eq!(issue.code, batch_model::ErrorCode::ValidationError);
            assert!(
                issue.message.starts_with(&issue.field),
                "{} does not name {}",
                issue.message,
                issue.field
            );
            (issue.kind, issue.field)
        }
    }
}

/// `trade()` changed by `change`, then checked to be rejected with `kind` on `field`.
fn check_invalid(change: impl FnOnce(&mut Value), kind: IssueKind, field: &str) {
    let mut value = trade();
    change(&mut value);
    assert_eq!(issue_of(&value.to_string()), (kind, field.to_owned()), "{value}");
}

fn remove(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    value.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
}

fn set(value: &mut Value, pointer: &str, new: Value) {
    *value.pointer_mut(pointer).unwrap() = new;
}

// ---------------------------------------------------------------------------------------------------
// Validation.

#[test]
fn the_sample_trade_is_valid_and_enriched_as_documented() {
    let order = order(&trade());
    let expected = json!({
        "tid": "E20241104143713093806201", "status": "TRADE_SUCCESS", "created": "2024-11-04 14:37:13",
        "pay_time": "2024-11-04 14:38:02", "paid": true, "trade_type": 0, "shop_name": "成都旗舰店",
        "buyer_id": "yz_8fK2", "region": "西南", "province": "四川省", "province_code": "51", "city": "成都市",
        "district": "武侯区", "item_count": 2, "total_fee": "288.00", "post_fee": "8.00", "gmv": "281.70",
        "main_category": "食品饮料",
        "items": [{"oid": "3092", "item_id": 41, "sku_id": 0, "title": "皇家草莓双层奶油蛋糕 (6寸)",
                   "sku_properties_name": null, "num": 2, "price": "140.00", "total_fee": "280.00",
                   "payment": "273.70", "is_present": false, "category": "食品饮料"}],
    });
    assert_eq!(serde_json::to_value(&order).unwrap(), expected);
    // The output reads back as the same order.
    let text = serde_json::to_string(&order).unwrap();
    assert_eq!(serde_json::from_str::<EnrichedOrder>(&text).unwrap(), order);
}

#[test]
fn blank_lines_are_invalid() {
    for line in ["", "   ", "\t", " \r "] {
        assert_eq!(issue_of(line), (IssueKind::BlankLine, "record".to_owned()), "{line:?}");
    }
    assert_eq!(processor().process_line("").unwrap_err().message, "record is a blank line");
}

#[test]
fn lines_that_are_not_json_are_invalid() {
    let full = trade().to_string();
    for line in ["{", "not json", "{'order_info': {}}", &full[..full.len() - 1], "{} {}", "{\"a\":1,}"] {
        assert_eq!(issue_of(line), (IssueKind::InvalidJson, "record".to_owned()), "{line}");
    }
    let issue = processor().process_line("{").unwrap_err();
    assert!(issue.message.starts_with("record is not valid JSON: EOF while parsing"), "{}", issue.message);
}

#[test]
fn json_values_other_than_objects_are_invalid() {
    for (line, kind) in [
        ("[1, 2]", "an array"),
        ("\"E1\"", "a string"),
        ("42", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ] {
        let issue = processor().process_line(line).unwrap_err();
        assert_eq!((issue.kind, issue.field.as_str()), (IssueKind::NotAnObject, "record"));
        assert_eq!(issue.message, format!("record is not a JSON object, got {kind}"));
    }
}

#[test]
fn order_info_pay_info_and_orders_are_required() {
    for (key, kind) in
        [("order_info", IssueKind::Missing), ("pay_info", IssueKind::Missing), ("orders", IssueKind::Missing)]
    {
        check_invalid(|v| remove(v, &format!("/{key}")), kind, key);
        check_invalid(|v| set(v, &format!("/{key}"), Value::Null), IssueKind::Missing, key);
        check_invalid(|v| set(v, &format!("/{key}"), json!("x")), IssueKind::WrongType, key);
    }
    check_invalid(|v| set(v, "/orders", json!({})), IssueKind::WrongType, "orders");
    check_invalid(|v| set(v, "/order_info", json!([])), IssueKind::WrongType, "order_info");
    let issue = processor().process_line(r#"{"order_info": 1, "pay_info": {}, "orders": [{}]}"#).unwrap_err();
    assert_eq!(issue.message, "order_info must be an object, got a number");
    let issue = processor().process_line(r#"{"pay_info": {}, "orders": [{}]}"#).unwrap_err();
    assert_eq!(issue.message, "order_info is missing");
}

#[test]
fn orders_must_not_be_empty_and_hold_objects() {
    check_invalid(|v| set(v, "/orders", json!([])), IssueKind::EmptyOrders, "orders");
    check_invalid(|v| set(v, "/orders/0", json!("item")), IssueKind::WrongType, "orders[0]");
    check_invalid(|v| v["orders"].as_array_mut().unwrap().push(Value::Null), IssueKind::Missing, "orders[1]");
}

#[test]
fn tid_must_be_a_non_empty_string() {
    check_invalid(|v| remove(v, "/order_info/tid"), IssueKind::Missing, "order_info.tid");
    check_invalid(|v| set(v, "/order_info/tid", json!("")), IssueKind::EmptyText, "order_info.tid");
    check_invalid(|v| set(v, "/order_info/tid", json!("  ")), IssueKind::EmptyText, "order_info.tid");
    check_invalid(|v| set(v, "/order_info/tid", json!(20241104)), IssueKind::WrongType, "order_info.tid");
}

#[test]
fn status_must_be_a_listed_value_in_its_case() {
    for status in TradeStatus::ALL {
        let mut value = trade();
        set(&mut value, "/order_info/status", json!(status.as_str()));
        assert_eq!(order(&value).status, status);
    }
    for bad in ["trade_success", "Trade_Success", "SHIPPED", "", " TRADE_SUCCESS"] {
        check_invalid(
            |v| set(v, "/order_info/status", json!(bad)),
            IssueKind::UnknownStatus,
            "order_info.status",
        );
    }
    check_invalid(|v| remove(v, "/order_info/status"), IssueKind::Missing, "order_info.status");
    check_invalid(|v| set(v, "/order_info/status", json!(5)), IssueKind::WrongType, "order_info.status");
}

#[test]
fn created_must_be_a_real_date_and_time() {
    for bad in [
        "2024-02-30 10:00:00",
        "2023-02-29 10:00:00",
        "2024-11-04",
        "2024-11-04T14:37:13",
        "2024/11/04 14:37:13",
        "昨天",
        "2024-11-04 25:00:00",
    ] {
        check_invalid(
            |v| set(v, "/order_info/created", json!(bad)),
            IssueKind::InvalidDateTime,
            "order_info.created",
        );
    }
    check_invalid(|v| remove(v, "/order_info/created"), IssueKind::Missing, "order_info.created");
    check_invalid(
        |v| set(v, "/order_info/created", json!(1730702233)),
        IssueKind::WrongType,
        "order_info.created",
    );
    let mut leap = trade();
    set(&mut leap, "/order_info/created", json!("2024-02-29 00:00:00"));
    assert_eq!(order(&leap).created, "2024-02-29 00:00:00");
}

#[test]
fn every_money_field_is_a_non_negative_decimal_string_with_at_most_two_fraction_digits() {
    for (pointer, field) in [
        ("/pay_info/total_fee", "pay_info.total_fee"),
        ("/pay_info/payment", "pay_info.payment"),
        ("/pay_info/post_fee", "pay_info.post_fee"),
        ("/orders/0/price", "orders[0].price"),
        ("/orders/0/total_fee", "orders[0].total_fee"),
        ("/orders/0/payment", "orders[0].payment"),
    ] {
        check_invalid(|v| set(v, pointer, json!(281.7)), IssueKind::WrongType, field);
        check_invalid(|v| set(v, pointer, json!(281)), IssueKind::WrongType, field);
        check_invalid(|v| set(v, pointer, json!("-1.00")), IssueKind::NegativeMoney, field);
        check_invalid(|v| set(v, pointer, json!("1.005")), IssueKind::TooManyFractionDigits, field);
        check_invalid(|v| set(v, pointer, json!("1,00")), IssueKind::InvalidMoney, field);
        check_invalid(|v| set(v, pointer, json!("")), IssueKind::InvalidMoney, field);
    }
    let issue = {
        let mut value = trade();
        set(&mut value, "/pay_info/payment", json!(281.7));
        processor().process_line(&value.to_string()).unwrap_err()
    };
    assert_eq!(issue.message, "pay_info.payment must be a decimal string, got a number");
}

#[test]
fn payments_are_required_and_the_other_money_fields_optional() {
    check_invalid(|v| remove(v, "/pay_info/payment"), IssueKind::Missing, "pay_info.payment");
    check_invalid(|v| remove(v, "/orders/0/payment"), IssueKind::Missing, "orders[0].payment");
    let mut value = trade();
    remove(&mut value, "/pay_info/total_fee");
    set(&mut value, "/pay_info/post_fee", Value::Null);
    remove(&mut value, "/orders/0/price");
    remove(&mut value, "/orders/0/total_fee");
    let order = order(&value);
    assert_eq!((order.total_fee, order.post_fee, order.items[0].price), (None, None, None));
    // One or no fraction digit is exact too.
    set(&mut value, "/pay_info/payment", json!("281.7"));
    assert_eq!(self::order(&value).gmv.to_string(), "281.70");
    set(&mut value, "/pay_info/payment", json!("281"));
    assert_eq!(self::order(&value).gmv.to_string(), "281.00");
}

#[test]
fn every_line_item_needs_a_title_and_a_quantity_of_at_least_one() {
    let mut two_items = trade();
    let second = json!({"title": "纯牛奶", "num": 1, "payment": "8.00"});
    two_items["orders"].as_array_mut().unwrap().push(second);
    let check = |change: &dyn Fn(&mut Value), kind, field: &str| {
        let mut value = two_items.clone();
        change(&mut value);
        assert_eq!(issue_of(&value.to_string()), (kind, field.to_owned()));
    };
    check(&|v| set(v, "/orders/1/title", json!("")), IssueKind::EmptyText, "orders[1].title");
    check(&|v| set(v, "/orders/1/title", json!(" ")), IssueKind::EmptyText, "orders[1].title");
    check(&|v| remove(v, "/orders/1/title"), IssueKind::Missing, "orders[1].title");
    check(&|v| set(v, "/orders/1/num", json!(0)), IssueKind::InvalidQuantity, "orders[1].num");
    check(&|v| set(v, "/orders/1/num", json!(-1)), IssueKind::InvalidQuantity, "orders[1].num");
    check(&|v| set(v, "/orders/1/num", json!("1")), IssueKind::WrongType, "orders[1].num");
    check(&|v| set(v, "/orders/1/num", json!(1.5)), IssueKind::WrongType, "orders[1].num");
    check(&|v| remove(v, "/orders/1/num"), IssueKind::Missing, "orders[1].num");
    let mut value = two_items.clone();
    set(&mut value, "/orders/1/num", json!(0));
    assert_eq!(
        processor().process_line(&value.to_string()).unwrap_err().message,
        "orders[1].num must be at least 1, got 0"
    );
}

#[test]
fn the_first_broken_rule_in_the_format_order_is_reported() {
    let mut value = trade();
    set(&mut value, "/orders/0/num", json!(0));
    set(&mut value, "/pay_info/payment", json!(1));
    set(&mut value, "/order_info/created", json!("2024-02-30 00:00:00"));
    set(&mut value, "/order_info/status", json!("paid"));
    assert_eq!(issue_of(&value.to_string()).1, "order_info.status");
    set(&mut value, "/order_info/status", json!("TRADE_PAID"));
    assert_eq!(issue_of(&value.to_string()).1, "order_info.created");
    set(&mut value, "/order_info/created", json!("2024-02-29 00:00:00"));
    assert_eq!(issue_of(&value.to_string()).1, "pay_info.payment");
    set(&mut value, "/pay_info/payment", json!("1.00"));
    assert_eq!(issue_of(&value.to_string()).1, "orders[0].num");
    // The structure comes before the fields.
    remove(&mut value, "/orders");
    assert_eq!(issue_of(&value.to_string()).1, "orders");
}

#[test]
fn wrapped_and_bare_objects_give_the_same_order() {
    let bare = trade();
    let wrapped = json!({"full_order_info": bare.clone(), "response_id": "abc"});
    assert_eq!(order(&wrapped), order(&bare));
    // Field paths are relative to full_order_info either way.
    let mut wrapped_bad = wrapped.clone();
    set(&mut wrapped_bad, "/full_order_info/order_info/created", json!("2024-02-30 10:00:00"));
    assert_eq!(
        issue_of(&wrapped_bad.to_string()),
        (IssueKind::InvalidDateTime, "order_info.created".to_owned())
    );
    for inner in [json!("x"), json!([]), Value::Null] {
        assert_eq!(
            issue_of(&json!({"full_order_info": inner}).to_string()),
            (
                if inner.is_null() { IssueKind::Missing } else { IssueKind::WrongType },
                "full_order_info".to_owned()
            )
        );
    }
}

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let mut value = trade();
    let extra = json!({"nested": [1, {"deep": [null, true, 1.5e300]}], "text": "\"quoted\" \u{1F600}"});
    for pointer in ["", "/order_info", "/address_info", "/pay_info", "/buyer_info", "/orders/0"] {
        value
            .pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("x_unknown".to_owned(), extra.clone());
    }
    value.as_object_mut().unwrap().insert("remark_info".to_owned(), json!({"buyer_message": "快点发货"}));
    assert_eq!(order(&value), order(&trade()));
}

#[test]
fn informational_fields_of_the_wrong_type_are_null_not_errors() {
    let mut value = trade();
    set(&mut value, "/order_info/shop_name", json!(17));
    set(&mut value, "/order_info/type", json!("normal"));
    set(&mut value, "/order_info/pay_time", json!(null));
    set(&mut value, "/buyer_info", json!("someone"));
    set(&mut value, "/orders/0/oid", json!(3092));
    set(&mut value, "/orders/0/is_present", json!("yes"));
    set(&mut value, "/address_info/delivery_city", json!(["成都市"]));
    let order = order(&value);
    assert_eq!((order.shop_name, order.trade_type, order.pay_time, order.buyer_id), (None, None, None, None));
    assert_eq!((order.items[0].oid.as_deref(), order.items[0].is_present, order.city), (None, false, None));
}

#[test]
fn a_field_named_twice_is_invalid_json() {
    let line = trade().to_string().replacen("\"tid\":", "\"tid\":\"E0\",\"tid\":", 1);
    assert_eq!(issue_of(&line), (IssueKind::InvalidJson, "record".to_owned()));
}

#[test]
fn escaped_strings_are_read_exactly() {
    let mut value = trade();
    set(&mut value, "/orders/0/title", json!("\"限量\" 蛋糕\t(6寸)"));
    let line = value.to_string().replace("限量", "\\u9650\\u91cf");
    let order = processor().process_line(&line).unwrap();
    assert_eq!(order.items[0].title, "\"限量\" 蛋糕\t(6寸)");
    assert_eq!(order.items[0].category, "食品饮料");
}

// ---------------------------------------------------------------------------------------------------
// Province resolution.

/// The (region, province, code) of `trade()` with this province name and `address_extra`.
fn resolve(name: Option<Value>, extra: Option<Value>) -> (String, Option<String>, Option<String>) {
    let mut value = trade();
    let address = value["address_info"].as_object_mut().unwrap();
    address.remove("delivery_province");
    address.remove("address_extra");
    if let Some(name) = name {
        address.insert("delivery_province".to_owned(), name);
    }
    if let Some(extra) = extra {
        address.insert("address_extra".to_owned(), extra);
    }
    let order = order(&value);
    (order.region, order.province, order.province_code)
}

fn resolved(region: &str, province: &str, code: &str) -> (String, Option<String>, Option<String>) {
    (region.to_owned(), Some(province.to_owned()), Some(code.to_owned()))
}

fn unresolved() -> (String, Option<String>, Option<String>) {
    ("未知".to_owned(), None, None)
}

fn extra(code: &str) -> Option<Value> {
    Some(json!(format!("{{\"areaCode\":\"{code}\",\"lon\":113.93,\"lat\":22.53}}")))
}

#[test]
fn full_and_short_province_names_resolve() {
    assert_eq!(resolve(Some(json!("四川省")), None), resolved("西南", "四川省", "51"));
    assert_eq!(resolve(Some(json!("四川")), None), resolved("西南", "四川省", "51"));
    assert_eq!(resolve(Some(json!("内蒙古")), None), resolved("华北", "内蒙古自治区", "15"));
    assert_eq!(resolve(Some(json!("广西")), None), resolved("华南", "广西壮族自治区", "45"));
    assert_eq!(resolve(Some(json!("黑龙江省")), None), resolved("东北", "黑龙江省", "23"));
    assert_eq!(resolve(Some(json!(" 新疆 ")), None), resolved("西北", "新疆维吾尔自治区", "65"));
}

#[test]
fn the_area_code_resolves_when_the_name_does_not() {
    assert_eq!(resolve(Some(json!("")), extra("440305")), resolved("华南", "广东省", "44"));
    assert_eq!(resolve(None, extra("330106")), resolved("华东", "浙江省", "33"));
    assert_eq!(resolve(Some(json!("火星")), extra("420106")), resolved("华中", "湖北省", "42"));
    assert_eq!(resolve(Some(json!(51)), extra("210102")), resolved("东北", "辽宁省", "21"));
    assert_eq!(
        resolve(Some(json!("")), Some(json!("{\"areaCode\":610113}"))),
        resolved("西北", "陕西省", "61")
    );
}

#[test]
fn the_name_wins_when_name_and_code_disagree() {
    assert_eq!(resolve(Some(json!("北京")), extra("440305")), resolved("华北", "北京市", "11"));
    assert_eq!(resolve(Some(json!("上海市")), extra("990000")), resolved("华东", "上海市", "31"));
}

#[test]
fn an_unresolved_province_is_valid_with_region_unknown_and_counted() {
    let cases = [
        resolve(None, None),
        resolve(Some(json!("")), None),
        resolve(Some(json!("海外")), Some(json!("not json"))),
        resolve(Some(json!("")), extra("990101")),
        resolve(Some(json!("")), extra("44030")),
        resolve(Some(json!("")), extra("4403051")),
        resolve(Some(json!("")), Some(json!("{\"lon\":1}"))),
        resolve(Some(json!("")), Some(json!("[\"440305\"]"))),
        resolve(Some(json!("")), Some(json!({"areaCode": "440305"}))),
    ];
    for case in cases {
        assert_eq!(case, unresolved());
    }
    let mut value = trade();
    remove(&mut value, "/address_info");
    let mut summary = YouzanSummary::default();
    summary.add(&order(&value));
    summary.add(&order(&trade()));
    assert_eq!((summary.valid, summary.unresolved_province), (2, 1));
    assert_eq!(summary.regions["未知"].gmv.to_string(), "281.70");
}

#[test]
fn hong_kong_macau_and_taiwan_resolve_per_the_table() {
    assert_eq!(resolve(Some(json!("香港")), None), resolved("华南", "香港特别行政区", "81"));
    assert_eq!(resolve(Some(json!("澳门特别行政区")), None), resolved("华南", "澳门特别行政区", "82"));
    assert_eq!(resolve(Some(json!("台湾")), None), resolved("华东", "台湾省", "71"));
    assert_eq!(resolve(Some(json!("")), extra("810001")), resolved("华南", "香港特别行政区", "81"));
    assert_eq!(resolve(None, extra("710101")), resolved("华东", "台湾省", "71"));
}

// ---------------------------------------------------------------------------------------------------
// Categories.

fn categories_of(items: &[(&str, &str, &str)]) -> (Vec<String>, String) {
    let order = order(&trade_with_items(items));
    (order.items.into_iter().map(|item| item.category).collect(), order.main_category)
}

#[test]
fn the_earlier_rule_wins_when_a_title_matches_two_categories() {
    // 儿童 (母婴用品, rule 2) and 绘本 (图书文具, rule 8).
    assert_eq!(categories_of(&[("儿童绘本 恐龙系列", "", "30.00")]).0, ["母婴用品"]);
    // 拖鞋 (家居日用, rule 5) contains 鞋 (服饰鞋包, rule 6).
    assert_eq!(categories_of(&[("防滑浴室拖鞋", "", "30.00")]).0, ["家居日用"]);
    // 笔记本电脑 (数码家电, rule 3) contains 笔记本 (图书文具, rule 8).
    assert_eq!(categories_of(&[("轻薄笔记本电脑", "", "30.00")]).0, ["数码家电"]);
}

#[test]
fn the_title_decides_before_the_sku_text() {
    // The SKU names an earlier rule's keyword (宠物), but the title matches: the title decides.
    assert_eq!(categories_of(&[("纯牛奶", "适用:宠物", "1.00")]).0, ["食品饮料"]);
    // The title matches nothing: the SKU text decides.
    assert_eq!(categories_of(&[("店长推荐", "颜色分类:黑色;款式:连衣裙", "1.00")]).0, ["服饰鞋包"]);
    // Neither matches: the fallback.
    assert_eq!(categories_of(&[("神秘盲盒", "规格:大号", "1.00")]).0, ["其他"]);
    // Case-sensitive: t恤 is not T恤.
    assert_eq!(categories_of(&[("纯棉t恤", "", "1.00")]).0, ["其他"]);
}

#[test]
fn the_main_category_has_the_largest_payment_sum() {
    // 食品饮料 has one line of 50.00; 数码家电 has two lines of 30.00 each: 60.00 wins.
    let items = [("纯牛奶", "", "50.00"), ("蓝牙耳机", "", "30.00"), ("充电器", "", "30.00")];
    assert_eq!(categories_of(&items).1, "数码家电");
    // Sums are of payments, not of quantities or line counts.
    let items = [("纯牛奶", "", "50.01"), ("蓝牙耳机", "", "25.00"), ("充电器", "", "25.00")];
    assert_eq!(categories_of(&items).1, "食品饮料");
}

#[test]
fn main_category_ties_go_to_the_earlier_rule_and_the_fallback_ranks_last() {
    // 食品饮料 (rule 7) and 宠物用品 (rule 1) tie: the earlier rule, whatever the line order.
    assert_eq!(categories_of(&[("纯牛奶", "", "20.00"), ("猫粮", "", "20.00")]).1, "宠物用品");
    // The fallback ties with 图书文具 (the last rule): the rule wins.
    assert_eq!(categories_of(&[("神秘盲盒", "", "20.00"), ("钢笔", "", "20.00")]).1, "图书文具");
    // Every line a free gift: all tie at zero.
    assert_eq!(categories_of(&[("神秘盲盒", "", "0.00"), ("台历", "", "0.00")]).1, "图书文具");
    // The fallback wins when it is strictly the largest.
    assert_eq!(categories_of(&[("神秘盲盒", "", "20.01"), ("钢笔", "", "20.00")]).1, "其他");
    assert_eq!(categories_of(&[("神秘盲盒", "", "1.00")]).1, "其他");
}

#[test]
fn a_users_rules_replace_the_defaults() {
    let categories = Categories::from_json(
        r#"{"fallback": "未分类", "match_fields": ["title"], "rules": [{"category": "烘焙", "keywords": ["蛋糕", "面包"]}]}"#,
    )
    .unwrap();
    let processor = YouzanProcessor::new(Provinces::defaults(), categories);
    let order = processor
        .process_line(&trade_with_items(&[("奶油蛋糕", "", "1.00"), ("纯牛奶", "", "9.00")]).to_string())
        .unwrap();
    let categories: Vec<&str> = order.items.iter().map(|item| item.category.as_str()).collect();
    assert_eq!(categories, ["烘焙", "未分类"]);
    assert_eq!(order.main_category, "未分类");
}

// ---------------------------------------------------------------------------------------------------
// Totals and the paid flag.

#[test]
fn item_count_and_gmv_are_exact() {
    let mut value = trade();
    value["orders"] = json!([
        {"title": "纯牛奶", "num": 3, "payment": "0.10"},
        {"title": "纯牛奶", "num": 1, "payment": "0.20", "is_present": true},
    ]);
    set(&mut value, "/pay_info/payment", json!("0.30"));
    let order = order(&value);
    assert_eq!((order.item_count, order.gmv.to_string()), (4, "0.30".to_owned()));
    assert!(order.items[1].is_present);
    let mut summary = YouzanSummary::default();
    summary.add(&order);
    // 0.1 + 0.2 in floating point is 0.30000000000000004; here it is 0.30.
    assert_eq!(summary.categories["食品饮料"].gmv.to_string(), "0.30");
    assert_eq!(summary.categories["食品饮料"].items, 4);
}

#[test]
fn paid_needs_a_pay_time_and_a_status_other_than_waiting_or_closed() {
    let paid = |status: &str, pay_time: Option<&str>| {
        let mut value = trade();
        set(&mut value, "/order_info/status", json!(status));
        match pay_time {
            Some(time) => set(&mut value, "/order_info/pay_time", json!(time)),
            None => remove(&mut value, "/order_info/pay_time"),
        }
        order(&value).paid
    };
    assert!(paid("TRADE_SUCCESS", Some("2024-11-04 14:38:02")));
    assert!(paid("TRADE_PAID", Some("2024-11-04 14:38:02")));
    assert!(paid("WAIT_SELLER_SEND_GOODS", Some("2024-11-04 14:38:02")));
    assert!(!paid("TRADE_SUCCESS", Some("")));
    assert!(!paid("TRADE_SUCCESS", None));
    assert!(!paid("WAIT_BUYER_PAY", Some("2024-11-04 14:38:02")));
    assert!(!paid("TRADE_CLOSED", Some("2024-11-04 14:38:02")));
}

// ---------------------------------------------------------------------------------------------------
// The summary.

#[test]
fn the_summary_counts_regions_and_categories_as_the_format_says() {
    let mut summary = YouzanSummary::default();
    // Main category 数码家电 (60.00 > 50.00); the region's GMV is pay_info.payment.
    let mut first =
        trade_with_items(&[("纯牛奶", "", "50.00"), ("蓝牙耳机", "", "30.00"), ("充电器", "", "30.00")]);
    set(&mut first, "/pay_info/payment", json!("118.00"));
    summary.add(&order(&first));
    let mut second = trade_with_items(&[("纯牛奶", "", "12.50")]);
    set(&mut second, "/pay_info/payment", json!("12.50"));
    set(&mut second, "/address_info/delivery_province", json!("广东"));
    summary.add(&order(&second));
    summary.add_invalid();
    let expected = json!({
        "valid": 2, "invalid": 1, "unresolved_province": 0, "gmv": "130.50",
        "regions": {
            "华南": {"orders": 1, "items": 1, "gmv": "12.50"},
            "西南": {"orders": 1, "items": 3, "gmv": "118.00"},
        },
        "categories": {
            "数码家电": {"orders": 1, "items": 2, "gmv": "60.00"},
            "食品饮料": {"orders": 1, "items": 2, "gmv": "62.50"},
        },
    });
    assert_eq!(serde_json::to_value(&summary).unwrap(), expected);
    // A checkpointed summary reads back equal.
    let text = serde_json::to_string(&summary).unwrap();
    assert_eq!(serde_json::from_str::<YouzanSummary>(&text).unwrap(), summary);
}

#[test]
fn an_enriched_line_is_written_as_its_order_and_tallied_like_it() {
    let mut value =
        trade_with_items(&[("纯牛奶", "", "50.00"), ("蓝牙耳机", "", "30.00"), ("神秘盲盒", "", "1.00")]);
    remove(&mut value, "/address_info");
    let order = order(&value);
    let line = EnrichedLine::new(order.clone()).unwrap();
    assert_eq!(serde_json::to_string(&line).unwrap(), serde_json::to_string(&order).unwrap());
    assert_eq!(line.json(), serde_json::to_string(&order).unwrap());
    let mut by_order = YouzanSummary::default();
    by_order.add(&order);
    let mut by_line = YouzanSummary::default();
    crate::records::Summary::add(&mut by_line, &line);
    assert_eq!(by_line, by_order);
    assert_eq!(by_line.unresolved_province, 1);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arbitrary_order() -> impl Strategy<Value = Value> {
        let item = (0usize..6, 1u64..5, 0i64..100_000).prop_map(|(title, num, fen)| {
            let titles = ["纯牛奶", "蓝牙耳机", "猫粮", "神秘盲盒", "钢笔", "口红"];
            json!({"title": titles[title], "num": num, "payment": Money::from_fen(fen).to_string()})
        });
        let provinces = ["四川", "广东省", "", "香港", "火星"];
        (proptest::collection::vec(item, 1..5), 0usize..5, 0i64..1_000_000).prop_map(
            move |(items, province, fen)| {
                let mut value = trade();
                value["orders"] = Value::Array(items);
                set(&mut value, "/address_info/delivery_province", json!(provinces[province]));
                remove(&mut value, "/address_info/address_extra");
                set(&mut value, "/pay_info/payment", json!(Money::from_fen(fen).to_string()));
                value
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn summaries_of_parts_merge_into_the_summary_of_the_whole(
            orders in proptest::collection::vec(arbitrary_order(), 0..12),
            invalid in 0u64..4,
            split in 0usize..12,
        ) {
            let orders: Vec<EnrichedOrder> = orders.iter().map(order).collect();
            let split = split.min(orders.len());
            let mut whole = YouzanSummary::default();
            let mut first = YouzanSummary::default();
            let mut second = YouzanSummary::default();
            for (idx, order) in orders.iter().enumerate() {
                whole.add(order);
                if idx < split { first.add(order) } else { second.add(order) }
            }
            for _ in 0..invalid {
                whole.add_invalid();
                second.add_invalid();
            }
            first.merge(&second);
            prop_assert_eq!(&first, &whole);
            // Region GMV adds up to the total; so do region orders.
            let region_gmv: Money = whole.regions.values().map(|totals| totals.gmv).sum();
            prop_assert_eq!(region_gmv, whole.gmv);
            prop_assert_eq!(whole.regions.values().map(|totals| totals.orders).sum::<u64>(), whole.valid);
            prop_assert_eq!(whole.categories.values().map(|totals| totals.orders).sum::<u64>(), whole.valid);
        }

        #[test]
        fn arbitrary_lines_never_panic(line in ".{0,200}") {
            let _ = processor().process_line(&line);
        }

        #[test]
        fn mutated_trades_never_panic(cut in 0usize..2000, byte in any::<u8>()) {
            let text = trade().to_string();
            let mut bytes = text.into_bytes();
            let position = cut % bytes.len();
            bytes[position] = byte;
            let line = String::from_utf8_lossy(&bytes);
            match processor().process_line(&line) {
                Ok(order) => prop_assert!(!order.items.is_empty()),
                Err(issue) => prop_assert!(issue.message.starts_with(&issue.field)),
            }
        }
    }
}
