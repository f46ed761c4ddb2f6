//! `dtab edit <ns>`: fetch the dtab, open it in an editor, check it, and
//! write it back only if nobody changed it meanwhile (`If-Match`).
//!
//! A file that does not parse is opened again with the error on top. If the
//! server's dtab changed during the edit, the change is shown and the user
//! may edit again on top of it; the edited text is kept.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;

use super::diff;
use super::format;
use super::input;
use super::{CtlError, Exit, emit};
use namerd::Namespace;
use namerd::client::{Client, ClientError};
use namerd::store::VersionedDtab;

/// The editor when `$EDITOR` is not set.
pub(crate) const DEFAULT_EDITOR: &str = "vi";

/// What `dtab edit` needs from the person at the terminal.
pub(crate) trait Terminal {
    /// Opens `path` in the editor and waits until it is closed.
    fn edit(&mut self, path: &Path) -> io::Result<()>;
    /// Asks a yes/no question; anything but yes is no.
    fn confirm(&mut self, question: &str) -> io::Result<bool>;
}

/// The real terminal: `$EDITOR` (run by `sh`, so it may carry flags, e.g.
/// `code --wait`) and questions on stderr answered on stdin.
pub(crate) struct SystemTerminal {
    editor: String,
}

impl SystemTerminal {
    /// Uses `editor`, or [`DEFAULT_EDITOR`] when it is unset or blank.
    pub(crate) fn new(editor: Option<String>) -> SystemTerminal {
        let editor = editor
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_EDITOR.to_string());
        SystemTerminal { editor }
    }
}

impl Terminal for SystemTerminal {
    fn edit(&mut self, path: &Path) -> io::Result<()> {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{} \"$1\"", self.editor))
            .arg("namerctl-editor")
            .arg(path)
            .status()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", self.editor)))?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "the editor ({}) exited with {status}",
                self.editor
            )))
        }
    }

    fn confirm(&mut self, question: &str) -> io::Result<bool> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Ok(false);
        }
        let mut stderr = io::stderr();
        write!(stderr, "{question} [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
    }
}

/// `dtab edit <ns>`.
///
/// The terminal calls block; that is fine here because nothing else runs
/// while a person edits.
pub(crate) async fn edit(
    client: &Client,
    ns: &Namespace,
    term: &mut dyn Terminal,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let mut base: VersionedDtab = client.get_dtab(ns).await?;
    let file = tempfile::Builder::new()
        .prefix(&format!("namerctl-{ns}-"))
        .suffix(".dtab")
        .tempfile()
        .map_err(|e| CtlError::io("cannot create a temporary file", &e))?;
    let path = file.path().to_path_buf();
    let mut body = format::pretty(&base.dtab);
    let mut notes: Vec<String> = Vec::new();
    loop {
        let written = format!("{}{body}", header(client, ns, &base, &notes));
        std::fs::write(&path, &written)
            .map_err(|e| CtlError::io(&format!("cannot write {}", path.display()), &e))?;
        term.edit(&path)
            .map_err(|e| CtlError::new(Exit::LocalIo, e.to_string()))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CtlError::io(&format!("cannot read {}", path.display()), &e))?;
        if input::is_blank(&text) {
            emit(err, "Edit cancelled: the file is empty.\n")?;
            return Ok(Exit::Ok);
        }
        body = strip_header(&text);
        let parsed = match input::parse(&path.display().to_string(), &text) {
            Ok(parsed) => parsed,
            Err(e) if text == written => {
                // Closed without touching the file after an error: give up.
                return Err(e.into());
            }
            Err(e) => {
                notes = vec![
                    "The dtab does not parse; fix it, or empty the file to cancel:".to_string(),
                ];
                notes.extend(e.to_string().lines().map(str::to_string));
                continue;
            }
        };
        if parsed.dtab.equiv(&base.dtab) {
            emit(err, "Edit cancelled: no changes.\n")?;
            return Ok(Exit::Ok);
        }
        match client
            .update_dtab(ns, &parsed.dtab, Some(&base.version))
            .await
        {
            Ok(_) => {
                emit(out, &format!("Updated {ns}\n"))?;
                return Ok(Exit::Ok);
            }
            Err(ClientError::Conflict { .. }) => {
                let latest = client.get_dtab(ns).await?;
                let changes = diff::diff(&base.dtab, &latest.dtab);
                let shown = diff::render(
                    &changes,
                    &format!("version {} (when you started)", base.version),
                    &format!("version {} (now on namerd)", latest.version),
                );
                emit(
                    err,
                    &format!("dtab {ns} was changed on namerd while you were editing:\n{shown}"),
                )?;
                let again = term
                    .confirm("Edit again on top of the new version (your text is kept)?")
                    .map_err(|e| CtlError::io("cannot read the answer", &e))?;
                if !again {
                    return Err(CtlError::new(
                        Exit::Conflict,
                        format!(
                            "dtab {ns} not updated: it changed to version {} meanwhile",
                            latest.version
                        ),
                    ));
                }
                notes = vec![format!(
                    "dtab {ns} changed on namerd while you were editing; saving now \
                     replaces version {}. What changed:",
                    latest.version
                )];
                notes.extend(shown.lines().map(str::to_string));
                base = latest;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The comment block on top of the file.
fn header(client: &Client, ns: &Namespace, base: &VersionedDtab, notes: &[String]) -> String {
    let mut lines = vec![
        format!(
            "Editing dtab {ns} (version {}) on {}.",
            base.version,
            client.base_url()
        ),
        "Lines starting with '#' are ignored. Save and quit to apply;".to_string(),
        "an empty file cancels.".to_string(),
    ];
    if !notes.is_empty() {
        lines.push(String::new());
        lines.extend(notes.iter().cloned());
    }
    let mut out: String = lines
        .iter()
        .map(|l| {
            if l.is_empty() {
                "#\n".to_string()
            } else {
                format!("# {l}\n")
            }
        })
        .collect();
    out.push('\n');
    out
}

/// The text without the comment lines and blank lines at its top (our
/// header), so a re-opened file gets a fresh one.
fn strip_header(text: &str) -> String {
    let mut rest = text;
    while let Some(line) = rest.split_inclusive('\n').next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            rest = &rest[line.len()..];
        } else {
            break;
        }
    }
    rest.to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use namerd::client::fake::FakeNamerd;

    /// What one edit does to the file's text.
    type Step<'a> = Box<dyn FnMut(&str) -> String + 'a>;

    /// A scripted person: each edit applies the next step to the file.
    struct Script<'a> {
        steps: VecDeque<Step<'a>>,
        seen: Vec<String>,
        answers: VecDeque<bool>,
    }

    impl Terminal for Script<'_> {
        fn edit(&mut self, path: &Path) -> io::Result<()> {
            let text = std::fs::read_to_string(path)?;
            self.seen.push(text.clone());
            let mut step = self.steps.pop_front().expect("an unexpected edit");
            std::fs::write(path, step(&text))
        }
        fn confirm(&mut self, _question: &str) -> io::Result<bool> {
            Ok(self.answers.pop_front().unwrap_or(false))
        }
    }

    fn script<'a>(steps: Vec<Step<'a>>, answers: &[bool]) -> Script<'a> {
        Script {
            steps: steps.into(),
            seen: Vec::new(),
            answers: answers.iter().copied().collect(),
        }
    }

    fn ns() -> Namespace {
        Namespace::new("default").unwrap()
    }

    #[tokio::test]
    async fn an_edit_is_applied_with_if_match() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
        let client = Client::new(fake.base.clone());
        let mut term = script(vec![Box::new(|t: &str| t.replace("/b", "/c"))], &[]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let exit = edit(&client, &ns(), &mut term, &mut out, &mut err)
            .await
            .unwrap();
        assert_eq!(exit, Exit::Ok);
        assert_eq!(String::from_utf8(out).unwrap(), "Updated default\n");
        assert_eq!(fake.dtab("default").unwrap(), "/a=>/c");
        assert!(term.seen[0].contains("# Editing dtab default (version AAAAAAAAAAE=)"));
        assert!(
            term.seen[0].ends_with("\n/a  => /b ;\n"),
            "{}",
            term.seen[0]
        );
        assert!(
            fake.log()
                .iter()
                .any(|l| l.starts_with("PUT /api/1/dtabs/default If-Match: AAAAAAAAAAE="))
        );
    }

    #[tokio::test]
    async fn an_invalid_edit_is_reopened_with_the_error() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
        let client = Client::new(fake.base.clone());
        let mut term = script(
            vec![
                Box::new(|t: &str| t.replace("/a  => /b ;", "/a  =/b ;")),
                Box::new(|t: &str| t.replace("/a  =/b ;", "/a => /d ;")),
            ],
            &[],
        );
        let exit = edit(&client, &ns(), &mut term, &mut Vec::new(), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(exit, Exit::Ok);
        assert_eq!(fake.dtab("default").unwrap(), "/a=>/d");
        let second = &term.seen[1];
        assert!(second.contains("# The dtab does not parse"), "{second}");
        assert!(second.contains(":5:5: expected '=>'"), "{second}");
        // The user's text is kept below the new header.
        assert!(second.ends_with("\n/a  =/b ;\n"), "{second}");
    }

    #[tokio::test]
    async fn giving_up_on_an_error_and_cancelling() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
        let client = Client::new(fake.base.clone());
        // An error, then the file closed untouched.
        let mut term = script(
            vec![
                Box::new(|_: &str| "/a =".to_string()),
                Box::new(|t: &str| t.to_string()),
            ],
            &[],
        );
        let e = edit(&client, &ns(), &mut term, &mut Vec::new(), &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::BadInput);

        let mut err = Vec::new();
        let mut term = script(vec![Box::new(|t: &str| t.to_string())], &[]);
        let exit = edit(&client, &ns(), &mut term, &mut Vec::new(), &mut err)
            .await
            .unwrap();
        assert_eq!(exit, Exit::Ok);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "Edit cancelled: no changes.\n"
        );

        let mut term = script(vec![Box::new(|_: &str| "# nothing\n".to_string())], &[]);
        let exit = edit(&client, &ns(), &mut term, &mut Vec::new(), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(exit, Exit::Ok);
        assert_eq!(fake.dtab("default").unwrap(), "/a=>/b");
    }

    #[tokio::test]
    async fn a_concurrent_change_is_shown_and_the_edit_retried() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
        let client = Client::new(fake.base.clone());
        let fake_ref = &fake;
        let mut term = script(
            vec![
                Box::new(move |t: &str| {
                    // Someone else writes while the editor is open.
                    fake_ref.set_dtab("default", "/a=>/b;/x=>/y");
                    t.replace("/b", "/c")
                }),
                Box::new(|t: &str| t.to_string()),
            ],
            &[true],
        );
        let mut err = Vec::new();
        let exit = edit(&client, &ns(), &mut term, &mut Vec::new(), &mut err)
            .await
            .unwrap();
        assert_eq!(exit, Exit::Ok);
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.contains("was changed on namerd while you were editing"),
            "{err}"
        );
        assert!(err.contains("+ /x => /y"), "{err}");
        assert!(term.seen[1].contains("# + /x => /y"), "{}", term.seen[1]);
        assert_eq!(fake.dtab("default").unwrap(), "/a=>/c");

        // Declining leaves the server alone and exits with a conflict.
        let mut term = script(
            vec![Box::new(move |t: &str| {
                fake_ref.set_dtab("default", "/z=>/z");
                t.replace("/c", "/d")
            })],
            &[false],
        );
        let e = edit(&client, &ns(), &mut term, &mut Vec::new(), &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Conflict);
        assert_eq!(fake.dtab("default").unwrap(), "/z=>/z");
    }

    #[test]
    fn the_header_is_stripped_but_the_body_kept() {
        assert_eq!(strip_header("# a\n#\n\n/a=>/b;\n# c\n"), "/a=>/b;\n# c\n");
        assert_eq!(strip_header("# only"), "");
    }
}
