use std::collections::BTreeMap;
use std::fs;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::store::contract::check_store;

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> Dtab {
    Dtab::read(text).unwrap()
}

fn dtabs_dir(dir: &Path) -> PathBuf {
    dir.join("dtabs")
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dtabs_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Opens a store that was just closed, waiting while it still looks locked:
/// a child process that some test spawns holds a copy of every open file,
/// the lock file included, between its fork and its exec.
fn reopen(dir: &Path) -> Result<DiskStore, DiskError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match DiskStore::open(dir) {
            Err(DiskError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

#[tokio::test]
async fn keeps_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DiskStore::open(tmp.path()).unwrap();
    check_store(&store, "").await;
}

#[tokio::test]
async fn a_reopened_store_has_the_same_dtabs_and_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let config: DiskConfig =
        serde_json::from_value(serde_json::json!({ "dir": tmp.path() })).unwrap();
    let before = {
        let store = config.open().unwrap();
        let v1 = store
            .create(&ns("a"), &dtab("/svc=>/#/io.l5d.fs"))
            .await
            .unwrap();
        store
            .update(
                &ns("a"),
                &dtab("/svc=>/#/io.l5d.fs;/svc/web=>/a | 2*/b & /c"),
                &v1,
            )
            .await
            .unwrap();
        store
            .put(&ns("weights"), &dtab("/a=>0.125*/b & 1.005*/c"))
            .await
            .unwrap();
        store.put(&ns("empty"), &Dtab::empty()).await.unwrap();
        store.put(&ns("gone"), &dtab("/x=>/y")).await.unwrap();
        store.delete(&ns("gone")).await.unwrap();
        let mut before = BTreeMap::new();
        for name in store.list().await.unwrap() {
            before.insert(name.clone(), store.get(&name).await.unwrap().unwrap());
        }
        before
    };
    assert_eq!(before.len(), 3);

    let store = reopen(&config.dir).unwrap();
    let mut after = BTreeMap::new();
    for name in store.list().await.unwrap() {
        after.insert(name.clone(), store.get(&name).await.unwrap().unwrap());
    }
    // Equal as values: 0.125 and 1.005 are not rounded to two decimals.
    assert_eq!(after, before);
    assert_eq!(after[&ns("a")].version, Version::from_u64(2));
    assert_eq!(store.get(&ns("gone")).await.unwrap(), None);
    // Compare-and-set goes on from the stored version.
    let v3 = store
        .update(&ns("a"), &Dtab::empty(), &before[&ns("a")].version)
        .await
        .unwrap();
    assert_eq!(v3, Version::from_u64(3));
}

#[tokio::test]
async fn versions_are_never_reused_after_a_delete_even_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DiskStore::open(tmp.path()).unwrap();
    let a = ns("a");
    let v1 = store.create(&a, &dtab("/a=>/b")).await.unwrap();
    store.delete(&a).await.unwrap();
    let v3 = store.create(&a, &dtab("/a=>/c")).await.unwrap();
    assert_eq!(v3, Version::from_u64(3), "the delete took version 2");
    assert_eq!(
        store.update(&a, &dtab("/a=>/stale"), &v1).await,
        Err(StoreError::VersionMismatch(a.clone()))
    );
    store.delete(&a).await.unwrap();
    drop(store);

    let store = reopen(tmp.path()).unwrap();
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
    let v5 = store.create(&a, &dtab("/a=>/d")).await.unwrap();
    assert_eq!(v5, Version::from_u64(5));
}

#[tokio::test]
async fn files_are_readable_dtab_text() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DiskStore::open(tmp.path()).unwrap();
    store
        .put(
            &ns("default"),
            &dtab("/svc => /#/io.l5d.fs; /svc/web => /a | /b"),
        )
        .await
        .unwrap();
    let path = tmp.path().join("dtabs/default.dtab");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "# version: 1\n/svc=>/#/io.l5d.fs;\n/svc/web=>/a | /b;\n"
    );
    assert_eq!(
        Dtab::read(&text).unwrap(),
        dtab("/svc=>/#/io.l5d.fs;/svc/web=>/a | /b")
    );
    store.delete(&ns("default")).await.unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "# version: 2\n# deleted\n"
    );
    assert_eq!(file_names(tmp.path()), ["default.dtab"]);
    let lock = fs::read_to_string(tmp.path().join("lock")).unwrap();
    assert_eq!(lock.trim(), std::process::id().to_string());
}

#[tokio::test]
async fn a_dtab_that_cannot_be_stored_exactly_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DiskStore::open(tmp.path()).unwrap();
    let watch = store.watch(&ns("a"));
    // An infinite weight has no text (the parser refuses one; code can
    // still build it).
    let infinite = Dtab::new(vec![dtab::Dentry::new(
        dtab::Prefix::read("/a").unwrap(),
        dtab::NameTree::Union(vec![
            dtab::Weighted::new(f64::INFINITY, dtab::NameTree::read("/b").unwrap()),
            dtab::Weighted::new(1.0, dtab::NameTree::read("/c").unwrap()),
        ]),
    )]);
    let err = store.put(&ns("a"), &infinite).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("namespace a")),
        "{err}"
    );
    assert_eq!(store.get(&ns("a")).await.unwrap(), None);
    assert_eq!(*watch.load(), Activity::Ok(None));
    assert!(file_names(tmp.path()).is_empty());
    // The refusal used no version.
    assert_eq!(
        store.put(&ns("a"), &dtab("/a=>/b")).await,
        Ok(Version::from_u64(1))
    );
}

#[tokio::test]
async fn a_failed_write_changes_nothing_and_uses_up_its_version() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DiskStore::open(tmp.path()).unwrap();
    let a = ns("a");
    let v1 = store.put(&a, &dtab("/a=>/b")).await.unwrap();
    let mut watch = store.watch(&a);
    watch.mark_seen();
    // A directory where the temp file goes makes the write fail.
    let in_the_way = dtabs_dir(tmp.path()).join("a.dtab.tmp");
    fs::create_dir(&in_the_way).unwrap();
    let err = store.update(&a, &dtab("/a=>/c"), &v1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("a.dtab.tmp") && m.contains("it was not stored")),
        "{err}"
    );
    let current = store.get(&a).await.unwrap().unwrap();
    assert_eq!(
        (current.dtab.show(), &current.version),
        ("/a=>/b".to_string(), &v1)
    );
    assert_eq!(
        fs::read_to_string(dtabs_dir(tmp.path()).join("a.dtab")).unwrap(),
        "# version: 1\n/a=>/b;\n"
    );
    let nothing = tokio::time::timeout(Duration::from_millis(50), watch.changed()).await;
    assert!(nothing.is_err(), "a failed write reached a watch");
    // Once the way is clear, writes go on, past the version the failure took.
    fs::remove_dir(&in_the_way).unwrap();
    let v3 = store.update(&a, &dtab("/a=>/c"), &v1).await.unwrap();
    assert_eq!(v3, Version::from_u64(3));
}

#[tokio::test]
async fn temp_files_left_by_a_crash_are_removed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(tmp.path()).unwrap();
        store.put(&ns("a"), &dtab("/a=>/b")).await.unwrap();
    }
    let dtabs = dtabs_dir(tmp.path());
    fs::write(dtabs.join("a.dtab.tmp"), "# version: 2\n/a=>/half").unwrap();
    fs::write(dtabs.join("b.dtab.tmp"), "").unwrap();
    fs::write(dtabs.join("notes.txt"), "an operator's notes").unwrap();

    let store = reopen(tmp.path()).unwrap();
    assert_eq!(file_names(tmp.path()), ["a.dtab", "notes.txt"]);
    let a = store.get(&ns("a")).await.unwrap().unwrap();
    assert_eq!(
        (a.dtab.show(), a.version),
        ("/a=>/b".to_string(), Version::from_u64(1))
    );
    assert_eq!(store.get(&ns("b")).await.unwrap(), None);
}

#[test]
fn an_unreadable_file_stops_the_store_from_opening_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    drop(DiskStore::open(tmp.path()).unwrap());
    let dtabs = dtabs_dir(tmp.path());
    fs::write(dtabs.join("good.dtab"), "# version: 1\n/a=>/b;\n").unwrap();
    fs::write(
        dtabs.join("bad.dtab"),
        "# version: 3\n/svc=>/a;\n/web=>>/b;\n",
    )
    .unwrap();
    fs::write(dtabs.join("headless.dtab"), "/a=>/b;\n").unwrap();
    fs::write(dtabs.join("not a name.dtab"), "# version: 1\n").unwrap();

    let err = reopen(tmp.path()).err().unwrap();
    let DiskError::Unreadable { files, .. } = &err else {
        panic!("{err}")
    };
    let names: Vec<_> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["bad.dtab", "headless.dtab", "not a name.dtab"]);
    let message = err.to_string();
    for expected in [
        "bad.dtab: expected a name tree",
        "at 3:",
        "headless.dtab: expected a first line",
        "not a name.dtab: not a namespace file name",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    // Nothing was changed: fixing the files is enough.
    fs::remove_file(dtabs.join("bad.dtab")).unwrap();
    fs::remove_file(dtabs.join("headless.dtab")).unwrap();
    fs::remove_file(dtabs.join("not a name.dtab")).unwrap();
    assert!(reopen(tmp.path()).is_ok());
}

#[test]
fn a_second_open_of_one_directory_fails_until_the_first_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let first = DiskStore::open(tmp.path()).unwrap();
    let err = DiskStore::open(tmp.path()).err().unwrap();
    assert!(matches!(err, DiskError::Locked { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("in use by another process")
            && message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    drop(first);
    assert!(reopen(tmp.path()).is_ok());
}

#[test]
fn a_missing_directory_is_created_and_bad_configs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x/y");
    drop(DiskStore::open(&dir).unwrap());
    assert!(dir.join("dtabs").is_dir() && dir.join("lock").is_file());
    let err =
        serde_json::from_value::<DiskConfig>(serde_json::json!({ "dir": "/d", "fsync": false }))
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `fsync`"), "{err}");
    assert!(serde_json::from_value::<DiskConfig>(serde_json::json!({})).is_err());
    let empty: DiskConfig = serde_json::from_value(serde_json::json!({ "dir": "" })).unwrap();
    assert!(matches!(empty.open(), Err(DiskError::EmptyPath)));
}

// ---------------------------------------------------------------------------
// Crash consistency: a child process writes in a loop and is killed with
// SIGKILL at a random moment; every write it acknowledged must be on disk.
// ---------------------------------------------------------------------------

/// Set (to the store's directory) in the child only.
const WRITER_DIR: &str = "SWITCHBOARD_DISK_CRASH_WRITER_DIR";
const WRITER_NAMESPACES: u64 = 4;
/// Starts each line the child prints for an acknowledged write.
const ACK_MARKER: &str = "ACK ";

/// The child. As an ordinary test it does nothing.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(write_until_killed(PathBuf::from(dir)));
}

/// Writes one namespace after another, printing each acknowledged write:
/// `ACK <i> put <ns> <version> <dtab>` or `ACK <i> del <ns> <deleted
/// version>`, where `i` counts the writes from 0.
async fn write_until_killed(dir: PathBuf) {
    let store = reopen(&dir).unwrap();
    let started = Instant::now();
    let mut known = BTreeMap::new();
    for i in 0..WRITER_NAMESPACES {
        let name = ns(&format!("ns{i}"));
        let current = store.get(&name).await.unwrap().map(|d| d.version);
        known.insert(name, current);
    }
    // A safety net in case the parent never kills us.
    for i in 0u64.. {
        if started.elapsed() > Duration::from_secs(60) {
            return;
        }
        let name = ns(&format!("ns{}", i % WRITER_NAMESPACES));
        let text = format!("/svc=>/#/io.l5d.fs/{i};/svc/{name}=>/$/inet/127.0.0.1/{i}");
        let current = known[&name].clone();
        let line = match current {
            Some(v) if i % 7 == 3 => {
                store.delete(&name).await.unwrap();
                known.insert(name.clone(), None);
                format!("del {name} {}", v.to_u64().unwrap())
            }
            Some(v) if i % 3 == 0 => {
                let v = store.update(&name, &dtab(&text), &v).await.unwrap();
                known.insert(name.clone(), Some(v.clone()));
                format!("put {name} {} {text}", v.to_u64().unwrap())
            }
            Some(_) => {
                let v = store.put(&name, &dtab(&text)).await.unwrap();
                known.insert(name.clone(), Some(v.clone()));
                format!("put {name} {} {text}", v.to_u64().unwrap())
            }
            None => {
                let v = store.create(&name, &dtab(&text)).await.unwrap();
                known.insert(name.clone(), Some(v.clone()));
                format!("put {name} {} {text}", v.to_u64().unwrap())
            }
        };
        // Printed only once the write is acknowledged. The marker finds it
        // even after the test harness's own "test ... " on the same line.
        println!("{ACK_MARKER}{i} {line}");
    }
}

/// An acknowledged write, as the child printed it.
#[derive(Clone, Debug)]
enum Ack {
    Put { version: u64, text: String },
    Deleted { version: u64 },
}

impl Ack {
    /// The write's number, namespace and outcome.
    fn parse(line: &str) -> Option<(u64, String, Ack)> {
        let (_, line) = line.split_once(ACK_MARKER)?;
        let (seq, line) = line.split_once(' ')?;
        let seq = seq.parse().ok()?;
        let mut parts = line.splitn(4, ' ');
        let kind = parts.next()?;
        let name = parts.next()?.to_string();
        let version = parts.next()?.parse().ok()?;
        match (kind, parts.next()) {
            ("put", Some(text)) => Some((
                seq,
                name,
                Ack::Put {
                    version,
                    text: text.to_string(),
                },
            )),
            ("del", None) => Some((seq, name, Ack::Deleted { version })),
            _ => None,
        }
    }

    /// The version of the file this write left.
    fn file_version(&self) -> u64 {
        match self {
            Ack::Put { version, .. } => *version,
            // The delete's tombstone takes the next version.
            Ack::Deleted { version } => version + 1,
        }
    }
}

/// Kills the child on every way out of the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_below(n: u64) -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % n
}

/// Runs the child until it has acknowledged a few writes, SIGKILLs it at a
/// random moment, and returns the writes it acknowledged (whole lines only).
fn run_and_kill_writer(dir: &Path) -> Vec<(String, Ack)> {
    let test_name = format!(
        "{}::crash_writer_child",
        module_path!().split_once("::").unwrap().1
    );
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            test_name.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DIR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                // A line cut short by the kill was never fully printed.
                Ok(0) | Err(_) => return,
                Ok(_) if line.last() != Some(&b'\n') => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    if tx.send(text).is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for the first acknowledgement, then let it run a random while.
    while !lines.iter().any(|l: &String| Ack::parse(l).is_some()) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                let _ = child.0.kill();
                let mut errors = String::new();
                let _ = stderr.read_to_string(&mut errors);
                panic!("the writer acknowledged nothing; stdout: {lines:?}; stderr: {errors}");
            }
        }
    }
    std::thread::sleep(Duration::from_millis(20 + random_below(300)));
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the writer was not killed: {status}");
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let acks: Vec<_> = lines.iter().filter_map(|l| Ack::parse(l)).collect();
    // No acknowledgement went missing on the way (only the last may be cut).
    let seqs: Vec<u64> = acks.iter().map(|(seq, ..)| *seq).collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "{lines:?}"
    );
    acks.into_iter().map(|(_, name, ack)| (name, ack)).collect()
}

#[tokio::test]
async fn acknowledged_writes_survive_a_sigkill_at_any_moment() {
    if std::env::var_os(WRITER_DIR).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dtabs = dtabs_dir(tmp.path());
    // Per namespace, what its file must hold: the version and the dtab
    // (`None` once deleted) of the last acknowledged write, or of what the
    // previous check found.
    let mut expected: BTreeMap<String, (u64, Option<String>)> = BTreeMap::new();
    let mut total = 0;
    let mut rounds_with_temp = 0;
    let rounds = 6;
    for round in 0..rounds {
        let acks = run_and_kill_writer(tmp.path());
        assert!(!acks.is_empty(), "round {round}: no acknowledged writes");
        total += acks.len();
        for (name, ack) in acks {
            let version = ack.file_version();
            // Versions go on rising, across crashes too.
            if let Some((before, _)) = expected.get(&name) {
                assert!(
                    version > *before,
                    "round {round}: {name} acknowledged {ack:?} after version {before}"
                );
            }
            let dtab = match ack {
                Ack::Put { text, .. } => Some(text),
                Ack::Deleted { .. } => None,
            };
            expected.insert(name, (version, dtab));
        }
        rounds_with_temp += usize::from(
            fs::read_dir(&dtabs)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")),
        );

        // Every file reads (else the open fails) and temp files are gone.
        let store = reopen(tmp.path()).unwrap();
        assert!(
            file_names(tmp.path()).iter().all(|n| n.ends_with(".dtab")),
            "round {round}: {:?}",
            file_names(tmp.path())
        );
        // Each namespace holds its last acknowledged write, or the one
        // write after it that was in flight at the kill (one at most).
        let mut in_flight_landed = 0;
        for (name, (version, dtab)) in &mut expected {
            let text = fs::read_to_string(dtabs.join(format!("{name}.dtab"))).unwrap();
            let record = file::parse(&text).unwrap();
            let stored = store.get(&ns(name)).await.unwrap();
            assert_eq!(
                stored.map(|d| (d.version.to_u64().unwrap(), d.dtab)),
                record.dtab.clone().map(|d| (record.version, d)),
                "round {round}: {name}: the store serves what its file says"
            );
            let found = record.dtab.map(|d| d.show());
            if record.version == *version {
                assert_eq!(
                    &found, dtab,
                    "round {round}: {name}: wrong content at the acknowledged version"
                );
            } else {
                assert_eq!(
                    record.version,
                    *version + 1,
                    "round {round}: {name}: lost the acknowledged version {version}"
                );
                in_flight_landed += 1;
            }
            (*version, *dtab) = (record.version, found);
        }
        assert!(
            in_flight_landed <= 1,
            "round {round}: {in_flight_landed} unacknowledged writes landed; one at most was in flight"
        );
    }
    eprintln!(
        "{total} acknowledged writes over {rounds} kills; {rounds_with_temp} kills left a temp file"
    );
}
