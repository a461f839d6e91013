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

/// The length of an instance's log so far (0 before it has one).
fn log_len(dir: &std::path::Path) -> usize {
    std::fs::metadata(dir.join("drey.log")).map_or(0, |m| m.len() as usize)
}

/// Waits until a just-spawned instance's own process says it is ready (so the port is its
/// own, not another instance's) and answers `/service`. `Err` with what it logged after
/// byte `logged` when the process exits first.
async fn wait_ready(
    child: &mut Child,
    port: u16,
    dir: &std::path::Path,
    logged: usize,
) -> Result<(), String> {
    let said = || {
        let log = std::fs::read_to_string(dir.join("drey.log")).unwrap_or_default();
        log.get(logged..).unwrap_or_default().to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        if said().contains("drey ready")
            && let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/service"))
                .send()
                .await
            && r.status() == 200
        {
            return Ok(());
        }
        if let Ok(Some(_)) = child.try_wait() {
            return Err(said());
        }
        assert!(
            Instant::now() < deadline,
            "drey did not become ready: {}",
            said()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

    /// Starts an instance with this configuration and extra environment variables. The
    /// ports come from `free_port`, so another test's instance, or an outgoing connection's
    /// ephemeral port, can take one before drey binds it: a start that fails to bind is
    /// tried again on new ports.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Drey {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("drey.toml"), config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for _ in 0..20 {
            let (port, rtmp_port) = (free_port(), free_port());
            let logged = log_len(dir.path());
            let mut child = Self::spawn(dir.path(), port, rtmp_port, &env);
            match wait_ready(&mut child, port, dir.path(), logged).await {
                Ok(()) => {
                    return Drey {
                        child,
                        base: format!("http://127.0.0.1:{port}"),
                        port,
                        rtmp_port,
                        dir,
                        env,
                    };
                }
                Err(said) => assert!(
                    said.contains("Address already in use"),
                    "drey exited at start: {said}"
                ),
            }
        }
        panic!("drey found no free ports in 20 tries");
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
            let logged = log_len(self.dir.path());
            self.child = Self::spawn(self.dir.path(), self.port, self.rtmp_port, &self.env);
            match wait_ready(&mut self.child, self.port, self.dir.path(), logged).await {
                Ok(()) => return,
                Err(said) => assert!(
                    said.contains("Address already in use"),
                    "drey exited on restart: {said}"
                ),
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
