//! Starts the real `drey` binary for end-to-end tests, on the embedded default (SQLite +
//! local directory) or on the scale-out backends (PostgreSQL + S3 from the environment).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Local,
    Scale,
}

pub struct Drey {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl Drey {
    /// Starts drey with extra TOML config lines; `None` when the scale-out backends are not
    /// configured outside CI (see `drey::testing`).
    pub async fn start(backend: Backend, extra_config: &str) -> Option<Drey> {
        let mut config = extra_config.to_owned();
        config.push('\n');
        if let Backend::Scale = backend {
            config.push_str(&Self::scale_config().await?);
        }
        Some(Self::start_with_config(&config).await)
    }

    /// TOML naming a fresh PostgreSQL database and the test bucket; `None` outside CI when
    /// they are not configured.
    pub async fn scale_config() -> Option<String> {
        let db = drey::testing::postgres_url().await?;
        let bucket = drey::testing::s3_bucket().await?;
        Some(format!("database = {db:?}\nobjects = \"s3://{bucket}\"\n"))
    }

    /// Starts an instance with exactly this TOML configuration.
    pub async fn start_with_config(config: &str) -> Drey {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg_path = dir.path().join("drey.toml");
        std::fs::write(&cfg_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("drey.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_drey"))
            .arg("serve")
            .arg("--config")
            .arg(&cfg_path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"))
            .env("DREY_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn drey");
        let d = Drey {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/service", d.base)).send().await
                && r.status() == 200
            {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "drey did not become ready: {}",
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("drey.log")).unwrap_or_default()
    }
}

impl Drop for Drey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an async test body on both backends: `both!(name, |drey_backend| async { ... })`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:path;)*) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $body($crate::common::Backend::Local).await;
                }
            )*
        }
        mod scale {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $body($crate::common::Backend::Scale).await;
                }
            )*
        }
    };
}
