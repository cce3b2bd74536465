//! The test kit's own tests: a cluster starts, serves, restarts (fast and immediate), goes away when
//! dropped; databases of the shared cluster are isolated from each other.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

use batch_testkit::{PgCluster, StopMode, TestkitError, pg_required, shared_or_skip};

/// An own cluster, or `None` (skip) when PostgreSQL is not installed and not required.
fn own_cluster(test: &str) -> Option<PgCluster> {
    match PgCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(error) if error.is_not_installed() && !pg_required() => {
            shared_or_skip(test);
            None
        }
        Err(error) => panic!("{error}"),
    }
}

async fn count_rows(cluster: &PgCluster, dbname: &str) -> i64 {
    let client = cluster.connect(dbname).await.unwrap();
    client.query_one("SELECT count(*) FROM notes", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_cluster_starts_serves_restarts_and_goes_away() {
    let Some(cluster) = own_cluster("a_cluster_starts_serves_restarts_and_goes_away") else { return };
    assert!(cluster.is_owned());
    let database = cluster.create_database().await.unwrap();
    assert_eq!(database.url, cluster.url(&database.name));
    let client = cluster.connect(&database.name).await.unwrap();
    client.batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('one')").await.unwrap();
    drop(client);

    // A clean restart keeps the data.
    cluster.stop(StopMode::Fast).unwrap();
    assert!(cluster.connect(&database.name).await.is_err(), "the server is down");
    cluster.start_again().unwrap();
    assert_eq!(count_rows(&cluster, &database.name).await, 1);

    // A crash (immediate stop) loses nothing committed either: the restart recovers from the log.
    let client = cluster.connect(&database.name).await.unwrap();
    client.batch_execute("INSERT INTO notes VALUES ('two')").await.unwrap();
    cluster.stop(StopMode::Immediate).unwrap();
    assert!(client.batch_execute("SELECT 1").await.is_err(), "the old connection is gone");
    cluster.start_again().unwrap();
    assert_eq!(count_rows(&cluster, &database.name).await, 2);
    assert!(cluster.log_tail(200).contains("database system is ready to accept connections"));

    let root = cluster.log_path().unwrap().parent().unwrap().to_owned();
    let url = cluster.url("postgres");
    assert!(root.exists());
    drop(cluster);
    assert!(!root.exists(), "dropping the cluster removes {}", root.display());
    let refused = tokio_postgres::connect(&url, tokio_postgres::NoTls).await;
    assert!(refused.is_err(), "dropping the cluster stops the server");
}

#[tokio::test]
async fn databases_of_the_shared_cluster_are_isolated() {
    let Some(cluster) = shared_or_skip("databases_of_the_shared_cluster_are_isolated") else { return };
    assert!(std::ptr::eq(cluster, PgCluster::shared().unwrap()), "one shared cluster per process");
    let first = cluster.create_database().await.unwrap();
    let second = cluster.create_database().await.unwrap();
    assert_ne!(first.name, second.name);
    let one = cluster.connect(&first.name).await.unwrap();
    one.batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('mine')").await.unwrap();
    assert_eq!(count_rows(cluster, &first.name).await, 1);
    let other = cluster.connect(&second.name).await.unwrap();
    let missing = other.query_one("SELECT count(*) FROM notes", &[]).await.unwrap_err();
    assert_eq!(missing.code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE));

    // Dropping a database disconnects its sessions.
    cluster.drop_database(&first.name).await.unwrap();
    assert!(one.batch_execute("SELECT 1").await.is_err());
    assert!(cluster.connect(&first.name).await.is_err());
}

#[test]
fn an_external_cluster_cannot_be_stopped_here() {
    let cluster = PgCluster::external("postgres://postgres@127.0.0.1:1/postgres").unwrap();
    assert!(!cluster.is_owned());
    assert!(matches!(cluster.stop(StopMode::Fast), Err(TestkitError::NotOwned { .. })));
    assert!(matches!(cluster.start_again(), Err(TestkitError::NotOwned { .. })));
    assert_eq!(cluster.url("db"), "postgres://postgres@127.0.0.1:1/db");
}

#[test]
fn missing_binaries_say_how_to_install_them() {
    let error = TestkitError::NotInstalled { searched: "/nowhere".to_owned() };
    assert!(error.is_not_installed());
    assert!(error.to_string().contains("apt-get install postgresql"), "{error}");
}
