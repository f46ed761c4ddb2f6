//! Child processes that die with the harness, and the work directory
//! their configs and logs go to.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::harness::signal_group;

/// Process groups of the children still running, for the signal handler.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The work directory, removed by the signal handler unless kept.
static WORKDIR: OnceLock<(PathBuf, bool)> = OnceLock::new();

/// A child process in its own process group, stopped (with its whole
/// group) when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Proc {
    /// Starts `command` with its output going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Proc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // Hold the lock while spawning so that a signal cannot slip between
        // the spawn and the registration.
        let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        groups.push(child.id());
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    /// The process id, which is also its group's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its output goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails with the end of the log if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.stopped = true;
                unregister(self.pid());
                bail!(
                    "{} exited ({status}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                )
            }
            Err(e) => Err(anyhow!("{}: {e}", self.name)),
        }
    }

    /// How it exited, if it has; an exited process is forgotten by the
    /// signal handler.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.stopped = true;
            unregister(self.pid());
        }
        Ok(status)
    }

    /// SIGTERM to the group, then SIGKILL if it has not exited in 3 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.pid();
        signal_group(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    signal_group(pid, "KILL");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        unregister(pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unregister(pid: u32) {
    GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|&g| g != pid);
}

/// The last 15 lines of a log.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Stops every child and exits on Ctrl-C, SIGTERM or SIGHUP.
pub fn install_signal_handler() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term, mut hup) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        });
        eprintln!("\ninterrupted: stopping the child processes");
        let groups = GROUPS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for &g in &groups {
            signal_group(g, "TERM");
        }
        std::thread::sleep(Duration::from_millis(500));
        for &g in &groups {
            signal_group(g, "KILL");
        }
        if let Some((dir, keep)) = WORKDIR.get()
            && !keep
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
    Ok(())
}

/// The work directory, removed on drop unless kept.
pub struct WorkDir {
    /// Where it is.
    pub path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// A new directory `<tmp>/<prefix>-<pid>-<n>`, which the signal
    /// handler removes too.
    pub fn create(prefix: &str, keep: bool) -> Result<WorkDir> {
        let base = std::env::temp_dir();
        for attempt in 0..100 {
            let path = base.join(format!("{prefix}-{}-{attempt}", std::process::id()));
            if std::fs::create_dir(&path).is_ok() {
                let _ = WORKDIR.set((path.clone(), keep));
                return Ok(WorkDir { path, keep });
            }
        }
        bail!("cannot create a work directory in {}", base.display())
    }

    /// The path of `name` in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("work directory kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs a load client (`command`, named `what` in errors) that prints its
/// result as a JSON line, waiting up to `secs` + 30 s for it, and samples
/// the resident memory of process group `target_group` meanwhile: the
/// client's last JSON line and the peak RSS in KiB.
pub fn run_json_client(
    what: &str,
    command: Command,
    log: &Path,
    secs: u64,
    target_group: u32,
) -> Result<(serde_json::Value, u64)> {
    let mut client = Proc::spawn(what, command, log)?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let mut peak = 0;
    let status = loop {
        peak = peak.max(crate::load::sys::group_rss_kib(target_group));
        if let Some(status) = client.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!("the {what} did not finish within {secs} s + 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(log)?;
    if !status.success() {
        bail!("the {what} failed ({status}):\n{output}");
    }
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("no result from the {what}:\n{output}"))?;
    Ok((serde_json::from_str(line)?, peak))
}
