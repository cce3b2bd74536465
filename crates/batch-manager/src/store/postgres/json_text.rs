//! JSON documents kept in `text` columns (a task's record, result and metrics): written by serialising
//! straight into the statement's buffer, read by deserialising the column's bytes. The store is their
//! only writer and reader, so the server need not parse them as `json` on every write.

use std::error::Error;

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
