//! Column values in PostgreSQL's binary format beyond what tokio-postgres maps: JSON documents kept
//! in `text` columns (a task's record, result and metrics), written by serialising straight into the
//! statement's buffer and read by deserialising the column's bytes (the store is their only writer
//! and reader, so the server need not parse them as `json` on every write); and task ids as `uuid`
//! values, in parameters, in results and in binary COPY.

use std::error::Error;

use batch_model::TaskId;
use bytes::{BufMut as _, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// A value stored as its JSON text.
#[derive(Debug, Clone, Copy)]
pub(super) struct JsonText<T>(pub(super) T);

impl<T: Serialize + std::fmt::Debug> ToSql for JsonText<T> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        serde_json::to_writer(out.writer(), &self.0)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

impl<'a, T: DeserializeOwned> FromSql<'a> for JsonText<T> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<JsonText<T>, Box<dyn Error + Sync + Send>> {
        Ok(JsonText(serde_json::from_slice(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }
}

/// A task id as a `uuid` value (16 bytes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Uuid(pub(super) TaskId);

impl ToSql for Uuid {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Uuid {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Uuid, Box<dyn Error + Sync + Send>> {
        let bytes: [u8; 16] =
            raw.try_into().map_err(|_| format!("a uuid value of {} bytes instead of 16", raw.len()))?;
        Ok(Uuid(TaskId::from_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// Task ids as the `uuid[]` of a parameter.
pub(super) fn uuids(ids: impl IntoIterator<Item = TaskId>) -> Vec<Uuid> {
    ids.into_iter().map(Uuid).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_id_is_written_as_the_16_bytes_of_its_uuid() {
        let id: TaskId = "01a24c1e-ac14-7366-aef5-ac730e4420ba".parse().expect("a task id");
        let mut out = BytesMut::new();
        Uuid(id).to_sql(&Type::UUID, &mut out).expect("written");
        assert_eq!(
            out.as_ref(),
            [0x01, 0xa2, 0x4c, 0x1e, 0xac, 0x14, 0x73, 0x66, 0xae, 0xf5, 0xac, 0x73, 0x0e, 0x44, 0x20, 0xba]
        );
        let Uuid(read) = Uuid::from_sql(&Type::UUID, &out).expect("read");
        assert_eq!(read, id);
    }

    #[test]
    fn a_uuid_value_of_another_length_is_an_error() {
        let error = Uuid::from_sql(&Type::UUID, &[1, 2, 3]).expect_err("13 bytes short");
        assert_eq!(error.to_string(), "a uuid value of 3 bytes instead of 16");
    }
}
