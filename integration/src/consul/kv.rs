//! The KV endpoints of the fake: `/v1/kv/<key>`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

use super::{MAX_VALUE_BYTES, Params, Read, Shared, State, answer, blocking_read, json, text};

/// One KV entry as the fake stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The key, without a leading `/`.
    pub key: String,
    /// The raw value.
    pub value: Bytes,
    /// The index that created the key.
    pub create_index: u64,
    /// The index that last modified the key.
    pub modify_index: u64,
    /// How many times the key was locked (always 0 here: no sessions).
    pub lock_index: u64,
    /// The client's opaque flags.
    pub flags: u64,
}

/// The KV store.
#[derive(Default)]
pub(super) struct Kv {
    /// The live keys.
    pub(super) entries: BTreeMap<String, KvEntry>,
    /// Where deleted keys were deleted, so that a list's index does not go
    /// backwards when its newest key is removed.
    pub(super) tombstones: BTreeMap<String, u64>,
    /// The index of the last KV write.
    pub(super) table_index: u64,
}

impl State {
    pub(super) fn kv_set(&mut self, key: &str, value: Bytes, flags: u64) -> u64 {
        let index = self.next_index();
        let create_index = self.kv.entries.get(key).map_or(index, |e| e.create_index);
        self.kv.entries.insert(
            key.to_string(),
            KvEntry {
                key: key.to_string(),
                value,
                create_index,
                modify_index: index,
                lock_index: 0,
                flags,
            },
        );
        self.kv.tombstones.remove(key);
        self.kv.table_index = index;
        index
    }

    pub(super) fn kv_delete(&mut self, key: &str) -> bool {
        if !self.kv.entries.contains_key(key) {
            return false;
        }
        let index = self.next_index();
        self.kv.entries.remove(key);
        self.kv.tombstones.insert(key.to_string(), index);
        self.kv.table_index = index;
        true
    }

    fn kv_delete_prefix(&mut self, prefix: &str) {
        let keys: Vec<String> = self
            .kv
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        let index = self.next_index();
        for key in keys {
            self.kv.entries.remove(&key);
            self.kv.tombstones.insert(key, index);
        }
        self.kv.table_index = index;
    }

    fn kv_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
        self.kv
            .entries
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }

    /// The index of a list under `prefix`: its newest entry or tombstone,
    /// else the table's (Consul's `kvsListTxn`).
    fn kv_list_index(&self, prefix: &str) -> u64 {
        let entries = self.kv_under(prefix).map(|e| e.modify_index).max();
        let graves = self
            .kv
            .tombstones
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max();
        match entries.max(graves) {
            Some(i) if i > 0 && !prefix.is_empty() => i,
            _ => self.kv.table_index,
        }
    }
}

fn entry_json(entry: &KvEntry) -> serde_json::Value {
    // Consul sends an empty value as null.
    let value = if entry.value.is_empty() {
        serde_json::Value::Null
    } else {
        base64::engine::general_purpose::STANDARD
            .encode(&entry.value)
            .into()
    };
    serde_json::json!({
        "LockIndex": entry.lock_index,
        "Key": entry.key,
        "Flags": entry.flags,
        "Value": value,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    })
}

/// Serves one request on `/v1/kv/<key>`.
pub(super) async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    params: &Params,
    key: &str,
) -> Response<Full<Bytes>> {
    match *req.method() {
        Method::GET => kv_get(shared, params, key).await,
        Method::PUT => kv_put(shared, req, params, key).await,
        Method::DELETE => kv_delete(shared, params, key),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// A JSON answer, or (for `?raw`) the bare value.
type Body = Result<serde_json::Value, Bytes>;

async fn kv_get(shared: &Shared, params: &Params, key: &str) -> Response<Full<Bytes>> {
    let read: Read<Option<Body>> = if params.has("keys") {
        let separator = params.get("separator").unwrap_or("");
        blocking_read(shared, params, |state| {
            let mut keys = BTreeSet::new();
            for entry in state.kv_under(key) {
                let rest = &entry.key[key.len()..];
                let cut = rest
                    .find(separator)
                    .filter(|_| !separator.is_empty())
                    .map_or(entry.key.len(), |at| key.len() + at + separator.len());
                keys.insert(&entry.key[..cut]);
            }
            let found = (!keys.is_empty()).then(|| Ok(serde_json::json!(keys)));
            (state.kv_list_index(key), found)
        })
        .await
    } else if params.has("recurse") {
        blocking_read(shared, params, |state| {
            let entries: Vec<serde_json::Value> = state.kv_under(key).map(entry_json).collect();
            let found = (!entries.is_empty()).then(|| Ok(serde_json::Value::Array(entries)));
            (state.kv_list_index(key), found)
        })
        .await
    } else {
        let raw = params.has("raw");
        blocking_read(shared, params, |state| match state.kv.entries.get(key) {
            Some(entry) if raw => (entry.modify_index, Some(Err(entry.value.clone()))),
            Some(entry) => (
                entry.modify_index,
                Some(Ok(serde_json::json!([entry_json(entry)]))),
            ),
            None => (state.kv.table_index, None),
        })
        .await
    };
    match read {
        Read::Down => text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader"),
        Read::BadWait => text(StatusCode::BAD_REQUEST, "Invalid wait time or index"),
        Read::Answer(index, None) => answer(StatusCode::NOT_FOUND, "", "text/plain", Some(index)),
        Read::Answer(index, Some(Ok(body))) => json(StatusCode::OK, &body, Some(index)),
        Read::Answer(index, Some(Err(raw))) => {
            answer(StatusCode::OK, raw, "application/octet-stream", Some(index))
        }
    }
}

async fn kv_put(
    shared: &Shared,
    req: Request<Incoming>,
    params: &Params,
    key: &str,
) -> Response<Full<Bytes>> {
    if key.is_empty() {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    if params.has("acquire") || params.has("release") {
        return text(
            StatusCode::BAD_REQUEST,
            "sessions (acquire/release) are not supported by this fake",
        );
    }
    let Ok(cas) = params.u64("cas") else {
        return text(StatusCode::BAD_REQUEST, "Invalid CAS index");
    };
    let Ok(flags) = params.u64("flags") else {
        return text(StatusCode::BAD_REQUEST, "Invalid flags");
    };
    let body = match Limited::new(req.into_body(), MAX_VALUE_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Value exceeds {MAX_VALUE_BYTES} byte limit"),
            );
        }
    };
    let written = {
        let mut state = shared.lock();
        let current = state.kv.entries.get(key).map(|e| e.modify_index);
        let allowed = match cas {
            None => true,
            Some(0) => current.is_none(),
            Some(index) => current == Some(index),
        };
        if allowed {
            state.kv_set(key, body, flags.unwrap_or(0));
        }
        allowed
    };
    if written {
        shared.wake_all();
    }
    json(StatusCode::OK, &serde_json::Value::Bool(written), None)
}

fn kv_delete(shared: &Shared, params: &Params, key: &str) -> Response<Full<Bytes>> {
    let Ok(cas) = params.u64("cas") else {
        return text(StatusCode::BAD_REQUEST, "Invalid CAS index");
    };
    let done = {
        let mut state = shared.lock();
        if params.has("recurse") {
            state.kv_delete_prefix(key);
            true
        } else {
            match (cas, state.kv.entries.get(key).map(|e| e.modify_index)) {
                // As in Consul, a compare-and-delete of a missing key succeeds.
                (_, None) => true,
                (Some(cas), Some(current)) if cas != current => false,
                _ => state.kv_delete(key),
            }
        }
    };
    shared.wake_all();
    json(StatusCode::OK, &serde_json::Value::Bool(done), None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::FakeConsul;
    use super::super::tests::call;
    use super::*;

    #[test]
    fn list_indexes_do_not_go_backwards_on_delete() {
        let mut state = State::default();
        state.kv_set("p/a", Bytes::from_static(b"1"), 0);
        let b = state.kv_set("p/b", Bytes::from_static(b"2"), 0);
        assert_eq!(state.kv_list_index("p/"), b);
        state.kv_delete("p/b");
        assert!(state.kv_list_index("p/") > b);
    }

    /// One request through a plain hyper client: status, index header, body.
    #[tokio::test]
    async fn kv_reads_writes_and_compare_and_set() {
        let fake = FakeConsul::start().await.unwrap();
        let url = |rest: &str| format!("{}/v1/kv/{rest}", fake.url());

        let (status, index, _) = call(Method::GET, &url("a/x"), "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(index.is_some(), "a 404 still carries X-Consul-Index");

        assert_eq!(call(Method::PUT, &url("a/x?cas=0"), "one").await.2, "true");
        assert_eq!(call(Method::PUT, &url("a/x?cas=0"), "two").await.2, "false");
        let (status, index, body) = call(Method::GET, &url("a/x"), "").await;
        assert_eq!(status, StatusCode::OK);
        let entries: serde_json::Value = serde_json::from_str(&body).unwrap();
        let modify = entries[0]["ModifyIndex"].as_u64().unwrap();
        assert_eq!(index, Some(modify));
        assert_eq!(entries[0]["Value"], "b25l", "base64 of \"one\"");
        assert_eq!(call(Method::GET, &url("a/x?raw"), "").await.2, "one");

        let stale = format!("a/x?cas={}", modify - 1);
        assert_eq!(call(Method::PUT, &url(&stale), "three").await.2, "false");
        let current = format!("a/x?cas={modify}");
        assert_eq!(call(Method::PUT, &url(&current), "three").await.2, "true");

        call(Method::PUT, &url("a/y"), "").await;
        call(Method::PUT, &url("a/sub/z"), "z").await;
        let (_, _, keys) = call(Method::GET, &url("a/?keys&separator=/"), "").await;
        assert_eq!(keys, r#"["a/sub/","a/x","a/y"]"#);
        let (_, _, all) = call(Method::GET, &url("a/?recurse"), "").await;
        let all: serde_json::Value = serde_json::from_str(&all).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 3);
        assert_eq!(
            all[2]["Value"],
            serde_json::Value::Null,
            "empty values are null"
        );

        let modify = fake.kv_get("a/x").unwrap().modify_index;
        let wrong = format!("a/x?cas={}", modify + 1);
        assert_eq!(call(Method::DELETE, &url(&wrong), "").await.2, "false");
        let right = format!("a/x?cas={modify}");
        assert_eq!(call(Method::DELETE, &url(&right), "").await.2, "true");
        assert_eq!(fake.kv_get("a/x"), None);
    }
}
