//! Herald as its own process (`herald serve`), for what only a process shows: its memory,
//! its signals, its exit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{ADMIN_TOKEN, Api, fresh_database_url};
use crate::cli::{Build, herald_command_of};

pub struct ServerProcess {
    pub api: Api,
    pub child: Child,
    /// What it was started with, for `restart`.
    database_url: String,
    extra_env: Vec<(String, String)>,
    wrapper: Vec<String>,
    build: Build,
    dir: TempDir,
}

impl std::ops::Deref for ServerProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts `herald serve` on a free port with its own database; returns once it listens.
    pub async fn start(extra_env: &[(&str, &str)]) -> ServerProcess {
        let dir = TempDir::new().unwrap();
        let url = fresh_database_url(dir.path()).await;
        ServerProcess::start_on(&url, dir, extra_env).await
    }

    /// Starts `herald serve` on the database at `url` (several processes may share one).
    pub async fn start_on(url: &str, dir: TempDir, extra_env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start_under(&[], url, dir, extra_env).await
    }

    /// Starts `herald serve` run by `wrapper` (e.g. `fiu-run -x`, which keeps the pid).
    pub async fn start_under(
        wrapper: &[&str],
        url: &str,
        dir: TempDir,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        ServerProcess::start_build(&Build::tree(), wrapper, url, dir, extra_env).await
    }

    /// Starts `build`'s `herald serve` (another version's, for an upgrade).
    pub async fn start_build(
        build: &Build,
        wrapper: &[&str],
        url: &str,
        dir: TempDir,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut command = herald_command_of(build, wrapper, url);
        command
            .arg("serve")
            .env("HERALD__SERVER__PORT", "0")
            .env("HERALD__ADMIN__TOKEN", ADMIN_TOKEN)
            .env("HERALD__SEED__DEMO_TENANT", "false")
            .env("HERALD__DEMO__ENABLED", "false")
            // As `test_settings`: no test is held back by the default rate limit.
            .env("HERALD__TENANT_DEFAULTS__PUBLISH_PER_SEC", "1000000")
            .env("HERALD__TENANT_DEFAULTS__PUBLISH_BURST", "1000000")
            .env("HERALD__LOG__FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("herald starts");
        let stdout = child.stdout.take().unwrap();
        // The port is in the "listening" log line; the rest of the log is drained so the
        // server never blocks on a full pipe.
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["fields"]["message"] == "Herald is listening"
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(entry["fields"]["port"].as_u64().unwrap_or(0));
                }
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("herald reports its port");
        ServerProcess {
            api: Api {
                address: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::new(),
            },
            child,
            database_url: url.to_owned(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            wrapper: wrapper.iter().map(|w| w.to_string()).collect(),
            build: build.clone(),
            dir,
        }
    }

    /// Stops the process with `signal` (`KILL`, `TERM`) and starts it again on the same
    /// database with the same settings (on another port).
    pub async fn restart(self, signal: &str) -> ServerProcess {
        self.restart_after(signal, async {}).await
    }

    /// As `restart`, running `between` once the process is gone and before the new one
    /// starts (a database brought back, a lock released).
    pub async fn restart_after(
        mut self,
        signal: &str,
        between: impl std::future::Future<Output = ()>,
    ) -> ServerProcess {
        self.signal(signal);
        self.wait_for_exit(Duration::from_secs(15))
            .expect("herald exits");
        between.await;
        let (url, env, wrapper) = (
            std::mem::take(&mut self.database_url),
            std::mem::take(&mut self.extra_env),
            std::mem::take(&mut self.wrapper),
        );
        let dir = std::mem::replace(&mut self.dir, TempDir::new().unwrap());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        ServerProcess::start_build(&self.build, &wrapper, &url, dir, &env).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many file descriptors the server holds.
    /// Its open descriptors that are not files on disk (sockets, pollers, pipes): what a
    /// stream could leak. (The database pool opens files as its load asks, up to its size.)
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                    .filter(|target| !target.starts_with("/"))
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; `None` if it is still running after `wait`.
    pub fn wait_for_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let began = Instant::now();
        while began.elapsed() < wait {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}
