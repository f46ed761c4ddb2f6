//! namerd as a child process on a given store, to be killed and restarted
//! on the same config, and the stores it can run on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::process::{Process, free_port};
use crate::servers::{Etcd, ZooKeeper};

/// The dtab stores the chaos runs cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `io.switchboard.disk`, namerd's default.
    Disk,
    /// `io.l5d.etcd`.
    Etcd,
    /// `io.l5d.zk`.
    ZooKeeper,
}

impl Store {
    /// Every store.
    pub const ALL: [Store; 3] = [Store::Disk, Store::Etcd, Store::ZooKeeper];

    /// The store's `kind` in namerd's config.
    pub fn kind(self) -> &'static str {
        match self {
            Store::Disk => "io.switchboard.disk",
            Store::Etcd => "io.l5d.etcd",
            Store::ZooKeeper => "io.l5d.zk",
        }
    }

    /// A short name: `disk`, `etcd` or `zk`.
    pub fn name(self) -> &'static str {
        match self {
            Store::Disk => "disk",
            Store::Etcd => "etcd",
            Store::ZooKeeper => "zk",
        }
    }

    /// The store of a short name.
    pub fn from_name(name: &str) -> Option<Store> {
        Store::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What a store keeps its data in: a directory, or a running server.
pub enum Backend {
    /// The disk store's directory.
    Disk(tempfile::TempDir),
    /// An etcd server.
    Etcd(Etcd),
    /// A ZooKeeper server.
    ZooKeeper(ZooKeeper),
}

impl Backend {
    /// A fresh backend for `store`; `None` (after a `SKIPPED:` line) when
    /// its server is not installed, as [`crate::servers`] decides.
    pub fn start(store: Store) -> Option<Backend> {
        match store {
            Store::Disk => match tempfile::Builder::new().prefix("dtab-store-").tempdir() {
                Ok(dir) => Some(Backend::Disk(dir)),
                Err(e) => panic!("cannot create a temporary directory: {e}"),
            },
            Store::Etcd => Etcd::start().map(Backend::Etcd),
            Store::ZooKeeper => ZooKeeper::start().map(Backend::ZooKeeper),
        }
    }

    /// The `storage:` block of a namerd config using this backend, under
    /// `prefix` for the remote stores. Two namerds may share an etcd or a
    /// ZooKeeper backend, but not a disk store (its lock refuses a second).
    pub fn storage_yaml(&self, prefix: &str) -> String {
        match self {
            Backend::Disk(dir) => format!(
                "storage:\n  kind: io.switchboard.disk\n  dir: {}\n",
                dir.path().display()
            ),
            Backend::Etcd(etcd) => format!(
                "storage:\n  kind: io.l5d.etcd\n  host: 127.0.0.1\n  port: {}\n  pathPrefix: {prefix}\n",
                etcd.port()
            ),
            Backend::ZooKeeper(zk) => format!(
                "storage:\n  kind: io.l5d.zk\n  zkAddrs:\n  - host: 127.0.0.1\n    port: {}\n  pathPrefix: {prefix}\n",
                zk.port()
            ),
        }
    }

    /// Kills the server (like a crash; its data stays). Panics for the disk
    /// store, which has no server.
    pub fn stop(&mut self) {
        match self {
            Backend::Disk(_) => panic!("the disk store has no server to stop"),
            Backend::Etcd(etcd) => etcd.stop(),
            Backend::ZooKeeper(zk) => zk.stop(),
        }
    }

    /// Starts the server again on the same port and data, and waits until
    /// it serves. Panics for the disk store.
    pub fn restart(&mut self) {
        match self {
            Backend::Disk(_) => panic!("the disk store has no server to restart"),
            Backend::Etcd(etcd) => etcd.restart(),
            Backend::ZooKeeper(zk) => zk.restart(),
        }
    }

    /// The server's log, for failure messages (empty for the disk store).
    pub fn log(&self) -> String {
        match self {
            Backend::Disk(_) => String::new(),
            Backend::Etcd(etcd) => etcd.log(),
            Backend::ZooKeeper(zk) => zk.log(),
        }
    }
}

/// A namerd child process with its config, which can be killed and
/// started again on the same config (same ports, same store).
///
/// Starting waits, blocking the thread, until the API port listens; from
/// async code, call it inside `tokio::task::block_in_place` on a
/// multi-threaded runtime.
pub struct Namerd {
    binary: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    api: SocketAddr,
    process: Option<Process>,
}

impl Namerd {
    /// Starts `binary` (a `namerd`) with `storage_yaml` and an HTTP API on
    /// a free port of 127.0.0.1.
    pub fn start(binary: &Path, storage_yaml: &str) -> Namerd {
        let dir = match tempfile::Builder::new().prefix("namerd-").tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let port = free_port();
        let config = dir.path().join("namerd.yaml");
        let text = format!(
            "admin:\n  ip: 127.0.0.1\n  port: {admin}\n{storage_yaml}interfaces:\n- kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: {port}\n",
            admin = free_port(),
        );
        if let Err(e) = std::fs::write(&config, text) {
            panic!("cannot write {}: {e}", config.display());
        }
        let mut namerd = Namerd {
            binary: binary.to_path_buf(),
            dir,
            config,
            api: SocketAddr::from(([127, 0, 0, 1], port)),
            process: None,
        };
        namerd.restart();
        namerd
    }

    /// The address of its HTTP API.
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    /// Whether it runs (was not killed).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills it with SIGKILL, like a crash, and reaps it.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it (again) on the same config, killing it first if it runs,
    /// and waits until its API listens.
    pub fn restart(&mut self) {
        self.kill();
        let Some(config) = self.config.to_str() else {
            panic!("the config path {} is not UTF-8", self.config.display());
        };
        // Its ports were free when picked, but while it is down another
        // test's outgoing connection may hold one for a moment: a start
        // that fails only for that is tried again.
        let mut last = String::new();
        for _ in 0..20 {
            let mut process = Process::start(&self.binary, &[config], self.dir.path());
            match process.listening_or_exited(self.api) {
                Ok(()) => {
                    self.process = Some(process);
                    return;
                }
                Err(exited) if exited.contains("Address already in use") => {
                    last = exited;
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(exited) => panic!("{exited}"),
            }
        }
        panic!("namerd's ports stayed taken for 5 s; the last try: {last}");
    }

    /// What the running process has logged so far.
    pub fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }
}
