//! Group-by aggregation: rows are grouped by the values of the `group_by` fields, and each group
//! keeps exact running aggregates (`count`, `sum`, `min`, `max`, `avg`).
//!
//! # Values
//!
//! An aggregated field is read with the number rules of the [`batch_process`](super) module: a
//! JSON number or a numeric-looking string, exact as a [`Decimal`] (sums never touch floating
//! point). A field without a value (missing, `null`, blank) is skipped, as SQL skips `NULL`: it
//! does not add to sums, nor to the count of values an average divides by. Any other value — a
//! word, a boolean, an array, a number outside the exact decimal range — makes the row a
//! [`RecordIssue`] naming the field, and the row counts nowhere (not even in `count`).
//!
//! # Groups
//!
//! A group's key is the tuple of its `group_by` values (a field without a value is `null`), told
//! apart by canonical JSON text (see [`key`]); groups come out sorted by that text. The
//! number of groups is bounded by `max_groups`. [`GroupState`] is the groups as checkpoint state
//! (decimals as strings, so nothing is lost). `GroupBy::merge` (compiled for the tests only: a
//! partitioned run's merge recomputes the groups in input order instead) checks that the states of
//! two parts of an input combine into the state of the whole.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::batch_process::config::{AggregateFunction, AggregateSpec, GroupConfig};
use crate::batch_process::error::{BatchProcessError, RecordIssue, short_json};
use crate::batch_process::key;
use crate::batch_process::number::Number;

/// The digits after the decimal point of an average (`avg`): the exact mean, rounded half away from
/// zero to 6 places (`5033.196996`); shorter means keep their own digits (`7.25`). Sums, minima and
/// maxima are exact, never rounded.
pub const AVG_SCALE: u32 = 6;

/// The group-by stage: its settings and the groups so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupBy {
    config: GroupConfig,
    /// By the canonical text of the key.
    groups: BTreeMap<String, Group>,
}

/// A row read for [`GroupBy::apply`]: its group key and the values of the aggregated fields,
/// already checked. Built by [`GroupBy::input`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupInput {
    key_text: String,
    key: Vec<Value>,
    /// One per aggregate: the field's number, or `None` when it has no value. For `count:field`,
    /// any value is `Some(0)`; for a plain `count`, always `Some(0)`.
    values: Vec<Option<Decimal>>,
}

/// A group input as a partition logs it for its parent's merge: the key's values and each
/// aggregated value as its exact decimal text (or `null`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredInput {
    key: Vec<Value>,
    values: Vec<Option<String>>,
}

impl Serialize for GroupInput {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let values = self.values.iter().map(|value| value.map(|decimal| decimal.to_string())).collect();
        StoredInput { key: self.key.clone(), values }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for GroupInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<GroupInput, D::Error> {
        let stored = StoredInput::deserialize(deserializer)?;
        let values = stored
            .values
            .iter()
            .map(|value| {
                value
                    .as_deref()
                    .map(|text| text.parse::<Decimal>().map_err(serde::de::Error::custom))
                    .transpose()
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        Ok(GroupInput { key_text: key::canonical_text(&stored.key), key: stored.key, values })
    }
}

/// What [`GroupBy`] puts in a checkpoint. Opaque; read back with [`GroupBy::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct GroupState {
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Group {
    key: Vec<Value>,
    /// Rows in the group.
    records: u64,
    /// One per aggregate, in the settings' order.
    accumulators: Vec<Accumulator>,
}

/// One aggregate's running value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Accumulator {
    Count {
        n: u64,
    },
    Sum {
        #[serde(with = "decimal_text")]
        sum: Decimal,
    },
    Min {
        #[serde(with = "optional_decimal_text")]
        value: Option<Decimal>,
    },
    Max {
        #[serde(with = "optional_decimal_text")]
        value: Option<Decimal>,
    },
    Avg {
        #[serde(with = "decimal_text")]
        sum: Decimal,
        n: u64,
    },
}

impl Accumulator {
    fn new(function: AggregateFunction) -> Accumulator {
        match function {
            AggregateFunction::Count => Accumulator::Count { n: 0 },
            AggregateFunction::Sum => Accumulator::Sum { sum: Decimal::ZERO },
            AggregateFunction::Min => Accumulator::Min { value: None },
            AggregateFunction::Max => Accumulator::Max { value: None },
            AggregateFunction::Avg => Accumulator::Avg { sum: Decimal::ZERO, n: 0 },
        }
    }

    fn function(&self) -> AggregateFunction {
        match self {
            Accumulator::Count { .. } => AggregateFunction::Count,
            Accumulator::Sum { .. } => AggregateFunction::Sum,
            Accumulator::Min { .. } => AggregateFunction::Min,
            Accumulator::Max { .. } => AggregateFunction::Max,
            Accumulator::Avg { .. } => AggregateFunction::Avg,
        }
    }

    /// The accumulator with `value` added; `None` when a sum leaves the decimal range.
    fn with(&self, value: Option<Decimal>) -> Option<Accumulator> {
        let Some(value) = value else {
            return Some(self.clone());
        };
        Some(match self {
            Accumulator::Count { n } => Accumulator::Count { n: n + 1 },
            Accumulator::Sum { sum } => Accumulator::Sum { sum: sum.checked_add(value)? },
            Accumulator::Min { value: least } => {
                Accumulator::Min { value: Some(least.map_or(value, |least| least.min(value))) }
            }
            Accumulator::Max { value: most } => {
                Accumulator::Max { value: Some(most.map_or(value, |most| most.max(value))) }
            }
            Accumulator::Avg { sum, n } => Accumulator::Avg { sum: sum.checked_add(value)?, n: n + 1 },
        })
    }

    /// The two accumulators combined (of the same function); `None` on overflow or a mismatch.
    #[cfg(test)]
    fn merged(&self, other: &Accumulator) -> Option<Accumulator> {
        let pick = |left: Option<Decimal>,
                    right: Option<Decimal>,
                    choose: fn(Decimal, Decimal) -> Decimal| match (left, right) {
            (Some(left), Some(right)) => Some(choose(left, right)),
            (left, right) => left.or(right),
        };
        Some(match (self, other) {
            (Accumulator::Count { n }, Accumulator::Count { n: other }) => {
                Accumulator::Count { n: n + other }
            }
            (Accumulator::Sum { sum }, Accumulator::Sum { sum: other }) => {
                Accumulator::Sum { sum: sum.checked_add(*other)? }
            }
            (Accumulator::Min { value }, Accumulator::Min { value: other }) => {
                Accumulator::Min { value: pick(*value, *other, Decimal::min) }
            }
            (Accumulator::Max { value }, Accumulator::Max { value: other }) => {
                Accumulator::Max { value: pick(*value, *other, Decimal::max) }
            }
            (Accumulator::Avg { sum, n }, Accumulator::Avg { sum: other_sum, n: other_n }) => {
                Accumulator::Avg { sum: sum.checked_add(*other_sum)?, n: n + other_n }
            }
            _ => return None,
        })
    }

    /// The aggregate's value in a group row: counts as numbers, decimals as strings (exact).
    fn output(&self) -> Value {
        let text = |decimal: Decimal| Value::String(decimal.to_string());
        match self {
            Accumulator::Count { n } => Value::from(*n),
            Accumulator::Sum { sum } => text(*sum),
            Accumulator::Min { value } | Accumulator::Max { value } => value.map_or(Value::Null, text),
            Accumulator::Avg { sum, n } => {
                if *n == 0 {
                    return Value::Null;
                }
                sum.checked_div(Decimal::from(*n))
                    .map(|mean| {
                        mean.round_dp_with_strategy(AVG_SCALE, RoundingStrategy::MidpointAwayFromZero)
                    })
                    .map_or(Value::Null, text)
            }
        }
    }
}

impl GroupBy {
    /// A stage with no groups yet.
    pub(crate) fn new(config: GroupConfig) -> GroupBy {
        GroupBy { config, groups: BTreeMap::new() }
    }

    /// The stage as a checkpoint left it. Fails with `STORAGE_ERROR` when the state does not fit
    /// the settings (another number of aggregates or key fields, too many groups).
    pub(crate) fn restore(config: GroupConfig, state: &GroupState) -> Result<GroupBy, BatchProcessError> {
        let invalid =
            |reason: String| BatchProcessError::InvalidState { reason: format!("group_by: {reason}") };
        if state.groups.len() > config.max_groups {
            return Err(invalid(format!(
                "{} groups, more than max_groups ({})",
                state.groups.len(),
                config.max_groups
            )));
        }
        let mut groups = BTreeMap::new();
        for group in &state.groups {
            if group.key.len() != config.group_by.len() {
                return Err(invalid(format!(
                    "a key of {} values for {} group_by fields",
                    group.key.len(),
                    config.group_by.len()
                )));
            }
            let functions = group.accumulators.iter().map(Accumulator::function);
            if !functions.eq(config.aggregates.iter().map(|spec| spec.function)) {
                return Err(invalid("the aggregates differ from the params".to_owned()));
            }
            if groups.insert(key::canonical_text(&group.key), group.clone()).is_some() {
                return Err(invalid(format!("the group {} appears twice", key::canonical_text(&group.key))));
            }
        }
        Ok(GroupBy { config, groups })
    }

    /// The settings.
    pub(crate) fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Reads `row`'s group key and aggregated values, or says why the row cannot be aggregated.
    pub(crate) fn input(&self, row: &Value) -> Result<GroupInput, RecordIssue> {
        let key: Vec<Value> = self
            .config
            .group_by
            .iter()
            .map(|path| path.present(row).cloned().unwrap_or(Value::Null))
            .collect();
        let mut values = Vec::with_capacity(self.config.aggregates.len());
        for spec in &self.config.aggregates {
            values.push(aggregated_value(spec, row)?);
        }
        Ok(GroupInput { key_text: key::canonical_text(&key), key, values })
    }

    /// Adds a row read by [`input`](GroupBy::input) to its group. Fails when a new group would pass
    /// `max_groups` or a sum would leave the decimal range; the groups are then unchanged.
    pub(crate) fn apply(&mut self, input: GroupInput) -> Result<(), BatchProcessError> {
        let group_count = self.groups.len();
        let group = match self.groups.entry(input.key_text) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                if group_count >= self.config.max_groups {
                    return Err(BatchProcessError::TooManyGroups { max_groups: self.config.max_groups });
                }
                let accumulators =
                    self.config.aggregates.iter().map(|spec| Accumulator::new(spec.function)).collect();
                entry.insert(Group { key: input.key, records: 0, accumulators })
            }
        };
        let mut updated = Vec::with_capacity(group.accumulators.len());
        for ((accumulator, value), spec) in
            group.accumulators.iter().zip(input.values).zip(&self.config.aggregates)
        {
            match accumulator.with(value) {
                Some(next) => updated.push(next),
                None => {
                    return Err(BatchProcessError::AggregateOverflow {
                        aggregate: spec.name.clone(),
                        group: key::canonical_text(&group.key),
                    });
                }
            }
        }
        group.accumulators = updated;
        group.records += 1;
        Ok(())
    }

    /// [`input`](GroupBy::input) then [`apply`](GroupBy::apply): `Ok(Ok(()))` aggregated,
    /// `Ok(Err(issue))` send the row to the dead letters, `Err(error)` fail the task.
    #[cfg(test)]
    pub(crate) fn add(&mut self, row: &Value) -> Result<Result<(), RecordIssue>, BatchProcessError> {
        match self.input(row) {
            Ok(input) => self.apply(input).map(Ok),
            Err(issue) => Ok(Err(issue)),
        }
    }

    /// Adds `other`'s groups into these, as if this stage had also seen `other`'s rows. Both must
    /// have the same settings. Fails, leaving `self` unchanged, on a settings mismatch, too many
    /// groups, or an overflowing sum.
    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &GroupBy) -> Result<(), BatchProcessError> {
        if self.config != other.config {
            return Err(BatchProcessError::InvalidState {
                reason: "group_by: cannot merge groups made with different settings".to_owned(),
            });
        }
        let mut merged = self.groups.clone();
        for (key_text, theirs) in &other.groups {
            let group_count = merged.len();
            match merged.entry(key_text.clone()) {
                Entry::Vacant(entry) => {
                    if group_count >= self.config.max_groups {
                        return Err(BatchProcessError::TooManyGroups { max_groups: self.config.max_groups });
                    }
                    entry.insert(theirs.clone());
                }
                Entry::Occupied(mut entry) => {
                    let ours = entry.get_mut();
                    let mut accumulators = Vec::with_capacity(ours.accumulators.len());
                    for ((left, right), spec) in
                        ours.accumulators.iter().zip(&theirs.accumulators).zip(&self.config.aggregates)
                    {
                        let combined =
                            left.merged(right).ok_or_else(|| BatchProcessError::AggregateOverflow {
                                aggregate: spec.name.clone(),
                                group: key_text.clone(),
                            })?;
                        accumulators.push(combined);
                    }
                    ours.accumulators = accumulators;
                    ours.records += theirs.records;
                }
            }
        }
        self.groups = merged;
        Ok(())
    }

    /// The checkpoint state.
    pub(crate) fn state(&self) -> GroupState {
        GroupState { groups: self.groups.values().cloned().collect() }
    }

    /// The group rows, sorted by key: the `group_by` fields (as nested objects for dotted paths),
    /// then each aggregate under its name — counts as JSON numbers; sums, minima, maxima and
    /// averages as decimal strings (exact; an average rounded to [`AVG_SCALE`] places);
    /// `null` for a minimum, maximum or average over no values.
    pub(crate) fn finish(&self) -> Vec<Value> {
        self.groups
            .values()
            .map(|group| {
                let mut row = Map::new();
                for (path, value) in self.config.group_by.iter().zip(&group.key) {
                    path.insert(&mut row, value.clone());
                }
                for (spec, accumulator) in self.config.aggregates.iter().zip(&group.accumulators) {
                    row.insert(spec.name.clone(), accumulator.output());
                }
                Value::Object(row)
            })
            .collect()
    }
}

/// The value `spec` reads from `row` (see [`GroupInput::values`]).
fn aggregated_value(spec: &AggregateSpec, row: &Value) -> Result<Option<Decimal>, RecordIssue> {
    let Some(field) = &spec.field else {
        return Ok(Some(Decimal::ZERO));
    };
    let Some(value) = field.present(row) else {
        return Ok(None);
    };
    if spec.function == AggregateFunction::Count {
        return Ok(Some(Decimal::ZERO));
    }
    match Number::of_value(value) {
        Some(Number::Exact(decimal)) => Ok(Some(decimal)),
        Some(Number::Approx(_)) => {
            Err(RecordIssue::OutOfRange { field: field.to_string(), value: short_json(value) })
        }
        None => Err(RecordIssue::NotANumber { field: field.to_string(), value: short_json(value) }),
    }
}

/// A [`Decimal`] as its exact text in checkpoints.
mod decimal_text {
    use std::str::FromStr as _;

    use rust_decimal::Decimal;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer)?;
        Decimal::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// An optional [`Decimal`] as its exact text, or `null`.
mod optional_decimal_text {
    use std::str::FromStr as _;

    use rust_decimal::Decimal;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| Decimal::from_str(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
