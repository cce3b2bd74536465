//! Product categories: the ordered keyword rules (`categories.json`), compiled into a matcher that
//! finds the first matching rule in one pass over a text.
//!
//! # Semantics (as `categories.json` states them)
//!
//! Matching is a plain, case-sensitive substring test on the text as given. The rules are tried in
//! order against the first of `match_fields` (by default the title): the first rule with a keyword
//! that occurs in it wins. Only when no rule matches that field are the rules tried again, in order,
//! against the next field (by default `sku_properties_name`). No match in any field gives the
//! fallback, which ranks after every rule (e.g. when breaking a main-category tie).
//!
//! # Why one pass
//!
//! Testing each of the ~100 keywords with `str::contains` costs ~100 searches per line item. The
//! compiled matcher instead groups the keywords by their first character and walks the text once:
//! at each character it tries only the keywords starting with it, keeping the lowest rule index
//! that matched. The result is the same as trying rule by rule, keyword by keyword.

use std::path::Path;

use serde::Deserialize;

use crate::youzan::error::YouzanError;

/// The compiled-in default rules, a copy of `data/categories.json`.
const DEFAULT_RULES_JSON: &str = include_str!("../../data/categories.json");

/// A category, as an index into [`Categories::names`]; a lower index ranks earlier (the fallback is
/// the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryId(pub(crate) u16);

impl CategoryId {
    /// The category's rank: its position in [`Categories::names`].
    pub fn rank(self) -> usize {
        usize::from(self.0)
    }
}

/// A line item field the rules can be matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchField {
    /// The product title.
    Title,
    /// The SKU description (`颜色分类:黑色;尺码:XL`).
    SkuPropertiesName,
}

/// The rules file as written (`categories.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    fallback: String,
    match_fields: Vec<MatchField>,
    rules: Vec<RuleFile>,
    /// Prose for people; not read.
    #[serde(default, rename = "semantics")]
    _semantics: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    category: String,
    keywords: Vec<String>,
}

/// The compiled category rules: category names by rank, the fields to match, and the matcher.
///
/// ```
/// use batch_tasks::youzan::Categories;
///
/// let categories = Categories::defaults();
/// let name = |title, sku| categories.name(categories.categorize(title, sku)).to_owned();
/// assert_eq!(name("皇家草莓双层奶油蛋糕 (6寸)", ""), "食品饮料");
/// // The title matches no rule, so the SKU text decides.
/// assert_eq!(name("夏季新款", "颜色分类:黑色;尺码:XL;款式:连衣裙"), "服饰鞋包");
/// // 宠物用品 comes before 食品饮料 in the rules.
/// assert_eq!(name("宠物零食", ""), "宠物用品");
/// assert_eq!(name("神秘盲盒", ""), "其他");
/// ```
#[derive(Debug, Clone)]
pub struct Categories {
    /// Distinct category names by rank: in the order of the rules, the fallback last.
    names: Vec<String>,
    match_fields: Vec<MatchField>,
    /// The category of each rule.
    rule_categories: Vec<CategoryId>,
    /// Every keyword with its rule index, sorted by first character, then rule index.
    keywords: Vec<Keyword>,
    /// For each distinct first character, the range of `keywords` starting with it; sorted.
    groups: Vec<(char, usize, usize)>,
}

#[derive(Debug, Clone)]
struct Keyword {
    text: String,
    rule: usize,
}

impl Categories {
    /// The compiled-in rules (`data/categories.json`): eight categories and the fallback `其他`.
    ///
    /// # Panics
    ///
    /// Never in a released build: the compiled-in rules are checked by this crate's tests.
    pub fn defaults() -> Categories {
        match Categories::from_json(DEFAULT_RULES_JSON) {
            Ok(categories) => categories,
            Err(reason) => panic!("the compiled-in category rules are invalid: {reason}"),
        }
    }

    /// Reads a user's rules from the JSON file at `path` (the shape of `categories.json`).
    pub fn from_file(path: &Path) -> Result<Categories, YouzanError> {
        let text = std::fs::read_to_string(path).map_err(|source| YouzanError::ReadFile {
            param: "rules",
            path: path.to_owned(),
            source,
        })?;
        Categories::from_json(&text)
            .map_err(|reason| YouzanError::InvalidRules { path: Some(path.to_owned()), reason })
    }

    /// Compiles rules from JSON text of the shape of `categories.json`: `fallback` (non-empty),
    /// `match_fields` (non-empty, each of `title` and `sku_properties_name` at most once), `rules`
    /// (each with a non-empty `category` other than the fallback and a non-empty list of non-empty
    /// `keywords`), and an optional `semantics` text. Other keys are refused, to catch misspellings.
    /// Two rules may name the same category; it ranks at its first rule.
    pub fn from_json(text: &str) -> Result<Categories, String> {
        let file: RulesFile = serde_json::from_str(text).map_err(|error| error.to_string())?;
        if file.fallback.is_empty() {
            return Err("fallback is empty".to_owned());
        }
        if file.match_fields.is_empty() {
            return Err("match_fields is empty".to_owned());
        }
        for (idx, field) in file.match_fields.iter().enumerate() {
            if file.match_fields[..idx].contains(field) {
                return Err(format!("match_fields names {field:?} twice"));
            }
        }
        let mut names: Vec<String> = Vec::new();
        let mut rule_categories = Vec::with_capacity(file.rules.len());
        let mut keywords = Vec::new();
        for (rule_idx, rule) in file.rules.into_iter().enumerate() {
            let rule_number = rule_idx + 1;
            if rule.category.is_empty() {
                return Err(format!("rule {rule_number}: category is empty"));
            }
            if rule.category == file.fallback {
                return Err(format!("rule {rule_number}: category {:?} is the fallback", rule.category));
            }
            if rule.keywords.is_empty() {
                return Err(format!("rule {rule_number} ({}): no keywords", rule.category));
            }
            let position = match names.iter().position(|name| *name == rule.category) {
                Some(position) => position,
                None => {
                    names.push(rule.category.clone());
                    names.len() - 1
                }
            };
            rule_categories.push(category_id(position)?);
            for keyword in rule.keywords {
                if keyword.is_empty() {
                    return Err(format!("rule {rule_number} ({}): a keyword is empty", rule.category));
                }
                keywords.push(Keyword { text: keyword, rule: rule_idx });
            }
        }
        names.push(file.fallback);
        category_id(names.len() - 1)?;
        keywords.sort_by_key(|keyword| (first_char(&keyword.text), keyword.rule));
        let mut groups: Vec<(char, usize, usize)> = Vec::new();
        for (idx, keyword) in keywords.iter().enumerate() {
            let first = first_char(&keyword.text);
            match groups.last_mut() {
                Some((group_char, _, end)) if *group_char == first => *end = idx + 1,
                _ => groups.push((first, idx, idx + 1)),
            }
        }
        Ok(Categories { names, match_fields: file.match_fields, rule_categories, keywords, groups })
    }

    /// The category names by rank: the rules' categories in order, the fallback last.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of `category`.
    pub fn name(&self, category: CategoryId) -> &str {
        &self.names[category.rank()]
    }

    /// The fallback category (the last).
    pub fn fallback(&self) -> CategoryId {
        CategoryId(u16::try_from(self.names.len() - 1).unwrap_or(u16::MAX))
    }

    /// The category of a line item with this title and SKU text: the rules are tried in order
    /// against the first of `match_fields` (a plain, case-sensitive substring test), the first rule
    /// with a keyword occurring in it wins; only when no rule matches that field is the next field
    /// tried; no match in any field gives the fallback.
    pub fn categorize(&self, title: &str, sku_properties_name: &str) -> CategoryId {
        for field in &self.match_fields {
            let text = match field {
                MatchField::Title => title,
                MatchField::SkuPropertiesName => sku_properties_name,
            };
            if let Some(rule) = self.first_matching_rule(text) {
                return self.rule_categories[rule];
            }
        }
        self.fallback()
    }

    /// The lowest index of a rule with a keyword occurring in `text`.
    fn first_matching_rule(&self, text: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (start, current) in text.char_indices() {
            let Ok(group) = self.groups.binary_search_by(|(first, _, _)| first.cmp(&current)) else {
                continue;
            };
            let (_, from, to) = self.groups[group];
            let rest = &text[start..];
            // Sorted by rule within the group: the first keyword that matches has the lowest rule.
            for keyword in &self.keywords[from..to] {
                if best.is_some_and(|best| best <= keyword.rule) {
                    break;
                }
                if rest.starts_with(&keyword.text) {
                    best = Some(keyword.rule);
                    break;
                }
            }
            if best == Some(0) {
                break;
            }
        }
        best
    }
}

/// The first character of a non-empty keyword.
fn first_char(text: &str) -> char {
    text.chars().next().unwrap_or('\0')
}

fn category_id(position: usize) -> Result<CategoryId, String> {
    u16::try_from(position).map(CategoryId).map_err(|_| "more than 65535 categories".to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The category rule by rule, keyword by keyword, as the semantics state it.
    fn reference(categories: &Categories, rules: &[(String, Vec<String>)], title: &str, sku: &str) -> String {
        for text in [title, sku] {
            for (category, keywords) in rules {
                if keywords.iter().any(|keyword| text.contains(keyword.as_str())) {
                    return category.clone();
                }
            }
        }
        categories.name(categories.fallback()).to_owned()
    }

    fn default_rules() -> Vec<(String, Vec<String>)> {
        let json: serde_json::Value = serde_json::from_str(DEFAULT_RULES_JSON).unwrap();
        json["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| {
                let keywords = rule["keywords"].as_array().unwrap();
                (
                    rule["category"].as_str().unwrap().to_owned(),
                    keywords.iter().map(|k| k.as_str().unwrap().to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_defaults_have_eight_categories_then_the_fallback() {
        let categories = Categories::defaults();
        assert_eq!(
            categories.names(),
            [
                "宠物用品",
                "母婴用品",
                "数码家电",
                "美妆个护",
                "家居日用",
                "服饰鞋包",
                "食品饮料",
                "图书文具",
                "其他"
            ]
        );
        assert_eq!(categories.name(categories.fallback()), "其他");
    }

    #[test]
    fn the_earlier_rule_wins_wherever_its_keyword_is_in_the_title() {
        let categories = Categories::defaults();
        let name = |title: &str| categories.name(categories.categorize(title, "")).to_owned();
        // 笔记本电脑 (数码家电, rule 3) and 笔记本 (图书文具, rule 8) both occur.
        assert_eq!(name("轻薄笔记本电脑"), "数码家电");
        // 水果 (食品饮料) occurs first in the text, 宝宝 (母婴用品) later, but 母婴用品 is the earlier rule.
        assert_eq!(name("水果泥 宝宝辅食"), "母婴用品");
        // 纸尿裤 contains 裤 (服饰鞋包) but 母婴用品 comes first.
        assert_eq!(name("超薄纸尿裤"), "母婴用品");
        // Matching is case-sensitive: T恤 matches, t恤 does not.
        assert_eq!(name("纯棉T恤"), "服饰鞋包");
        assert_eq!(name("纯棉t恤"), "其他");
    }

    #[test]
    fn user_rules_replace_the_defaults() {
        let json = r#"{"fallback": "杂项", "match_fields": ["sku_properties_name"],
                       "rules": [{"category": "水果", "keywords": ["苹果", "梨"]},
                                 {"category": "电子", "keywords": ["苹果手机"]},
                                 {"category": "水果", "keywords": ["香蕉"]}]}"#;
        let categories = Categories::from_json(json).unwrap();
        assert_eq!(categories.names(), ["水果", "电子", "杂项"]);
        // Only the SKU text is matched.
        assert_eq!(categories.name(categories.categorize("苹果", "")), "杂项");
        assert_eq!(categories.name(categories.categorize("", "苹果手机 256G")), "水果");
        assert_eq!(categories.name(categories.categorize("", "香蕉")), "水果");
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (json, expected) in [
            (r#"{"fallback": "", "match_fields": ["title"], "rules": []}"#, "fallback is empty"),
            (r#"{"fallback": "x", "match_fields": [], "rules": []}"#, "match_fields is empty"),
            (r#"{"fallback": "x", "match_fields": ["title", "title"], "rules": []}"#, "twice"),
            (r#"{"fallback": "x", "match_fields": ["body"], "rules": []}"#, "unknown variant `body`"),
            (
                r#"{"fallback": "x", "match_fields": ["title"], "rules": [{"category": "x", "keywords": ["a"]}]}"#,
                "is the fallback",
            ),
            (
                r#"{"fallback": "x", "match_fields": ["title"], "rules": [{"category": "y", "keywords": []}]}"#,
                "no keywords",
            ),
            (
                r#"{"fallback": "x", "match_fields": ["title"], "rules": [{"category": "y", "keywords": [""]}]}"#,
                "a keyword is empty",
            ),
            (r#"{"fallback": "x", "match_fields": ["title"], "rule": []}"#, "unknown field `rule`"),
            (r#""rules""#, "invalid type: string"),
        ] {
            let error = Categories::from_json(json).unwrap_err();
            assert!(error.contains(expected), "{error} should contain {expected}");
        }
    }

    proptest! {
        #[test]
        fn the_matcher_agrees_with_trying_rule_by_rule(
            title in proptest::string::string_regex("[宠物猫粮狗婴儿奶粉手机笔记本电脑T恤裤鞋蛋糕水果图书a-z ]{0,12}").unwrap(),
            sku in proptest::string::string_regex("[颜色:黑白;尺码XL连衣裙耳机奶瓶]{0,12}").unwrap(),
        ) {
            let categories = Categories::defaults();
            let rules = default_rules();
            prop_assert_eq!(
                categories.name(categories.categorize(&title, &sku)),
                reference(&categories, &rules, &title, &sku)
            );
        }
    }
}
