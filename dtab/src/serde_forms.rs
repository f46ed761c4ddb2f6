//! The JSON forms namerd's API uses: a dentry is
//! `{"prefix":"/svc","dst":"/#/io.l5d.fs"}` and a dtab is a list of them.

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Dentry, Dtab, NameTree, Prefix};

impl Serialize for Dentry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Dentry", 2)?;
        st.serialize_field("prefix", &self.prefix.show())?;
        st.serialize_field("dst", &self.dst.show())?;
        st.end()
    }
}

/// The wire form, before the two strings are parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DentryJson<'a> {
    #[serde(borrow)]
    prefix: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    dst: std::borrow::Cow<'a, str>,
}

impl<'de> Deserialize<'de> for Dentry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dentry, D::Error> {
        let json = DentryJson::deserialize(d)?;
        let prefix = Prefix::read(&json.prefix)
            .map_err(|e| D::Error::custom(format!("invalid prefix {:?}: {e}", json.prefix)))?;
        let dst = NameTree::read(&json.dst)
            .map_err(|e| D::Error::custom(format!("invalid dst {:?}: {e}", json.dst)))?;
        Ok(Dentry::new(prefix, dst))
    }
}

impl Serialize for Dtab {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Dtab {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dtab, D::Error> {
        Vec::<Dentry>::deserialize(d).map(Dtab::new)
    }
}

#[cfg(test)]
mod tests {
    use crate::Dtab;

    #[test]
    fn dtab_json_matches_namerd() {
        let dtab = Dtab::read("/svc=>/#/io.l5d.fs;/svc/web=>/a | 2*/b & /c").unwrap();
        let json = serde_json::to_string(&dtab).unwrap();
        assert_eq!(
            json,
            r#"[{"prefix":"/svc","dst":"/#/io.l5d.fs"},{"prefix":"/svc/web","dst":"/a | 2.00*/b & /c"}]"#
        );
        let back: Dtab = serde_json::from_str(&json).unwrap();
        assert_eq!(back.show(), dtab.show());
    }

    #[test]
    fn bad_entries_are_rejected_with_the_field() {
        let err = serde_json::from_str::<Dtab>(r#"[{"prefix":"/svc","dst":"/a |"}]"#).unwrap_err();
        assert!(err.to_string().contains("invalid dst"), "{err}");
        assert!(serde_json::from_str::<Dtab>(r#"[null]"#).is_err());
        assert!(serde_json::from_str::<Dtab>(r#"[{"prefix":"/a","dst":"/b","x":1}]"#).is_err());
    }
}
