//! How `dtab get` prints a dtab: Linkerd namerctl's pretty form, the
//! one-line show form, or JSON.

use dtab::Dtab;
use serde_json::json;

use namerd::store::Version;

/// Which form `dtab get` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DtabFormat {
    /// `# version <etag>`, then one `prefix  => dst ;` line per dentry with
    /// the arrows aligned (the default).
    Pretty,
    /// `prefix=>dst;prefix=>dst;` on one line (`--pretty=false`).
    Show,
    /// `{"version":"<etag>","dtab":[{"prefix":..,"dst":..}]}` (`--json`).
    Json,
}

/// `dtab` (and its version, when known) in `format`, ending in a newline.
pub(crate) fn dtab(format: DtabFormat, version: Option<&Version>, dtab: &Dtab) -> String {
    match format {
        DtabFormat::Pretty => {
            let mut out = String::new();
            if let Some(v) = version {
                out.push_str(&format!("# version {v}\n"));
            }
            out.push_str(&pretty(dtab));
            out
        }
        DtabFormat::Show => format!("{}\n", show(dtab)),
        DtabFormat::Json => {
            let value = json!({
                "version": version.map(Version::to_etag),
                "dtab": dtab,
            });
            format!("{value}\n")
        }
    }
}

/// One `prefix  => dst ;` line per dentry, the arrows aligned two columns
/// after the longest prefix, as Linkerd's namerctl prints them.
pub(crate) fn pretty(dtab: &Dtab) -> String {
    let prefixes: Vec<String> = dtab.iter().map(|d| d.prefix.show()).collect();
    let width = prefixes
        .iter()
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (prefix, d) in prefixes.iter().zip(dtab.iter()) {
        let pad = width - prefix.chars().count() + 2;
        out.push_str(prefix);
        out.push_str(&" ".repeat(pad));
        out.push_str("=> ");
        out.push_str(&d.dst.show());
        out.push_str(" ;\n");
    }
    out
}

/// Every dentry as `prefix=>dst;`, including the last (Linkerd's
/// namerctl's `--pretty=false` form).
pub(crate) fn show(dtab: &Dtab) -> String {
    dtab.iter().map(|d| format!("{};", d.show())).collect()
}

/// `dtab list`: one name per line (an empty list prints an empty line, as
/// Linkerd's namerctl does), or a JSON list.
pub(crate) fn names(names: &[String], json: bool) -> String {
    if json {
        format!("{}\n", serde_json::Value::from(names.to_vec()))
    } else {
        format!("{}\n", names.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dtab {
        Dtab::read("/svc=>/#/io.l5d.fs;/svc/web=>/srv/web-v2 | /srv/web;/s=>1*/a & 3*/b").unwrap()
    }

    #[test]
    fn pretty_aligns_arrows_like_linkerds_namerctl() {
        let v = Version::from_u64(1);
        assert_eq!(
            dtab(DtabFormat::Pretty, Some(&v), &sample()),
            "# version AAAAAAAAAAE=\n\
             /svc      => /#/io.l5d.fs ;\n\
             /svc/web  => /srv/web-v2 | /srv/web ;\n\
             /s        => /a & 3.00*/b ;\n"
        );
        assert_eq!(dtab(DtabFormat::Pretty, None, &Dtab::empty()), "");
    }

    #[test]
    fn show_form_ends_every_dentry_with_a_semicolon() {
        assert_eq!(
            dtab(DtabFormat::Show, None, &sample()),
            "/svc=>/#/io.l5d.fs;/svc/web=>/srv/web-v2 | /srv/web;/s=>/a & 3.00*/b;\n"
        );
        assert_eq!(dtab(DtabFormat::Show, None, &Dtab::empty()), "\n");
    }

    #[test]
    fn json_form_carries_the_version() {
        let d = Dtab::read("/svc=>/#/io.l5d.fs").unwrap();
        assert_eq!(
            dtab(DtabFormat::Json, Some(&Version::from_u64(1)), &d),
            "{\"version\":\"AAAAAAAAAAE=\",\"dtab\":[{\"prefix\":\"/svc\",\"dst\":\"/#/io.l5d.fs\"}]}\n"
        );
        assert_eq!(
            dtab(DtabFormat::Json, None, &Dtab::empty()),
            "{\"version\":null,\"dtab\":[]}\n"
        );
    }

    #[test]
    fn pretty_output_parses_back() {
        let text = dtab(DtabFormat::Pretty, Some(&Version::from_u64(7)), &sample());
        let back = crate::ctl::input::parse("x", &text).unwrap();
        assert!(back.dtab.equiv(&sample()));
    }

    #[test]
    fn names_one_per_line_or_json() {
        let n = vec!["a".to_string(), "b".to_string()];
        assert_eq!(names(&n, false), "a\nb\n");
        assert_eq!(names(&n, true), "[\"a\",\"b\"]\n");
        assert_eq!(names(&[], false), "\n");
    }
}
