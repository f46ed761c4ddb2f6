//! `namerctl dtab ...`: list, get, create, update, delete, check and diff.
//! (`edit` is in [`super::edit`].)

use std::io::Write;

use super::diff;
use super::follow::follow;
use super::format::{self, DtabFormat};
use super::input;
use super::{CtlError, Exit, emit};
use namerd::Namespace;
use namerd::client::{Client, ClientError, DtabUpdate};
use namerd::store::Version;

/// `dtab list|ls [--json]`.
pub(crate) async fn list(
    client: &Client,
    json: bool,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let names = client.list_dtabs().await?;
    emit(out, &format::names(&names, json))?;
    Ok(Exit::Ok)
}

/// `dtab get|cat <ns> [--pretty=BOOL] [--json]`.
pub(crate) async fn get(
    client: &Client,
    ns: &Namespace,
    form: DtabFormat,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let current = client.get_dtab(ns).await?;
    emit(
        out,
        &format::dtab(form, Some(&current.version), &current.dtab),
    )?;
    Ok(Exit::Ok)
}

/// `dtab get <ns> --watch`: the dtab again on every change (the pretty
/// form separated by blank lines; the other forms one line each).
pub(crate) async fn get_watch(
    client: &Client,
    ns: &Namespace,
    form: DtabFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let mut first = true;
    follow(
        async || client.watch_dtab(ns).await,
        |update: &DtabUpdate| {
            let mut text = format::dtab(form, update.version.as_ref(), &update.dtab);
            if form == DtabFormat::Pretty && !std::mem::take(&mut first) {
                text.insert(0, '\n');
            }
            Ok(text)
        },
        out,
        err,
    )
    .await
}

/// `dtab create|new <ns> <file|->`: checks the input, then creates.
pub(crate) async fn create(
    client: &Client,
    ns: &Namespace,
    source: &str,
    text: &str,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let parsed = input::parse(source, text)?;
    client.create_dtab(ns, &parsed.dtab).await.map_err(|e| {
        if matches!(e, ClientError::Conflict { .. }) {
            CtlError::new(
                Exit::Conflict,
                format!("namespace {ns} already exists ({e}); use `dtab update` to change it"),
            )
        } else {
            e.into()
        }
    })?;
    emit(out, &format!("Created {ns}\n"))?;
    Ok(Exit::Ok)
}

/// `dtab update|up <ns> <file|-> [--version V]`: checks the input, then
/// replaces the dtab, only if its version is still `V` when given (or the
/// version in a `{"version","dtab"}` JSON input).
pub(crate) async fn update(
    client: &Client,
    ns: &Namespace,
    source: &str,
    text: &str,
    version: Option<&Version>,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let parsed = input::parse(source, text)?;
    let version = version.or(parsed.version.as_ref());
    client
        .update_dtab(ns, &parsed.dtab, version)
        .await
        .map_err(|e| match (&e, version) {
            (ClientError::Conflict { .. }, Some(v)) => CtlError::new(
                Exit::Conflict,
                format!("dtab {ns} is no longer at version {v}: someone changed it ({e})"),
            ),
            _ => e.into(),
        })?;
    emit(out, &format!("Updated {ns}\n"))?;
    Ok(Exit::Ok)
}

/// `dtab delete|del|rm <ns>`.
pub(crate) async fn delete(
    client: &Client,
    ns: &Namespace,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    client.delete_dtab(ns).await?;
    emit(out, &format!("Deleted {ns}\n"))?;
    Ok(Exit::Ok)
}

/// `dtab check <file|->`: parses the input without a server.
pub(crate) fn check(source: &str, text: &str, out: &mut dyn Write) -> Result<Exit, CtlError> {
    let parsed = input::parse(source, text)?;
    let n = parsed.dtab.len();
    let noun = if n == 1 { "dentry" } else { "dentries" };
    emit(out, &format!("{source}: ok, {n} {noun}\n"))?;
    Ok(Exit::Ok)
}

/// `dtab diff <ns> <file|->`: the stored dtab against the input, dentry by
/// dentry. Exits [`Exit::Differ`] when they differ, like `diff(1)`.
pub(crate) async fn diff(
    client: &Client,
    ns: &Namespace,
    source: &str,
    text: &str,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let parsed = input::parse(source, text)?;
    let stored = client.get_dtab(ns).await?;
    let changes = diff::diff(&stored.dtab, &parsed.dtab);
    if !diff::has_changes(&changes) {
        return Ok(Exit::Ok);
    }
    let old = format!("namerd {ns} (version {})", stored.version);
    emit(out, &diff::render(&changes, &old, source))?;
    Ok(Exit::Differ)
}

#[cfg(test)]
mod tests {
    use super::*;
    use namerd::client::fake::FakeNamerd;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn list_and_get_print_like_linkerds_namerctl() {
        let fake = FakeNamerd::start(&[("default", "/svc=>/#/io.l5d.fs;/svc/web=>/srv/web")]).await;
        let client = Client::new(fake.base.clone());

        let mut out = Vec::new();
        assert_eq!(list(&client, false, &mut out).await.unwrap(), Exit::Ok);
        assert_eq!(text(out), "default\n");

        let mut out = Vec::new();
        get(&client, &ns("default"), DtabFormat::Pretty, &mut out)
            .await
            .unwrap();
        assert_eq!(
            text(out),
            "# version AAAAAAAAAAE=\n/svc      => /#/io.l5d.fs ;\n/svc/web  => /srv/web ;\n"
        );

        let mut out = Vec::new();
        get(&client, &ns("default"), DtabFormat::Show, &mut out)
            .await
            .unwrap();
        assert_eq!(text(out), "/svc=>/#/io.l5d.fs;/svc/web=>/srv/web;\n");

        let e = get(&client, &ns("nope"), DtabFormat::Json, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::NotFound);
        assert!(
            e.message
                .starts_with("resource was not found by ID or name: namerd at http://127.0.0.1:"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn create_update_delete_check_the_input_first() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
        let client = Client::new(fake.base.clone());

        let mut out = Vec::new();
        create(&client, &ns("new"), "f", "/x => /y;", &mut out)
            .await
            .unwrap();
        assert_eq!(text(out), "Created new\n");
        assert_eq!(fake.dtab("new").unwrap(), "/x=>/y");

        let e = create(&client, &ns("new"), "f", "/x => /y", &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Conflict);
        assert!(e.message.contains("already exists"), "{}", e.message);

        let e = create(&client, &ns("bad"), "f.dtab", "/x =>", &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::BadInput);
        assert!(
            e.message.starts_with("f.dtab:1:6: expected a name tree"),
            "{}",
            e.message
        );
        assert_eq!(fake.dtab("bad"), None, "nothing is sent");

        // JSON input, with the version `dtab get --json` printed.
        let stale = r#"{"version":"AAAAAAAAAAE=","dtab":[{"prefix":"/a","dst":"/c"}]}"#;
        let mut out = Vec::new();
        update(&client, &ns("default"), "f", stale, None, &mut out)
            .await
            .unwrap();
        assert_eq!(text(out), "Updated default\n");
        assert_eq!(fake.dtab("default").unwrap(), "/a=>/c");
        // The same version again is now stale.
        let e = update(&client, &ns("default"), "f", stale, None, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Conflict);
        assert!(
            e.message.contains("no longer at version AAAAAAAAAAE="),
            "{}",
            e.message
        );
        // --version wins over the file's.
        let v = Version::from_etag(&fake.etag("default").unwrap()).unwrap();
        update(
            &client,
            &ns("default"),
            "f",
            stale,
            Some(&v),
            &mut Vec::new(),
        )
        .await
        .unwrap();

        let mut out = Vec::new();
        delete(&client, &ns("new"), &mut out).await.unwrap();
        assert_eq!(text(out), "Deleted new\n");
        let e = delete(&client, &ns("new"), &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::NotFound);
    }

    #[tokio::test]
    async fn diff_against_the_server() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b;/c=>/d")]).await;
        let client = Client::new(fake.base.clone());
        let mut out = Vec::new();
        let exit = diff(&client, &ns("default"), "f", "/a => /b; /c => /d", &mut out)
            .await
            .unwrap();
        assert_eq!((exit, text(out)), (Exit::Ok, String::new()));

        let mut out = Vec::new();
        let exit = diff(&client, &ns("default"), "f", "/a=>/b;/c=>/e", &mut out)
            .await
            .unwrap();
        assert_eq!(exit, Exit::Differ);
        assert_eq!(
            text(out),
            "--- namerd default (version AAAAAAAAAAE=)\n+++ f\n  /a => /b\n- /c => /d\n+ /c => /e\n"
        );
    }

    #[test]
    fn check_reports_count_or_position() {
        let mut out = Vec::new();
        assert_eq!(check("f", "/a=>/b;/c=>/d", &mut out).unwrap(), Exit::Ok);
        assert_eq!(text(out), "f: ok, 2 dentries\n");
        let e = check("f", "/a=>/b\n/c=>/d", &mut Vec::new()).unwrap_err();
        assert_eq!(e.exit, Exit::BadInput);
        assert!(
            e.message.starts_with("f:2:1: expected ';' or end of input"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn get_watch_prints_each_change() {
        let fake = FakeNamerd::start(&[("default", "/a=>/b")]).await;
        let client = Client::new(fake.base.clone());
        let mut out = Vec::new();
        let mut err = Vec::new();
        let default = ns("default");
        {
            let watching = get_watch(&client, &default, DtabFormat::Show, &mut out, &mut err);
            let change = async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                fake.set_dtab("default", "/a=>/c");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            tokio::select! {
                r = watching => panic!("the watch ended: {r:?}"),
                () = change => {}
            }
        }
        assert_eq!(text(out), "/a=>/b;\n/a=>/c;\n");
        assert!(err.is_empty());
    }
}
