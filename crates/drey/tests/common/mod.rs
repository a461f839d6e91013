//! Starts the real `drey` binary for end-to-end tests, on the embedded default (SQLite +
//! local directory) or on the scale-out backends (PostgreSQL + S3 from the environment).
#![allow(dead_code)]

pub mod grains;
pub mod media;

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
    pub rtmp_port: u16,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        Self::start_with_env(config, &[]).await
    }

    /// Starts an instance with this configuration and extra environment variables.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Drey {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let rtmp_port = free_port();
        std::fs::write(dir.path().join("drey.toml"), config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::spawn(dir.path(), port, rtmp_port, &env);
        let d = Drey {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            rtmp_port,
            dir,
            env,
        };
        d.wait_ready().await;
        d
    }

    /// The RTMP publish URL of a stream key on this instance.
    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp_port)
    }

    /// Runs another `drey` subcommand against this instance's store (its configuration
    /// and data directory), returning its exit status and stderr.
    pub fn run_cli(&self, args: &[&str]) -> (bool, String) {
        let (ok, _, err) = self.run_cli_output(args);
        (ok, err)
    }

    /// A `drey` subcommand against this instance's store, to spawn.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drey"));
        c.args(args)
            .arg("--config")
            .arg(self.dir.path().join("drey.toml"))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .env("DREY_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// As `run_cli`, with standard output too: (success, stdout, stderr).
    pub fn run_cli_output(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cli_command(args).output().expect("run drey");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn spawn(dir: &std::path::Path, port: u16, rtmp_port: u16, env: &[(String, String)]) -> Child {
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
            .arg("--rtmp")
            .arg(format!("127.0.0.1:{rtmp_port}"))
            .env("DREY_LOG", "info,sqlx=warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
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

    /// Starts the process again on the same data, configuration and port. The ports were
    /// free when the test began, but after a kill another process's outgoing connection
    /// may hold one of them for a while as its ephemeral port: a start that fails to bind
    /// is tried again.
    pub async fn restart(&mut self) {
        for _ in 0..20 {
            let logged = self.log().len();
            self.child = Self::spawn(self.dir.path(), self.port, self.rtmp_port, &self.env);
            let deadline = Instant::now() + Duration::from_secs(30);
            let client = reqwest::Client::new();
            loop {
                if let Ok(r) = client.get(format!("{}/service", self.base)).send().await
                    && r.status() == 200
                {
                    return;
                }
                if let Ok(Some(_)) = self.child.try_wait() {
                    let said = self.log().get(logged..).unwrap_or_default().to_owned();
                    assert!(
                        said.contains("Address already in use"),
                        "drey exited on restart: {said}"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "drey did not become ready: {}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("drey could not bind its ports again: {}", self.log());
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

/// A RADOS Gateway of a test's own on the shared test cluster (same users and buckets), so
/// the test can stop and start "the S3 server" without disturbing other tests.
pub struct Gateway {
    child: Option<Child>,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Gateway {
    pub async fn start() -> Option<Gateway> {
        let dir = std::path::PathBuf::from(drey::testing::rgw_dir()?);
        let mut g = Gateway {
            child: None,
            port: free_port(),
            dir,
        };
        g.resume().await;
        Some(g)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the gateway (SIGKILL): connections are refused until `resume`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the gateway on its port and waits until it answers S3 requests.
    pub async fn resume(&mut self) {
        let name = format!("rgw{}", self.port);
        let child = Command::new("radosgw")
            .arg("-c")
            .arg(self.dir.join("ceph.conf"))
            .args(["-n", "client.rgw.drey", "-f"])
            .arg("--rgw-frontends")
            .arg(format!("beast endpoint=127.0.0.1:{}", self.port))
            .arg("--rgw-data")
            .arg(self.dir.join(&name))
            .arg("--admin-socket")
            .arg(self.dir.join(format!("run/{name}.asok")))
            .arg("--log-file")
            .arg(self.dir.join(format!("log/{name}.log")))
            .arg("--pid-file")
            .arg(self.dir.join(format!("run/{name}.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn radosgw");
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = client.get(self.endpoint()).send().await
                && r.text()
                    .await
                    .is_ok_and(|b| b.contains("ListAllMyBucketsResult"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "private radosgw did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
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
