//! The provinces table (`cn-provinces.csv`: code, full name, short name, region) and province
//! resolution from a delivery province name or an area code.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::youzan::error::YouzanError;

/// The compiled-in default table, a copy of `data/cn-provinces.csv`.
const DEFAULT_PROVINCES_CSV: &str = include_str!("../../data/cn-provinces.csv");

/// The region of an order whose province could not be resolved.
pub const UNKNOWN_REGION: &str = "未知";

/// One province-level division.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Province {
    /// The two-digit code, the first two digits of its area codes (`51`).
    pub code: String,
    /// The full name (`四川省`).
    pub name: String,
    /// The short name (`四川`).
    pub short_name: String,
    /// The region (`西南`).
    pub region: String,
}

/// The provinces, looked up by full or short name and by two-digit code.
///
/// ```
/// use batch_tasks::youzan::Provinces;
///
/// let provinces = Provinces::defaults();
/// assert_eq!(provinces.by_name("广西").map(|p| p.name.as_str()), Some("广西壮族自治区"));
/// assert_eq!(provinces.by_area_code("510105").map(|p| p.region.as_str()), Some("西南"));
/// assert_eq!(provinces.resolve(Some("四川省"), Some("440305")).map(|p| p.code.as_str()), Some("51"));
/// assert!(provinces.resolve(Some("火星"), Some("990000")).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Provinces {
    provinces: Vec<Province>,
    by_name: HashMap<String, usize>,
    /// Index into `provinces` by the code's numeric value (00..=99).
    by_code: [Option<u8>; 100],
}

impl Provinces {
    /// The compiled-in table (`data/cn-provinces.csv`): 31 provinces, Hong Kong, Macau and Taiwan.
    ///
    /// # Panics
    ///
    /// Never in a released build: the compiled-in table is checked by this crate's tests.
    pub fn defaults() -> Provinces {
        match Provinces::from_csv(DEFAULT_PROVINCES_CSV) {
            Ok(provinces) => provinces,
            Err(reason) => panic!("the compiled-in provinces table is invalid: {reason}"),
        }
    }

    /// Reads a user's table from the CSV file at `path` (header `code,name,short_name,region`).
    pub fn from_file(path: &Path) -> Result<Provinces, YouzanError> {
        let text = std::fs::read_to_string(path).map_err(|source| YouzanError::ReadFile {
            param: "provinces",
            path: path.to_owned(),
            source,
        })?;
        Provinces::from_csv(&text)
            .map_err(|reason| YouzanError::InvalidProvinces { path: Some(path.to_owned()), reason })
    }

    /// Reads a table from CSV text with the header `code,name,short_name,region` (other columns are
    /// ignored). Every code is two ASCII digits and unique; every name and short name is non-empty
    /// and names one province only; a region is non-empty and not `未知`.
    pub fn from_csv(text: &str) -> Result<Provinces, String> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let mut provinces = Vec::new();
        for (idx, row) in reader.deserialize::<Province>().enumerate() {
            let row_number = idx + 2;
            let province = row.map_err(|error| format!("row {row_number}: {error}"))?;
            provinces.push(province);
        }
        Provinces::from_rows(provinces)
    }

    /// Builds the table from its rows, checking them as [`from_csv`](Provinces::from_csv) says.
    fn from_rows(provinces: Vec<Province>) -> Result<Provinces, String> {
        if provinces.is_empty() {
            return Err("the table has no province".to_owned());
        }
        if provinces.len() > 100 {
            return Err("the table has more than 100 provinces".to_owned());
        }
        let mut by_name = HashMap::new();
        let mut by_code = [None; 100];
        for (idx, province) in provinces.iter().enumerate() {
            let row = idx + 2;
            let Some(code) = two_digit_code(&province.code) else {
                return Err(format!("row {row}: code {:?} is not two digits", province.code));
            };
            if by_code[code].is_some() {
                return Err(format!("row {row}: code {} appears twice", province.code));
            }
            by_code[code] = u8::try_from(idx).ok();
            for name in [&province.name, &province.short_name] {
                if name.is_empty() {
                    return Err(format!("row {row}: a name is empty"));
                }
                if let Some(&other) = by_name.get(name.as_str())
                    && other != idx
                {
                    return Err(format!("row {row}: name {name:?} also names row {}", other + 2));
                }
                by_name.insert(name.clone(), idx);
            }
            if province.region.is_empty() || province.region == UNKNOWN_REGION {
                return Err(format!("row {row}: region {:?} is empty or reserved", province.region));
            }
        }
        Ok(Provinces { provinces, by_name, by_code })
    }

    /// Every province, in the table's order.
    pub fn iter(&self) -> impl Iterator<Item = &Province> {
        self.provinces.iter()
    }

    /// The province with this full or short name (surrounding whitespace ignored).
    pub fn by_name(&self, name: &str) -> Option<&Province> {
        self.by_name.get(name.trim()).map(|&idx| &self.provinces[idx])
    }

    /// The province of a six-digit area code (`510105`): the one whose code is its first two digits.
    pub fn by_area_code(&self, area_code: &str) -> Option<&Province> {
        let bytes = area_code.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let prefix = usize::from(bytes[0] - b'0') * 10 + usize::from(bytes[1] - b'0');
        self.by_code[prefix].map(|idx| &self.provinces[usize::from(idx)])
    }

    /// Resolves a province: by `name` when it is a known full or short name, else by `area_code`'s
    /// first two digits; the name wins when both resolve and disagree.
    pub fn resolve(&self, name: Option<&str>, area_code: Option<&str>) -> Option<&Province> {
        name.and_then(|name| self.by_name(name))
            .or_else(|| area_code.and_then(|code| self.by_area_code(code)))
    }

    /// The distinct regions, in the order they first appear in the table.
    pub fn regions(&self) -> Vec<&str> {
        let mut regions: Vec<&str> = Vec::new();
        for province in &self.provinces {
            if !regions.contains(&province.region.as_str()) {
                regions.push(&province.region);
            }
        }
        regions
    }
}

/// The numeric value of a code of exactly two ASCII digits.
fn two_digit_code(code: &str) -> Option<usize> {
    match code.as_bytes() {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
            Some(usize::from(tens - b'0') * 10 + usize::from(ones - b'0'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region_of(provinces: &Provinces, name: &str) -> Option<String> {
        provinces.by_name(name).map(|province| province.region.clone())
    }

    #[test]
    fn the_default_table_has_34_divisions_and_seven_regions() {
        let provinces = Provinces::defaults();
        assert_eq!(provinces.iter().count(), 34);
        assert_eq!(provinces.regions(), ["华北", "东北", "华东", "华中", "华南", "西南", "西北"]);
    }

    #[test]
    fn full_and_short_names_resolve_to_the_same_province() {
        let provinces = Provinces::defaults();
        for (full, short, code) in
            [("内蒙古自治区", "内蒙古", "15"), ("广西壮族自治区", "广西", "45"), ("北京市", "北京", "11")]
        {
            assert_eq!(provinces.by_name(full).unwrap().code, code);
            assert_eq!(provinces.by_name(short).unwrap().code, code);
        }
        assert_eq!(provinces.by_name(" 四川省 ").unwrap().code, "51");
    }

    #[test]
    fn hong_kong_macau_and_taiwan_follow_the_table() {
        let provinces = Provinces::defaults();
        assert_eq!(region_of(&provinces, "香港").as_deref(), Some("华南"));
        assert_eq!(region_of(&provinces, "澳门特别行政区").as_deref(), Some("华南"));
        assert_eq!(region_of(&provinces, "台湾").as_deref(), Some("华东"));
        assert_eq!(provinces.by_area_code("810000").unwrap().name, "香港特别行政区");
    }

    #[test]
    fn area_codes_must_be_six_digits_with_a_known_prefix() {
        let provinces = Provinces::defaults();
        assert_eq!(provinces.by_area_code("440305").unwrap().short_name, "广东");
        for bad in ["44030", "4403051", "44030a", "990000", "", "４４０３０５"] {
            assert!(provinces.by_area_code(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bad_tables_are_refused_with_the_row() {
        let header = "code,name,short_name,region\n";
        for (rows, expected) in [
            ("", "no province"),
            ("1,北京市,北京,华北\n", "row 2: code \"1\" is not two digits"),
            ("11,北京市,北京,华北\n11,天津市,天津,华北\n", "row 3: code 11 appears twice"),
            ("11,北京市,北京,华北\n12,北京市,天津,华北\n", "row 3: name \"北京市\" also names row 2"),
            ("11,北京市,北京,未知\n", "row 2: region \"未知\" is empty or reserved"),
            ("11,北京市,,华北\n", "row 2: a name is empty"),
        ] {
            let error = Provinces::from_csv(&format!("{header}{rows}")).unwrap_err();
            assert!(error.contains(expected), "{error} should contain {expected}");
        }
        assert!(Provinces::from_csv("code,name\n11,北京市\n").unwrap_err().contains("short_name"));
    }
}
