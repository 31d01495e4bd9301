//! Several Herald nodes for the multi-node tests: a `redis-server` and (for the restart
//! test) a PostgreSQL server of the test's own, and a cluster of `herald` processes on one
//! database with one tenant.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use tempfile::TempDir;

use super::process::ServerProcess;
use super::sse_client::SseStream;
use super::{TestTenant, fresh_database_url, postgres_server, skip_unless_ci};

/// A port nothing listens on now, for a server the test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` of the test's own on a free port, without persistence.
pub struct Redis {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Redis {
    /// Whether `redis-server` is installed; says why `what` is skipped when it is not.
    pub fn can_run(what: &str) -> bool {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        if !installed {
            skip_unless_ci(what, "redis-server is not installed");
        }
        installed
    }

    pub fn start() -> Redis {
        let port = free_port();
        let dir = TempDir::new().unwrap();
        let child = Redis::spawn(port, &dir);
        Redis {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn spawn(port: u16, dir: &TempDir) -> Child {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "redis-server never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to the subscribed nodes.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.child = Redis::spawn(self.port, &self._dir);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL 15 server of the test's own (Debian's binaries, run as `postgres`), so the
/// test can stop and start it.
pub struct Postgres {
    dir: TempDir,
    port: u16,
}

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Postgres {
    /// Why a PostgreSQL of the test's own cannot run here, if it cannot.
    pub fn cannot_run() -> Option<&'static str> {
        if !std::path::Path::new(PG_BIN).join("initdb").exists() {
            Some("no PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin")
        } else if Command::new("id")
            .arg("postgres")
            .output()
            .map_or(true, |o| !o.status.success())
        {
            Some("no postgres user to run a private server as")
        } else {
            None
        }
    }

    pub fn start() -> Postgres {
        Postgres::start_in(&std::env::temp_dir())
    }

    /// A server whose data directory is under `parent` (a file system the test controls).
    pub fn start_in(parent: &std::path::Path) -> Postgres {
        let port = free_port();
        let dir = TempDir::new_in(parent).unwrap();
        let path = dir.path().display().to_string();
        as_postgres(&format!("chown postgres {path}"), true);
        as_postgres(
            &format!("{PG_BIN}/initdb -D {path}/data -A trust -U postgres"),
            false,
        );
        let postgres = Postgres { dir, port };
        postgres.up();
        postgres
    }

    pub fn up(&self) {
        let path = self.dir.path().display();
        as_postgres(
            &format!(
                "{PG_BIN}/pg_ctl -D {path}/data -l {path}/log -w start -o '-p {} -k {path} -c listen_addresses=127.0.0.1'",
                self.port
            ),
            false,
        );
    }

    pub fn down(&self) {
        let path = self.dir.path().display();
        as_postgres(
            &format!("{PG_BIN}/pg_ctl -D {path}/data -m fast -w stop"),
            false,
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: sessions are ended and the server comes back.
    pub fn restart(&self) {
        let path = self.dir.path().display();
        as_postgres(
            &format!(
                "{PG_BIN}/pg_ctl -D {path}/data -l {path}/log -m fast -w restart -o '-p {} -k {path} -c listen_addresses=127.0.0.1'",
                self.port
            ),
            false,
        );
    }

    /// SIGKILL to the postmaster and every backend: no shutdown, crash recovery on `up`.
    pub fn kill(&self) {
        let pid = self.postmaster_pid().expect("PostgreSQL is running");
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &pid.to_string()])
            .status();
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let began = Instant::now();
        while self.is_running() {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "PostgreSQL outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the postmaster named in `postmaster.pid` is alive.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid()
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        file.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let path = self.dir.path().display();
        let _ = Command::new("su")
            .args(["postgres", "-c"])
            .arg(format!("{PG_BIN}/pg_ctl -D {path}/data -m immediate stop"))
            .output();
    }
}

/// Runs `command` as the `postgres` user (initdb refuses root), or as root where `as_root`.
pub fn as_postgres(command: &str, as_root: bool) {
    let output = if as_root {
        Command::new("sh").args(["-c", command]).output()
    } else {
        Command::new("su")
            .args(["postgres", "-c", command])
            .output()
    }
    .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct Cluster {
    pub nodes: Vec<ServerProcess>,
    pub redis: Redis,
    /// `acme`, made through node 0, and a token for its user `u1`.
    pub tenant: TestTenant,
    pub token: String,
}

impl Cluster {
    /// `u1`'s stream on node `node`, from `last_event_id` if given.
    pub async fn stream(&self, node: usize, last_event_id: Option<&str>) -> SseStream {
        self.nodes[node]
            .open_stream(&self.tenant, &self.token, "", last_event_id)
            .await
    }

    pub async fn publish(&self, node: usize, body: &Value) {
        self.nodes[node]
            .publish_ok(&self.tenant.api_key, body)
            .await;
    }
}

/// `count` nodes started at once (so they migrate the fresh database together) on one
/// PostgreSQL database and one Redis, with one tenant; `None`, after saying why, where
/// either is missing.
pub async fn cluster(count: usize) -> Option<Cluster> {
    cluster_with(count, &[]).await
}

/// As `cluster`, each node with `extra_env` too.
pub async fn cluster_with(count: usize, extra_env: &[(&str, &str)]) -> Option<Cluster> {
    if postgres_server().is_none() {
        // Nodes share a PostgreSQL database: these run in the suite's PostgreSQL pass.
        eprintln!("skipped: several nodes need PostgreSQL (HERALD_TEST_POSTGRES is not set)");
        return None;
    }
    if !Redis::can_run("multi-node tests") {
        return None;
    }
    let redis = Redis::start();
    let scratch = TempDir::new().unwrap();
    let database = fresh_database_url(scratch.path()).await;
    let redis_url = redis.url();
    let mut env = vec![
        ("HERALD__REDIS__URL", redis_url.as_str()),
        ("HERALD__REDIS__CATCH_UP_SECS", "1"),
    ];
    env.extend_from_slice(extra_env);
    let nodes = join_all(
        (0..count).map(|_| ServerProcess::start_on(&database, TempDir::new().unwrap(), &env)),
    )
    .await;
    for node in &nodes {
        wait_until_ready(node, "ready").await;
    }
    let tenant = nodes[0].create_tenant("acme").await;
    let token = tenant.token("u1", &[]);
    Some(Cluster {
        nodes,
        redis,
        tenant,
        token,
    })
}

/// Waits until `/readyz` says `status` (`ready`, `degraded` or `unavailable`); returns
/// its body.
pub async fn wait_until_ready(node: &ServerProcess, status: &str) -> Value {
    wait_for_readiness(node, |body| body["status"] == status).await
}

/// Waits until `/readyz`'s body satisfies `done`; returns it.
pub async fn wait_for_readiness(node: &ServerProcess, done: impl Fn(&Value) -> bool) -> Value {
    let began = Instant::now();
    loop {
        let response = node.client.get(node.url("/readyz")).send().await.unwrap();
        let code = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        // Only a node whose database is gone leaves the load balancer.
        assert_eq!(
            code == 503,
            body["status"] == "unavailable",
            "{code} {body}"
        );
        if done(&body) {
            return body;
        }
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "readyz still {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
