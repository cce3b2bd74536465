//! A deterministic generator of YouZan trade files: realistic valid trades and a chosen share of
//! malformed records of every kind the validator rejects, with the exact aggregates a correct run
//! must report.
//!
//! The generator knows what it wrote: each valid trade's region (from the province variant it chose)
//! and each line item's category (from the title or SKU list it drew from), so its
//! [`GeneratedStats::expected`] summary is computed from its own choices, not by running the
//! processor. Tests compare the processor's summary against it.
//!
//! ```
//! use batch_tasks::youzan::generator::{GeneratorConfig, generate};
//! use batch_tasks::youzan::{YouzanSummary, YouzanProcessor};
//!
//! let mut file = Vec::new();
//! let stats = generate(&GeneratorConfig { count: 300, seed: 7, invalid_ratio: 0.1 }, &mut file).unwrap();
//! let processor = YouzanProcessor::with_defaults();
//! let mut summary = YouzanSummary::default();
//! for line in String::from_utf8(file).unwrap().lines() {
//!     match processor.process_line(line) {
//!         Ok(order) => summary.add(&order),
//!         Err(_) => summary.add_invalid(),
//!     }
//! }
//! assert_eq!(stats.lines, 300);
//! assert_eq!(summary, stats.expected);
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Value, json};

use crate::youzan::error::IssueKind;
use crate::youzan::money::Money;
use crate::youzan::provinces::UNKNOWN_REGION;
use crate::youzan::summary::YouzanSummary;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorConfig {
    /// How many lines (records) to write, valid and invalid.
    pub count: u64,
    /// The seed: the same config writes the same bytes.
    pub seed: u64,
    /// The share of malformed records, in `[0, 1]` (clamped). They are spread evenly; the kinds of
    /// malformation take turns, so every kind appears once `count × invalid_ratio` reaches
    /// [`Malformation::ALL`]`.len()`.
    pub invalid_ratio: f64,
}

/// A way the generator breaks a record; each is rejected by the validator with a known
/// [`IssueKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Malformation {
    /// A record cut short: not valid JSON.
    BadJson,
    /// A JSON array, string, number or `null` instead of an object.
    NotAnObject,
    /// No `order_info`.
    MissingOrderInfo,
    /// No `pay_info`.
    MissingPayInfo,
    /// No `orders`.
    MissingOrders,
    /// `orders` is `[]`.
    EmptyOrders,
    /// `tid` is `""`.
    EmptyTid,
    /// `status` is not one of the listed values.
    BadStatus,
    /// `status` is a listed value in lower case.
    LowercaseStatus,
    /// `created` is not `YYYY-MM-DD HH:MM:SS`.
    BadDate,
    /// `created` is 30 February.
    February30,
    /// A money field is a JSON number.
    MoneyAsNumber,
    /// A money field is negative.
    NegativeMoney,
    /// A money field has three fraction digits.
    ThreeFractionDigits,
    /// A line item's title is empty.
    EmptyTitle,
    /// A line item's `num` is 0.
    ZeroNum,
    /// An empty or whitespace-only line.
    BlankLine,
}

impl Malformation {
    /// Every malformation, in the order the generator cycles through them.
    pub const ALL: [Malformation; 17] = [
        Malformation::BadJson,
        Malformation::NotAnObject,
        Malformation::MissingOrderInfo,
        Malformation::MissingPayInfo,
        Malformation::MissingOrders,
        Malformation::EmptyOrders,
        Malformation::EmptyTid,
        Malformation::BadStatus,
        Malformation::LowercaseStatus,
        Malformation::BadDate,
        Malformation::February30,
        Malformation::MoneyAsNumber,
        Malformation::NegativeMoney,
        Malformation::ThreeFractionDigits,
        Malformation::EmptyTitle,
        Malformation::ZeroNum,
        Malformation::BlankLine,
    ];

    /// The issue kind the validator reports for this malformation.
    pub fn issue_kind(self) -> IssueKind {
        match self {
            Malformation::BadJson => IssueKind::InvalidJson,
            Malformation::NotAnObject => IssueKind::NotAnObject,
            Malformation::MissingOrderInfo | Malformation::MissingPayInfo | Malformation::MissingOrders => {
                IssueKind::Missing
            }
            Malformation::EmptyOrders => IssueKind::EmptyOrders,
            Malformation::EmptyTid | Malformation::EmptyTitle => IssueKind::EmptyText,
            Malformation::BadStatus | Malformation::LowercaseStatus => IssueKind::UnknownStatus,
            Malformation::BadDate | Malformation::February30 => IssueKind::InvalidDateTime,
            Malformation::MoneyAsNumber => IssueKind::WrongType,
            Malformation::NegativeMoney => IssueKind::NegativeMoney,
            Malformation::ThreeFractionDigits => IssueKind::TooManyFractionDigits,
            Malformation::ZeroNum => IssueKind::InvalidQuantity,
            Malformation::BlankLine => IssueKind::BlankLine,
        }
    }
}

/// What a generated file holds, and what a correct run over it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedStats {
    /// Lines written (`count`).
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The summary a correct run reports: valid, invalid and unresolved counts, GMV per region and
    /// per category (exact), orders per main category.
    pub expected: YouzanSummary,
    /// How many records of each malformation were written.
    pub malformations: BTreeMap<Malformation, u64>,
    /// How many invalid records of each issue kind a correct run reports.
    pub issue_kinds: BTreeMap<IssueKind, u64>,
    /// How many valid trades were written wrapped as `{"full_order_info": {...}}`.
    pub wrapped: u64,
}

/// Writes `config.count` lines of YouZan trades to `writer` and returns what they hold.
pub fn generate<W: Write>(config: &GeneratorConfig, writer: W) -> io::Result<GeneratedStats> {
    let mut generator = Generator::new(config.seed);
    let mut writer = CountingWriter { inner: io::BufWriter::with_capacity(256 * 1024, writer), bytes: 0 };
    let ratio = if config.invalid_ratio.is_nan() { 0.0 } else { config.invalid_ratio.clamp(0.0, 1.0) };
    let mut stats = GeneratedStats {
        lines: 0,
        bytes: 0,
        expected: YouzanSummary::default(),
        malformations: BTreeMap::new(),
        issue_kinds: BTreeMap::new(),
        wrapped: 0,
    };
    let mut line = Vec::with_capacity(4096);
    for idx in 0..config.count {
        // Record `idx` is invalid when the running count of invalid records steps up at it: exactly
        // round-down(count × ratio) invalid records, evenly spread.
        let invalid_before = (idx as f64 * ratio).floor();
        let invalid_after = ((idx + 1) as f64 * ratio).floor();
        line.clear();
        let trade = generator.trade(idx);
        if invalid_after > invalid_before {
            let malformation = Malformation::ALL[(stats.expected.invalid as usize) % Malformation::ALL.len()];
            generator.write_malformed(trade, malformation, &mut line)?;
            stats.expected.add_invalid();
            *stats.malformations.entry(malformation).or_default() += 1;
            *stats.issue_kinds.entry(malformation.issue_kind()).or_default() += 1;
        } else {
            let wrap = generator.rng.u8(..10) == 0;
            trade.count(&mut stats.expected);
            if wrap {
                stats.wrapped += 1;
                serde_json::to_writer(&mut line, &json!({ "full_order_info": trade.json }))?;
            } else {
                serde_json::to_writer(&mut line, &trade.json)?;
            }
        }
        line.push(b'\n');
        writer.write_all(&line)?;
        stats.lines += 1;
    }
    writer.inner.flush()?;
    stats.bytes = writer.bytes;
    Ok(stats)
}

struct CountingWriter<W: Write> {
    inner: io::BufWriter<W>,
    bytes: u64,
}

impl<W: Write> CountingWriter<W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

// ---------------------------------------------------------------------------------------------------
// The data the generator draws from.

/// Provinces as the generator knows them: code, full name, short name, region, a city, a district
/// and a six-digit area code of that district.
const PLACES: [(&str, &str, &str, &str, &str, &str, &str); 34] = [
    ("11", "北京市", "北京", "华北", "北京市", "朝阳区", "110105"),
    ("12", "天津市", "天津", "华北", "天津市", "南开区", "120104"),
    ("13", "河北省", "河北", "华北", "石家庄市", "长安区", "130102"),
    ("14", "山西省", "山西", "华北", "太原市", "小店区", "140105"),
    ("15", "内蒙古自治区", "内蒙古", "华北", "呼和浩特市", "新城区", "150102"),
    ("21", "辽宁省", "辽宁", "东北", "沈阳市", "和平区", "210102"),
    ("22", "吉林省", "吉林", "东北", "长春市", "朝阳区", "220104"),
    ("23", "黑龙江省", "黑龙江", "东北", "哈尔滨市", "南岗区", "230103"),
    ("31", "上海市", "上海", "华东", "上海市", "浦东新区", "310115"),
    ("32", "江苏省", "江苏", "华东", "南京市", "鼓楼区", "320106"),
    ("33", "浙江省", "浙江", "华东", "杭州市", "西湖区", "330106"),
    ("34", "安徽省", "安徽", "华东", "合肥市", "蜀山区", "340104"),
    ("35", "福建省", "福建", "华东", "福州市", "鼓楼区", "350102"),
    ("36", "江西省", "江西", "华东", "南昌市", "东湖区", "360102"),
    ("37", "山东省", "山东", "华东", "济南市", "历下区", "370102"),
    ("41", "河南省", "河南", "华中", "郑州市", "金水区", "410105"),
    ("42", "湖北省", "湖北", "华中", "武汉市", "武昌区", "420106"),
    ("43", "湖南省", "湖南", "华中", "长沙市", "岳麓区", "430104"),
    ("44", "广东省", "广东", "华南", "深圳市", "南山区", "440305"),
    ("45", "广西壮族自治区", "广西", "华南", "南宁市", "青秀区", "450103"),
    ("46", "海南省", "海南", "华南", "海口市", "美兰区", "460108"),
    ("50", "重庆市", "重庆", "西南", "重庆市", "渝中区", "500103"),
    ("51", "四川省", "四川", "西南", "成都市", "武侯区", "510107"),
    ("52", "贵州省", "贵州", "西南", "贵阳市", "南明区", "520102"),
    ("53", "云南省", "云南", "西南", "昆明市", "五华区", "530102"),
    ("54", "西藏自治区", "西藏", "西南", "拉萨市", "城关区", "540102"),
    ("61", "陕西省", "陕西", "西北", "西安市", "雁塔区", "610113"),
    ("62", "甘肃省", "甘肃", "西北", "兰州市", "城关区", "620102"),
    ("63", "青海省", "青海", "西北", "西宁市", "城中区", "630103"),
    ("64", "宁夏回族自治区", "宁夏", "西北", "银川市", "兴庆区", "640104"),
    ("65", "新疆维吾尔自治区", "新疆", "西北", "乌鲁木齐市", "天山区", "650102"),
    ("71", "台湾省", "台湾", "华东", "台北市", "中正区", "710101"),
    ("81", "香港特别行政区", "香港", "华南", "香港", "中西区", "810001"),
    ("82", "澳门特别行政区", "澳门", "华南", "澳门", "花地玛堂区", "820001"),
];

/// Province names that are not in the table.
const UNKNOWN_NAMES: [&str; 4] = ["海外", "火星", "四川省成都市", "广东深圳"];

/// The categories in rule order, the fallback last, with titles whose first matching rule is the
/// category's own (the fallback's match no rule), and SKU texts holding a keyword of the category.
const CATEGORIES: [(&str, &[&str], &[&str]); 9] = [
    (
        "宠物用品",
        &[
            "皇家猫粮 成猫全价粮 2kg",
            "冻干狗粮 小型犬 1.5kg",
            "豆腐猫砂 除臭 6L",
            "宠物指甲剪",
            "逗猫棒 羽毛铃铛",
            "牵引狗绳 反光款",
            "瓦楞纸猫抓板",
        ],
        &["规格:宠物通用款", "口味:鸡肉味猫粮"],
    ),
    (
        "母婴用品",
        &[
            "婴儿配方奶粉 1段 800g",
            "拉拉裤 纸尿裤 L码 60片",
            "宝宝辅食米粉",
            "宽口径玻璃奶瓶 240ml",
            "儿童绘本 恐龙系列",
            "孕妇防辐射服",
            "新生儿童装 纯棉连体衣",
        ],
        &["适用:婴儿;规格:标准装", "尺码:儿童130cm"],
    ),
    (
        "数码家电",
        &[
            "无线蓝牙耳机 降噪版",
            "65W氮化镓充电器",
            "Type-C 数据线 1m",
            "轻薄笔记本电脑 14英寸",
            "智能音箱",
            "机械键盘 青轴",
            "无线鼠标 静音",
            "55英寸4K电视",
            "变频空调 1.5匹",
            "负离子吹风机",
            "智能电饭煲 4L",
            "千兆路由器",
        ],
        &["型号:蓝牙耳机;颜色:白色", "套餐:手机+充电器"],
    ),
    (
        "美妆个护",
        &[
            "哑光口红 #999",
            "补水面膜 10片装",
            "玻尿酸精华液 30ml",
            "保湿乳液",
            "氨基酸洗面奶",
            "淡香水 50ml",
            "控油洗发水 500ml",
            "薄荷牙膏 120g",
            "清爽防晒霜 SPF50",
            "四色眼影盘",
        ],
        &["色号:口红#02", "规格:面膜5片"],
    ),
    (
        "家居日用",
        &[
            "纯棉毛巾 3条装",
            "全棉床单 1.8m",
            "羽绒被套",
            "记忆棉枕头",
            "桌面收纳盒",
            "陶瓷餐具套装",
            "不粘炒锅 32cm",
            "316不锈钢保温杯 500ml",
            "防滑浴室拖鞋",
            "抽取式纸巾 24包",
            "加厚垃圾袋",
            "植绒衣架 20个",
        ],
        &["规格:收纳三件套", "颜色:灰色;款式:毛巾"],
    ),
    (
        "服饰鞋包",
        &[
            "法式碎花连衣裙",
            "纯棉短袖T恤",
            "商务长袖衬衫",
            "连帽卫衣 加绒",
            "直筒牛仔裤",
            "轻量跑步运动鞋",
            "真皮马丁靴",
            "通勤双肩包",
            "短款钱包",
            "渔夫帽",
            "船袜 5双装",
            "轻薄羽绒服",
        ],
        &["颜色分类:黑色;款式:连衣裙", "尺码:XL;款式:外套"],
    ),
    (
        "食品饮料",
        &[
            "皇家草莓双层奶油蛋糕 (6寸)",
            "每日坚果 30包",
            "明前龙井茶叶 250g",
            "挂耳咖啡 10片",
            "纯牛奶 250ml*12",
            "黄油曲奇饼干",
            "黑巧克力 85%",
            "五常大米 5kg",
            "53度酱香白酒",
            "干红葡萄红酒",
            "广式月饼礼盒",
            "新鲜水果礼盒",
            "全麦面包",
            "老酸奶",
        ],
        &["口味:原味;规格:零食大礼包", "规格:咖啡豆500g"],
    ),
    (
        "图书文具",
        &[
            "中华上下五千年 图书",
            "硬笔书法钢笔",
            "A5笔记本 3本装",
            "学生文具套装",
            "毕业照片书 定制",
            "家庭相册 6寸",
            "2025年台历",
            "经典绘本 3册",
        ],
        &["版本:精装图书", "套装:钢笔+墨囊"],
    ),
    ("其他", &["神秘盲盒", "定制礼品卡", "运费补差价链接", "鲜花速递 11枝玫瑰", "车载香薰"], &[]),
];

/// Titles that match no rule, for line items categorised by their SKU text.
const PLAIN_TITLES: [&str; 4] = ["夏季新款", "店长推荐", "爆款热卖", "限时特惠款"];

/// SKU texts that match no rule.
const PLAIN_SKUS: [&str; 5] = ["颜色分类:黑色;尺码:XL", "规格:500g", "颜色:白色", "尺寸:6寸", ""];

const SHOPS: [&str; 5] = ["有赞旗舰店", "成都太古里店", "杭州西湖分店", "深圳南山店", "北京三里屯店"];

const STATUSES: [&str; 7] = [
    "WAIT_BUYER_PAY",
    "TRADE_PAID",
    "WAIT_CONFIRM",
    "WAIT_SELLER_SEND_GOODS",
    "WAIT_BUYER_CONFIRM_GOODS",
    "TRADE_SUCCESS",
    "TRADE_CLOSED",
];

const TRADE_TYPES: [i64; 9] = [0, 0, 0, 0, 1, 2, 3, 6, 10];

// ---------------------------------------------------------------------------------------------------
// Generation.

/// One generated valid trade: its JSON (`full_order_info`) and what it contributes to the summary.
struct GeneratedTrade {
    json: Value,
    region: &'static str,
    resolved: bool,
    item_count: u64,
    gmv: Money,
    main_category: &'static str,
    /// (category, num, payment) per line item.
    lines: Vec<(&'static str, u64, Money)>,
}

impl GeneratedTrade {
    fn count(&self, summary: &mut YouzanSummary) {
        summary.valid += 1;
        if !self.resolved {
            summary.unresolved_province += 1;
        }
        summary.gmv += self.gmv;
        let region = summary.regions.entry(self.region.to_owned()).or_default();
        region.orders += 1;
        region.items += self.item_count;
        region.gmv += self.gmv;
        summary.categories.entry(self.main_category.to_owned()).or_default().orders += 1;
        for (category, num, payment) in &self.lines {
            let totals = summary.categories.entry((*category).to_owned()).or_default();
            totals.items += num;
            totals.gmv += *payment;
        }
    }
}

struct Generator {
    rng: fastrand::Rng,
    epoch: NaiveDateTime,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let epoch = NaiveDate::from_ymd_opt(2023, 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        Generator { rng: fastrand::Rng::with_seed(seed), epoch }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(..items.len())]
    }

    fn money(fen: i64) -> String {
        Money::from_fen(fen).to_string()
    }

    fn trade(&mut self, idx: u64) -> GeneratedTrade {
        let created = self.epoch + Duration::seconds(self.rng.i64(0..2 * 365 * 24 * 3600));
        let status = self.pick(&STATUSES);
        let pay_time = match status {
            "WAIT_BUYER_PAY" => String::new(),
            // A closed trade may have been paid and refunded: paid_time set, but not paid.
            "TRADE_CLOSED" if self.rng.bool() => String::new(),
            _ => (created + Duration::seconds(self.rng.i64(5..900))).format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        let is_payed = !pay_time.is_empty();
        let tid = format!("E{}{:08}", created.format("%Y%m%d%H%M%S"), idx);
        let (address, region, resolved) = self.address();

        let n_lines = 1 + self.rng.usize(..5);
        let mut orders = Vec::with_capacity(n_lines);
        let mut lines = Vec::with_capacity(n_lines);
        let mut line_total_fee = 0i64;
        let mut line_payment = 0i64;
        let mut item_count = 0u64;
        let mut first_payment = 0i64;
        for line_idx in 0..n_lines {
            let gift = line_idx > 0 && self.rng.u8(..100) < 8;
            let category_idx = self.rng.usize(..CATEGORIES.len());
            let (category, titles, skus) = CATEGORIES[category_idx];
            let (title, sku) = if !skus.is_empty() && self.rng.u8(..10) == 0 {
                (self.pick(&PLAIN_TITLES), self.pick(skus))
            } else {
                (self.pick(titles), self.pick(&PLAIN_SKUS))
            };
            let num = 1 + self.rng.u64(..3);
            let price = if gift { 0 } else { self.rng.i64(100..50_000) };
            let total_fee = price * num as i64;
            let mut payment = if gift { 0 } else { total_fee - self.rng.i64(0..=total_fee / 10) };
            // Now and then the same payment as the first line, in another category: a main-category tie.
            if line_idx == 1 && !gift && first_payment <= total_fee && self.rng.u8(..100) < 15 {
                payment = first_payment;
            }
            if line_idx == 0 {
                first_payment = payment;
            }
            line_total_fee += total_fee;
            line_payment += payment;
            item_count += num;
            lines.push((category, category_idx, num, Money::from_fen(payment)));
            orders.push(json!({
                "oid": format!("{}{:02}", 3_000_000_000u64 + idx * 7, line_idx),
                "item_id": 400_000 + self.rng.u64(..100_000),
                "sku_id": if sku.is_empty() { 0 } else { 10_000_000 + self.rng.u64(..1_000_000) },
                "outer_item_id": format!("SPU{:06}", self.rng.u32(..1_000_000)),
                "title": title,
                "sku_properties_name": sku,
                "num": num,
                "price": Self::money(price),
                "total_fee": Self::money(total_fee),
                "payment": Self::money(payment),
                "discount_price": Self::money(price - price / 20),
                "is_present": gift,
                "item_type": 0,
                "pic_path": "https://img01.yzcdn.cn/upload_files/2024/11/04/Fp8mZ.jpg",
                "buyer_messages": "",
            }));
        }
        let post_fee = self.pick(&[0i64, 0, 500, 800, 1000, 1200]);
        let gmv = line_payment + post_fee;
        let main_category = main_category(&lines);
        let mut order_info = json!({
            "tid": tid,
            "status": status,
            "status_str": "",
            "type": self.pick(&TRADE_TYPES),
            "created": created.format("%Y-%m-%d %H:%M:%S").to_string(),
            "update_time": (created + Duration::seconds(3600)).format("%Y-%m-%d %H:%M:%S").to_string(),
            "pay_time": pay_time,
            "expired_time": (created + Duration::seconds(1800)).format("%Y-%m-%d %H:%M:%S").to_string(),
            "close_type": 0,
            "refund_state": 0,
            "node_kdt_id": 46_000_000 + self.rng.u64(..1000),
            "order_tags": { "is_payed": is_payed, "is_secured_transactions": true },
            "order_extra": { "is_from_cart": "true", "buyer_name": "" },
        });
        if self.rng.u8(..10) != 0
            && let Some(info) = order_info.as_object_mut()
        {
            info.insert("shop_name".to_owned(), json!(self.pick(&SHOPS)));
        }
        let remark = if self.rng.u8(..20) == 0 { "请帮忙写贺卡 \"生日快乐\"\n谢谢" } else { "" };
        let json = json!({
            "order_info": order_info,
            "address_info": address,
            "buyer_info": {
                "yz_open_id": format!("yz{:012x}", self.rng.u64(..1 << 48)),
                "buyer_phone": format!("1{}****{:04}", self.rng.u8(30..99), self.rng.u16(..10_000)),
                "fans_type": 1,
                "fans_nickname": "有赞用户",
            },
            "pay_info": {
                "total_fee": Self::money(line_total_fee + post_fee),
                "payment": Self::money(gmv),
                "post_fee": Self::money(post_fee),
                "outer_transactions": [format!("4200001{:015}", self.rng.u64(..1_000_000_000_000_000))],
                "transaction": [format!("{:020}", self.rng.u64(..))],
                "phase_payments": [],
            },
            "remark_info": { "buyer_message": remark, "star": 0, "trade_memo": "" },
            "source_info": { "is_offline_order": false, "source": { "platform": "wx", "wx_entrance": "direct_buy" } },
            "orders": orders,
        });
        GeneratedTrade {
            json,
            region,
            resolved,
            item_count,
            gmv: Money::from_fen(gmv),
            main_category,
            lines: lines.into_iter().map(|(category, _, num, payment)| (category, num, payment)).collect(),
        }
    }

    /// An `address_info` object, its expected region and whether the province resolves.
    fn address(&mut self) -> (Value, &'static str, bool) {
        let place = self.pick(&PLACES);
        let (_, full, short, region, city, district, area_code) = place;
        let extra = |code: &str| format!("{{\"areaCode\":\"{code}\",\"lon\":104.06,\"lat\":30.64}}");
        let roll = self.rng.u8(..100);
        let (province, address_extra, region, resolved): (Option<&str>, Option<String>, &str, bool) =
            match roll {
                0..40 => (Some(full), Some(extra(area_code)), region, true),
                40..60 => (Some(short), Some(extra(area_code)), region, true),
                60..68 => (Some(""), Some(extra(area_code)), region, true),
                68..73 => (None, Some(extra(area_code)), region, true),
                73..76 => (Some(""), Some(format!("{{\"areaCode\":{area_code}}}")), region, true),
                76..81 => {
                    // The name and the code disagree: the name wins.
                    let other = self.pick(&PLACES);
                    (Some(full), Some(extra(other.6)), region, true)
                }
                81..85 => (Some(self.pick(&UNKNOWN_NAMES)), Some(extra(area_code)), region, true),
                85..88 => (Some(""), None, UNKNOWN_REGION, false),
                88..90 => (
                    Some(self.pick(&UNKNOWN_NAMES)),
                    Some("{areaCode:510107".to_owned()),
                    UNKNOWN_REGION,
                    false,
                ),
                90..92 => (Some(""), Some(extra("990101")), UNKNOWN_REGION, false),
                92..93 => (None, Some(extra("51010")), UNKNOWN_REGION, false),
                _ => (Some(full), None, region, true),
            };
        let mut address = json!({
            "delivery_city": city,
            "delivery_district": district,
            "delivery_address": "天府大道北段1700号 环球中心W6区",
            "delivery_postal_code": "",
            "receiver_name": "张**",
            "receiver_tel": "138****0000",
        });
        if let Some(object) = address.as_object_mut() {
            if let Some(province) = province {
                object.insert("delivery_province".to_owned(), json!(province));
            }
            if let Some(extra) = address_extra {
                object.insert("address_extra".to_owned(), json!(extra));
            }
        }
        (address, region, resolved)
    }

    /// Writes `trade` broken by `malformation` (no newline).
    fn write_malformed(
        &mut self,
        trade: GeneratedTrade,
        malformation: Malformation,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut json = trade.json;
        let n_lines = trade.lines.len();
        let line_idx = self.rng.usize(..n_lines);
        match malformation {
            Malformation::BadJson => {
                let text = serde_json::to_string(&json)?;
                let cut = text.floor_char_boundary(self.rng.usize(1..text.len()));
                out.extend_from_slice(&text.as_bytes()[..cut]);
                return Ok(());
            }
            Malformation::NotAnObject => {
                let value = match self.rng.u8(..4) {
                    0 => json!([json]),
                    1 => json!(json["order_info"]["tid"]),
                    2 => json!(42),
                    _ => Value::Null,
                };
                serde_json::to_writer(&mut *out, &value)?;
                return Ok(());
            }
            Malformation::BlankLine => {
                out.extend_from_slice(self.pick(&[&b""[..], b"   ", b"\t"]));
                return Ok(());
            }
            Malformation::MissingOrderInfo => remove(&mut json, "order_info"),
            Malformation::MissingPayInfo => remove(&mut json, "pay_info"),
            Malformation::MissingOrders => remove(&mut json, "orders"),
            Malformation::EmptyOrders => json["orders"] = json!([]),
            Malformation::EmptyTid => json["order_info"]["tid"] = json!(""),
            Malformation::BadStatus => {
                json["order_info"]["status"] = json!(self.pick(&["SHIPPED", "PAID", "", "TRADE_SUCCESS "]))
            }
            Malformation::LowercaseStatus => {
                let status = json["order_info"]["status"].as_str().unwrap_or("TRADE_SUCCESS").to_lowercase();
                json["order_info"]["status"] = json!(status);
            }
            Malformation::BadDate => {
                json["order_info"]["created"] = json!(self.pick(&[
                    "2024/11/04 14:37:13",
                    "2024-11-04T14:37:13",
                    "昨天",
                    "2024-11-4 14:37:13"
                ]));
            }
            Malformation::February30 => {
                json["order_info"]["created"] =
                    json!(self.pick(&["2024-02-30 10:15:00", "2023-02-29 08:00:00"]));
            }
            Malformation::MoneyAsNumber => {
                if self.rng.bool() {
                    json["pay_info"]["payment"] = json!(trade.gmv.fen() as f64 / 100.0);
                } else {
                    json["orders"][line_idx]["payment"] = json!(12);
                }
            }
            Malformation::NegativeMoney => {
                if self.rng.bool() {
                    json["pay_info"]["post_fee"] = json!("-5.00");
                } else {
                    json["orders"][line_idx]["price"] = json!("-0.01");
                }
            }
            Malformation::ThreeFractionDigits => {
                if self.rng.bool() {
                    json["pay_info"]["payment"] = json!(format!("{}5", trade.gmv));
                } else {
                    json["orders"][line_idx]["total_fee"] = json!("19.999");
                }
            }
            Malformation::EmptyTitle => json["orders"][line_idx]["title"] = json!(self.pick(&["", "  "])),
            Malformation::ZeroNum => json["orders"][line_idx]["num"] = json!(0),
        }
        if self.rng.u8(..10) == 0 {
            json = json!({ "full_order_info": json });
        }
        serde_json::to_writer(&mut *out, &json)?;
        Ok(())
    }
}

fn remove(json: &mut Value, key: &str) {
    if let Some(object) = json.as_object_mut() {
        object.remove(key);
    }
}

/// The main category of generated lines `(category, rank, num, payment)`: the largest payment sum,
/// ties to the lower rank (the fallback is last).
fn main_category(lines: &[(&'static str, usize, u64, Money)]) -> &'static str {
    let mut sums: BTreeMap<usize, (&'static str, Money)> = BTreeMap::new();
    for (category, rank, _, payment) in lines {
        sums.entry(*rank).or_insert((category, Money::ZERO)).1 += *payment;
    }
    let mut best: Option<(&'static str, Money)> = None;
    for (category, sum) in sums.into_values() {
        if best.is_none_or(|(_, best_sum)| sum > best_sum) {
            best = Some((category, sum));
        }
    }
    best.map_or(CATEGORIES[CATEGORIES.len() - 1].0, |(category, _)| category)
}
