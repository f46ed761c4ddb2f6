//! Finding the line of a key path (`routers[0].servers[1].port`) in a
//! config file's text, so that errors found after parsing (a kind's own
//! keys, a value out of range) point at their line as parse errors do.
//!
//! It reads YAML's block style, which is how config files are written:
//! `key: value` lines and `- ` list items, nested by indentation. For flow
//! style and JSON it falls back to the first line that names the last key
//! after the lines of the keys before it.

/// One segment of a key path.
#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// A meaningful line: where its content starts, whether it is a list item,
/// and the key it sets, if any.
struct Line<'a> {
    number: usize,
    /// Column of the `- ` of a list item, or of the content.
    indent: usize,
    /// Column of the content (after `- ` for list items).
    content: usize,
    item: bool,
    key: Option<&'a str>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let (item, body, content) = match trimmed.strip_prefix('-') {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                let body = rest.trim_start();
                (true, body, indent + 1 + (rest.len() - body.len()))
            }
            _ => (false, trimmed, indent),
        };
        let key = body
            .split_once(':')
            .map(|(k, _)| k.trim().trim_matches(['"', '\'']))
            .filter(|k| !k.is_empty() && !k.contains(' '));
        out.push(Line {
            number: i + 1,
            indent,
            content,
            item,
            key,
        });
    }
    out
}

/// The 1-based line where `path` is set in `text`, if it can be found.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let segments = segments(path);
    if segments.is_empty() {
        return None;
    }
    if text.trim_start().starts_with('{') {
        return line_of_flow(text, &segments);
    }
    let lines = lines(text);
    let mut range = 0..lines.len();
    let mut found = None;
    // The column at which the keys of the current block start.
    let mut level = lines.first()?.content;
    for segment in &segments {
        let block = &lines[range.clone()];
        match segment {
            Segment::Key(key) => {
                let at = block
                    .iter()
                    .position(|l| l.content == level && l.key == Some(key))?;
                let start = range.start + at;
                let end = lines[start + 1..range.end]
                    .iter()
                    .position(|l| l.content <= level)
                    .map_or(range.end, |n| start + 1 + n);
                found = Some(lines[start].number);
                range = start + 1..end;
                // The value's own block, if it has one.
                if let Some(first) = lines[range.clone()].first() {
                    level = first.content;
                }
            }
            Segment::Index(index) => {
                // A key that takes one entry or a list of them
                // (`identifier:`) holds its only entry as a mapping.
                let Some(first_item) = block.iter().find(|l| l.item) else {
                    if *index == 0 {
                        continue;
                    }
                    return None;
                };
                let column = first_item.indent;
                let items: Vec<usize> = block
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.item && l.indent == column)
                    .map(|(n, _)| range.start + n)
                    .collect();
                let start = *items.get(*index)?;
                let end = items.get(index + 1).copied().unwrap_or(range.end);
                found = Some(lines[start].number);
                level = lines[start].content;
                range = start..end;
            }
        }
    }
    found
}

/// JSON and flow style: each key's first mention after the previous one.
fn line_of_flow(text: &str, segments: &[Segment<'_>]) -> Option<usize> {
    let mut from = 0;
    for segment in segments {
        if let Segment::Key(key) = segment {
            let quoted = format!("\"{key}\"");
            from += text[from..]
                .find(&quoted)
                .or_else(|| text[from..].find(&format!("{key}:")))?;
        }
    }
    Some(text[..from].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
admin:
  port: 9990
routers:
- protocol: http
  label: a
  servers:
  - port: 4140
  - port: 4141
    ip: 0.0.0.0
- protocol: h2
  identifier:
    kind: io.l5d.header.path
    segments: 2
  servers:
    - port: 4142
namers:
- kind: io.l5d.fs
  rootDir: disco
";

    #[test]
    fn finds_keys_and_list_items_in_block_yaml() {
        let cases = [
            ("admin", 1),
            ("admin.port", 2),
            ("routers", 3),
            ("routers[0]", 4),
            ("routers[0].protocol", 4),
            ("routers[0].label", 5),
            ("routers[0].servers[1]", 8),
            ("routers[0].servers[1].ip", 9),
            ("routers[1].protocol", 10),
            ("routers[1].identifier.segments", 13),
            ("routers[1].servers[0].port", 15),
            ("namers[0].rootDir", 18),
            // One entry where a list is allowed.
            ("routers[1].identifier[0].segments", 13),
        ];
        for (path, line) in cases {
            assert_eq!(line_of(YAML, path), Some(line), "{path}");
        }
    }

    #[test]
    fn a_key_that_is_not_there_has_no_line() {
        assert_eq!(line_of(YAML, "routers[0].client"), None);
        assert_eq!(line_of(YAML, "routers[5]"), None);
    }

    #[test]
    fn json_finds_the_key_after_its_parents() {
        let json = "{\n  \"admin\": {\"port\": 1},\n  \"routers\": [\n    {\"port\": 2}\n  ]\n}\n";
        assert_eq!(line_of(json, "routers[0].port"), Some(4));
        assert_eq!(line_of(json, "admin.port"), Some(2));
    }
}
