//! The `prefix` of an `io.l5d.static` client or service config: a path
//! whose segments are literals, `*` (any one segment) or patterns with
//! `{name}` captures (`{service}`, `{env}-{service}`), matched against the
//! start of a bound id or a destination path.

use std::collections::BTreeMap;

use dtab::Path;

/// A parsed `prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixPattern {
    text: String,
    segments: Vec<SegmentPattern>,
}

#[derive(Debug, Clone, PartialEq)]
enum SegmentPattern {
    Any,
    /// Literal pieces and captures, in order; a segment without captures
    /// is one literal piece.
    Pieces(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Capture(String),
}

/// What a matching prefix captured, by name.
pub type Captures = BTreeMap<String, String>;

impl PrefixPattern {
    /// Parses `text`, e.g. `/#/io.l5d.k8s/default/http/{service}`.
    pub fn parse(text: &str) -> Result<PrefixPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} must start with `/`"));
        }
        let segments = text
            .split('/')
            .skip(1)
            .filter(|s| !s.is_empty())
            .map(parse_segment)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{text:?}: {e}"))?;
        Ok(PrefixPattern {
            text: text.to_string(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The names of its `{captures}`.
    pub fn capture_names(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|segment| match segment {
                SegmentPattern::Pieces(pieces) => Some(pieces),
                SegmentPattern::Any => None,
            })
            .flatten()
            .filter_map(|piece| match piece {
                Piece::Capture(name) => Some(name.as_str()),
                Piece::Literal(_) => None,
            })
            .collect()
    }

    /// The captures when `path` starts with this pattern.
    pub fn matches(&self, path: &Path) -> Option<Captures> {
        let elems = path.elems();
        if elems.len() < self.segments.len() {
            return None;
        }
        let mut captures = Captures::new();
        for (pattern, elem) in self.segments.iter().zip(elems) {
            let elem = elem.as_str()?;
            match pattern {
                SegmentPattern::Any => {}
                SegmentPattern::Pieces(pieces) => match_pieces(pieces, elem, &mut captures)?,
            }
        }
        Some(captures)
    }
}

fn parse_segment(segment: &str) -> Result<SegmentPattern, String> {
    if segment == "*" {
        return Ok(SegmentPattern::Any);
    }
    let mut pieces = Vec::new();
    let mut rest = segment;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("`{{` without `}}` in segment {segment:?}"))?;
                let name = &rest[1..end];
                if name.is_empty() || name.contains('{') {
                    return Err(format!("bad capture name in segment {segment:?}"));
                }
                pieces.push(Piece::Capture(name.to_string()));
                rest = &rest[end + 1..];
            }
            Some(at) => {
                pieces.push(Piece::Literal(rest[..at].to_string()));
                rest = &rest[at..];
            }
            None => {
                if rest.contains('}') {
                    return Err(format!("`}}` without `{{` in segment {segment:?}"));
                }
                pieces.push(Piece::Literal(rest.to_string()));
                rest = "";
            }
        }
    }
    Ok(SegmentPattern::Pieces(pieces))
}

/// Matches one segment. Captures are greedy, as Linkerd's are: in
/// `{a}-{b}` against `x-y-z`, `a` takes `x-y`.
fn match_pieces(pieces: &[Piece], text: &str, captures: &mut Captures) -> Option<()> {
    match pieces.split_first() {
        None => text.is_empty().then_some(()),
        Some((Piece::Literal(literal), rest)) => {
            match_pieces(rest, text.strip_prefix(literal.as_str())?, captures)
        }
        Some((Piece::Capture(name), rest)) => {
            // Longest first: the first split that lets the rest match wins.
            for end in (0..=text.len()).rev() {
                if !text.is_char_boundary(end) {
                    continue;
                }
                let mut attempt = captures.clone();
                if match_pieces(rest, &text[end..], &mut attempt).is_some() {
                    attempt.insert(name.clone(), text[..end].to_string());
                    *captures = attempt;
                    return Some(());
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let pattern = PrefixPattern::parse(pattern).unwrap();
        let path = Path::read(path).unwrap();
        pattern.matches(&path).map(|c| c.into_iter().collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn literals_match_the_start_of_a_path() {
        assert_eq!(matches("/#/io.l5d.fs", "/#/io.l5d.fs/web"), Some(vec![]));
        assert_eq!(
            matches("/#/io.l5d.fs/web", "/#/io.l5d.fs/web"),
            Some(vec![])
        );
        assert_eq!(matches("/#/io.l5d.fs/web", "/#/io.l5d.fs"), None);
        assert_eq!(matches("/#/io.l5d.fs", "/#/io.l5d.consul/web"), None);
        assert_eq!(matches("/", "/anything/at/all"), Some(vec![]));
    }

    #[test]
    fn stars_match_any_one_segment() {
        assert_eq!(matches("/$/inet/*/80", "/$/inet/10.0.0.1/80"), Some(vec![]));
        assert_eq!(matches("/$/inet/*/80", "/$/inet/10.0.0.1/81"), None);
    }

    #[test]
    fn captures_take_their_segment_or_piece_greedily() {
        assert_eq!(
            matches(
                "/#/io.l5d.k8s/{ns}/http/{service}",
                "/#/io.l5d.k8s/prod/http/web/x"
            ),
            Some(pairs(&[("ns", "prod"), ("service", "web")]))
        );
        assert_eq!(
            matches("/svc/{foo}-{bar}", "/svc/a-b-c"),
            Some(pairs(&[("bar", "c"), ("foo", "a-b")]))
        );
        assert_eq!(
            matches("/svc/{foo}{bar}", "/svc/ab"),
            Some(pairs(&[("bar", ""), ("foo", "ab")]))
        );
        assert_eq!(
            matches("/svc/api-{v}", "/svc/api-2"),
            Some(pairs(&[("v", "2")]))
        );
        assert_eq!(matches("/svc/api-{v}", "/svc/web-2"), None);
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(PrefixPattern::parse("svc").is_err());
        assert!(PrefixPattern::parse("/svc/{open").is_err());
        assert!(PrefixPattern::parse("/svc/close}").is_err());
        assert!(PrefixPattern::parse("/svc/{}").is_err());
    }
}
