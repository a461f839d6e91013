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
    port: u16,
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
        std::fs::write(dir.path().join("drey.toml"), config).unwrap();
        let child = Self::spawn(dir.path(), port);
        let d = Drey {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            dir,
        };
        d.wait_ready().await;
        d
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("drey.log"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_drey"))
            .arg("serve")
            .arg("--config")
            .arg(dir.join("drey.toml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"))
            .env("DREY_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn drey")
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/service", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "drey did not become ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL (no shutdown of any kind).
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again on the same data, configuration and port.
    pub async fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.port);
        self.wait_ready().await;
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
