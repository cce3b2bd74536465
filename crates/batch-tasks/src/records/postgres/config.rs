//! What names a PostgreSQL table endpoint ([`PgTable`]): the server's address ([`PgAddress`], shown
//! without its password), the table (or, for a source, a query) and its key. Always compiled, so
//! that a task naming a table is checked and described the same in every build; the client itself
//! is behind the feature `postgres`.

use std::fmt;

/// Whether `text` is a PostgreSQL address (`postgres://…` or `postgresql://…`) rather than a file.
///
/// ```
/// use batch_tasks::records::postgres::is_postgres_address;
///
/// assert!(is_postgres_address("postgres://app@db:5432/sales"));
/// assert!(is_postgres_address("PostgreSQL://db/sales"));
/// assert!(!is_postgres_address("/data/postgres://odd/name.jsonl"));
/// ```
pub fn is_postgres_address(text: &str) -> bool {
    let lower = text.trim_start().get(..13).unwrap_or(text.trim_start()).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A PostgreSQL server and database, from a `postgres://user[:password]@host[:port]/database` URL.
/// Messages show it as `postgres://user@host:port/database`: never the password. A URL without a
/// password uses the worker's `PGPASSWORD` environment variable, if set, so that no password needs
/// to be stored in the task's params.
///
/// ```
/// use batch_tasks::records::postgres::PgAddress;
///
/// let address = PgAddress::parse("postgres://app:s3cret@db.example:6432/sales").unwrap();
/// assert_eq!(address.to_string(), "postgres://app@db.example:6432/sales");
/// // With the `postgres` feature the whole URL is checked (without it, only its scheme: such a
/// // build cannot connect anyway, and says so when a task asks it to).
/// # #[cfg(feature = "postgres")]
/// # {
/// let error = PgAddress::parse("postgres://app:s3cret@db.example:port/sales").unwrap_err();
/// assert!(!error.contains("s3cret"), "{error}");
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PgAddress {
    url: String,
    shown: String,
}

impl PgAddress {
    /// Checks `url`; the error (for a `CONFIGURATION_ERROR`) never repeats the password.
    pub fn parse(url: &str) -> Result<PgAddress, String> {
        let url = url.trim();
        if !is_postgres_address(url) {
            return Err("must be a postgres:// or postgresql:// URL".to_owned());
        }
        let shown = shown_url(url);
        #[cfg(feature = "postgres")]
        {
            use std::str::FromStr as _;
            tokio_postgres::Config::from_str(url).map_err(|error| {
                format!(
                    "{shown} is not a valid PostgreSQL URL (postgres://user[:password]@host[:port]/database): {error}"
                )
            })?;
        }
        Ok(PgAddress { url: url.to_owned(), shown })
    }

    /// The URL as given (with its password, if any): for connecting only, never for messages.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for PgAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgAddress").field(&self.shown).finish()
    }
}

/// `url` without its password and query: `postgres://user@host:port/database`.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or_default(), host),
        None => ("", authority),
    };
    let user = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("{}://{user}{host}/{path}", scheme.to_ascii_lowercase())
}

/// What a table endpoint reads or writes: a table (possibly `schema.table`), or, for a source, a
/// query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table or view: its name's parts as stored in the catalog (`["public", "orders"]`).
    Table(Vec<String>),
    /// A `SELECT` whose rows are read (sources only).
    Query(String),
}

impl Relation {
    /// A table name, `table` or `schema.table`, each part taken exactly as stored (case-sensitive,
    /// no quoting needed).
    ///
    /// ```
    /// use batch_tasks::records::postgres::Relation;
    ///
    /// assert_eq!(Relation::table("sales.Orders").unwrap(), Relation::Table(vec!["sales".into(), "Orders".into()]));
    /// assert!(Relation::table("a.b.c").is_err());
    /// ```
    pub fn table(name: &str) -> Result<Relation, String> {
        let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
        if parts.len() > 2 {
            return Err(format!("{name:?} is not a table name: use table or schema.table"));
        }
        if parts.iter().any(|part| part.is_empty() || part.contains('\0')) {
            return Err(format!("{name:?} is not a table name: a part is empty"));
        }
        Ok(Relation::Table(parts))
    }

    /// The relation as SQL after `FROM`: the quoted name, or the query in parentheses.
    pub fn sql(&self) -> String {
        match self {
            Relation::Table(parts) => {
                parts.iter().map(|part| quote_ident(part)).collect::<Vec<_>>().join(".")
            }
            Relation::Query(query) => format!("({query})"),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Relation::Table(parts) => write!(f, "the table {}", parts.join(".")),
            Relation::Query(_) => f.write_str("the query"),
        }
    }
}

/// `name` as a quoted SQL identifier.
///
/// ```
/// use batch_tasks::records::postgres::quote_ident;
///
/// assert_eq!(quote_ident(r#"odd "name""#), r#""odd ""name""""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table endpoint: where, what, and by which key.
///
/// For a source, `key` is the column the rows are read in order of (keyset pagination: each page
/// is the rows after the last key read); it must be unique and never null, and when absent it is
/// the table's primary key (one column). For a sink, `key` is the columns of the unique key the
/// rows are upserted by (`ON CONFLICT`), the table's primary key when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTable {
    /// The server and database.
    pub address: PgAddress,
    /// The table, or the query.
    pub relation: Relation,
    /// The key's columns (`None`: the table's primary key).
    pub key: Option<Vec<String>>,
}

impl PgTable {
    /// Whether this build can connect to PostgreSQL (batch-tasks' feature `postgres`).
    pub const SUPPORTED: bool = cfg!(feature = "postgres");

    /// What the endpoint names, for messages: `the table public.orders at postgres://app@db:5432/sales`.
    pub fn describe(&self) -> String {
        format!("{} at {}", self.relation, self.address)
    }
}

/// How a table output commits a chunk's rows (the `output_mode` param of a kind writing a table).
///
/// ```
/// use batch_tasks::records::postgres::OutputMode;
///
/// assert_eq!(OutputMode::parse("transactional"), Some(OutputMode::Transactional));
/// assert_eq!(OutputMode::default().as_str(), "auto");
/// assert_eq!(OutputMode::parse("fast"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// In the checkpoint's own store transaction when the task's store is the table's database
    /// (the same cluster and database, whatever the address), else upserted through the output's
    /// own connection.
    #[default]
    Auto,
    /// In the checkpoint's own store transaction; a task whose store is another database fails
    /// (`CONFIGURATION_ERROR`) rather than write any other way.
    Transactional,
    /// Upserted by key through the output's own connection (its URL's user), before the
    /// checkpoint, whatever the store: for a login or privileges the store's user lacks.
    Upsert,
}

impl OutputMode {
    /// Every mode, as the param takes them.
    pub const ALL: [OutputMode; 3] = [OutputMode::Auto, OutputMode::Transactional, OutputMode::Upsert];

    /// The param's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Auto => "auto",
            OutputMode::Transactional => "transactional",
            OutputMode::Upsert => "upsert",
        }
    }

    /// The mode a param's value names.
    pub fn parse(text: &str) -> Option<OutputMode> {
        OutputMode::ALL.into_iter().find(|mode| mode.as_str() == text.trim())
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key's column names from a comma-separated list; `None` for an empty text.
pub(crate) fn key_columns(text: &str) -> Result<Option<Vec<String>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let columns: Vec<String> = text.split(',').map(|column| column.trim().to_owned()).collect();
    if columns.iter().any(String::is_empty) {
        return Err(format!("{text:?} names an empty column"));
    }
    Ok(Some(columns))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_never_has_the_password_or_the_query() {
        for (url, shown) in [
            ("postgres://u:pw@h:1/d", "postgres://u@h:1/d"),
            ("postgresql://u@h/d?sslmode=disable&password=pw", "postgresql://u@h/d"),
            ("postgres://h", "postgres://h/"),
            ("postgres://u:p:w@h/d", "postgres://u@h/d"),
        ] {
            assert_eq!(shown_url(url), shown);
        }
    }

    #[test]
    fn key_lists_are_split_on_commas() {
        assert_eq!(key_columns(" a , b").unwrap(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(key_columns("").unwrap(), None);
        assert!(key_columns("a,,b").is_err());
    }
}
