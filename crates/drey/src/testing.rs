//! Test support (used by unit and integration tests, not by drey itself): real PostgreSQL and S3 servers named by the environment. The README's
//! test command (`scripts/test.sh`) starts both and sets the variables; under CI a missing
//! variable fails the test instead of skipping it.

use drey_core::Id;

/// The variable's value; `None` (test skipped) outside CI when unset, a panic under CI.
pub fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => {
            panic!(
                "{var} is not set: under CI the PostgreSQL and S3 tests must run (use scripts/test.sh)"
            )
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A fresh, empty PostgreSQL database for one test, created through the admin URL in
/// `DREY_TEST_POSTGRES` (e.g. `postgres://postgres@127.0.0.1/postgres`).
pub async fn postgres_url() -> Option<String> {
    let admin = required("DREY_TEST_POSTGRES")?;
    let name = format!("drey_test_{}", Id::new_v4().to_string().replace('-', ""));
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to DREY_TEST_POSTGRES");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    let mut url = url::Url::parse(&admin).expect("DREY_TEST_POSTGRES is a URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// The S3 bucket for tests (`DREY_TEST_S3_BUCKET`), with AWS_* variables for the endpoint.
pub async fn s3_bucket() -> Option<String> {
    required("DREY_TEST_S3_BUCKET")
}

/// The HTTPS endpoint of the test gateway and the PEM file of the CA that signed its
/// certificate (`DREY_RGW_TLS_ENDPOINT`, `DREY_RGW_TLS_CA`, from `scripts/ceph-rgw.sh`).
pub fn rgw_tls() -> Option<(String, String)> {
    Some((
        required("DREY_RGW_TLS_ENDPOINT")?,
        required("DREY_RGW_TLS_CA")?,
    ))
}

/// The directory of the throwaway Ceph cluster `scripts/ceph-rgw.sh` started
/// (`DREY_RGW_DIR`), for tests that run a gateway of their own on it.
pub fn rgw_dir() -> Option<String> {
    required("DREY_RGW_DIR")
}
