//! The `dtabs.l5d.io/v1alpha1` custom resource: the shape Linkerd's namerd
//! gives it, and the one-object calls (get, create, replace, delete) of
//! the fake, with the API server's answers for conflicts and absences.
//!
//! What the fake checks, as the API server does for a custom resource:
//! the object's `apiVersion` and `kind`, that its namespace and name agree
//! with the URL, that a create has no `resourceVersion`, that a replace has
//! one and that it is the stored one (optimistic concurrency), and a
//! delete's `preconditions`. It keeps `uid` and `creationTimestamp` across
//! replaces and bumps `generation` when anything but the metadata changed.

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Body, Resource, Shared, Stored, full, respond};

/// The `apiVersion` of a DTab.
pub const DTAB_API_VERSION: &str = "l5d.io/v1alpha1";

/// Where a namespace's dtabs are, before `<namespace>/dtabs`.
pub const DTAB_PATH_PREFIX: &str = "/apis/l5d.io/v1alpha1/namespaces/";

/// A DTab as Linkerd's namerd writes it: `dentries` is a list of
/// `{prefix, dst}`.
pub fn dtab_object(namespace: &str, name: &str, dentries: &[(&str, &str)]) -> Value {
    let dentries: Vec<Value> = dentries
        .iter()
        .map(|(prefix, dst)| json!({"prefix": prefix, "dst": dst}))
        .collect();
    json!({
        "apiVersion": DTAB_API_VERSION,
        "kind": "DTab",
        "metadata": {"name": name, "namespace": namespace},
        "dentries": dentries,
    })
}

/// `GET .../dtabs/<name>`.
pub(super) fn get(shared: &Shared, namespace: &str, name: &str) -> Response<Body> {
    let key = (Resource::Dtabs, namespace.to_string(), name.to_string());
    match shared.lock().objects.get(&key) {
        Some(stored) => respond(StatusCode::OK, full(stored.object.to_string())),
        None => absent(name),
    }
}

/// `POST .../dtabs`.
pub(super) fn create(shared: &Shared, namespace: &str, mut object: Value) -> Response<Body> {
    let name = match checked(&mut object, namespace, None) {
        Ok(name) => name,
        Err(refused) => return *refused,
    };
    if object.pointer("/metadata/resourceVersion").is_some() {
        return failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "resourceVersion should not be set on objects to be created",
            &name,
        );
    }
    let answer = {
        let mut state = shared.lock();
        let key = (Resource::Dtabs, namespace.to_string(), name.clone());
        if state.objects.contains_key(&key) {
            return failure(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("dtabs.l5d.io {name:?} already exists"),
                &name,
            );
        }
        let uid = format!("00000000-0000-4000-8000-{:012}", state.version + 1);
        if let Some(meta) = metadata(&mut object) {
            meta.insert("uid".into(), json!(uid));
            meta.insert("creationTimestamp".into(), json!("2024-01-01T00:00:00Z"));
            meta.insert("generation".into(), json!(1));
        }
        state.put(Resource::Dtabs, namespace, &name, Stored::new(object));
        stored(&state.objects, &key)
    };
    shared.wake();
    respond(StatusCode::CREATED, full(answer.to_string()))
}

/// `PUT .../dtabs/<name>`: a replace, only of the stored resource version.
pub(super) fn replace(
    shared: &Shared,
    namespace: &str,
    name: &str,
    mut object: Value,
) -> Response<Body> {
    if let Err(refused) = checked(&mut object, namespace, Some(name)) {
        return *refused;
    }
    let Some(given) = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!(
                "DTab.l5d.io {name:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
            ),
            name,
        );
    };
    let answer = {
        let race = take_race(shared, namespace, name);
        let mut state = shared.lock();
        if let Some(race) = race {
            state.put(Resource::Dtabs, namespace, name, Stored::new(race));
        }
        let key = (Resource::Dtabs, namespace.to_string(), name.to_string());
        let Some(old) = state.objects.get(&key).map(|s| s.object.clone()) else {
            return absent(name);
        };
        let current = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if current != Some(given.as_str()) {
            return failure(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on dtabs.l5d.io {name:?}: the object has been modified; please apply your changes to the latest version and try again"
                ),
                name,
            );
        }
        let spec_changed = without_metadata(&old) != without_metadata(&object);
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        if let Some(meta) = metadata(&mut object) {
            for kept in ["uid", "creationTimestamp"] {
                if let Some(value) = old.pointer(&format!("/metadata/{kept}")) {
                    meta.insert(kept.into(), value.clone());
                }
            }
            let generation = generation + u64::from(spec_changed);
            meta.insert("generation".into(), json!(generation));
        }
        state.put(Resource::Dtabs, namespace, name, Stored::new(object));
        stored(&state.objects, &key)
    };
    shared.wake();
    respond(StatusCode::OK, full(answer.to_string()))
}

/// `DELETE .../dtabs/<name>`, with the `preconditions` of the
/// DeleteOptions body, if any.
pub(super) fn delete(
    shared: &Shared,
    namespace: &str,
    name: &str,
    options: &Value,
) -> Response<Body> {
    let answer = {
        let mut state = shared.lock();
        let key = (Resource::Dtabs, namespace.to_string(), name.to_string());
        let Some(old) = state.objects.get(&key) else {
            return absent(name);
        };
        let want = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str);
        let have = old
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if let Some(want) = want
            && Some(want) != have
        {
            return failure(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on dtabs.l5d.io {name:?}: the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    have.unwrap_or_default()
                ),
                name,
            );
        }
        state.remove(Resource::Dtabs, namespace, name)
    };
    shared.wake();
    match answer {
        Some(object) => respond(StatusCode::OK, full(object.to_string())),
        None => absent(name),
    }
}

/// The write a test asked to slip in before this replace, if any.
fn take_race(shared: &Shared, namespace: &str, name: &str) -> Option<Value> {
    let mut races = super::lock(&shared.races);
    let at = races.iter().position(|object| {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            == Some(namespace)
            && object.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
    })?;
    Some(races.remove(at))
}

/// Checks a written object against the URL and fills in its namespace;
/// returns its name.
fn checked(
    object: &mut Value,
    namespace: &str,
    url_name: Option<&str>,
) -> Result<String, Box<Response<Body>>> {
    let bad = |why: &str| {
        Err(Box::new(failure(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            why,
            url_name.unwrap_or_default(),
        )))
    };
    if !object.is_object() {
        return bad("the body is not a JSON object");
    }
    if object.get("apiVersion").and_then(Value::as_str) != Some(DTAB_API_VERSION)
        || object.get("kind").and_then(Value::as_str) != Some("DTab")
    {
        return bad(&format!(
            "the object is not a DTab of {DTAB_API_VERSION} (apiVersion {}, kind {})",
            object.get("apiVersion").unwrap_or(&Value::Null),
            object.get("kind").unwrap_or(&Value::Null)
        ));
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(Box::new(failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "DTab.l5d.io is invalid: metadata.name: Required value: name or generateName is required",
            url_name.unwrap_or_default(),
        )));
    };
    if url_name.is_some_and(|u| u != name) {
        return bad("the name of the object does not match the name on the URL");
    }
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if ns != namespace => {
            return bad(
                "the namespace of the provided object does not match the namespace sent on the request",
            );
        }
        _ => {}
    }
    if let Some(meta) = metadata(object) {
        meta.insert("namespace".into(), json!(namespace));
    }
    Ok(name)
}

/// The object's `metadata`, made an object if it was missing.
fn metadata(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
}

fn without_metadata(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
    }
    object
}

fn stored(
    objects: &std::collections::BTreeMap<(Resource, String, String), Stored>,
    key: &(Resource, String, String),
) -> Value {
    objects
        .get(key)
        .map(|s| s.object.clone())
        .unwrap_or(Value::Null)
}

fn absent(name: &str) -> Response<Body> {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("dtabs.l5d.io {name:?} not found"),
        name,
    )
}

/// A `v1` Status naming the DTab it is about.
fn failure(code: StatusCode, reason: &str, message: &str, name: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
        "details": {"name": name, "group": "l5d.io", "kind": "dtabs"},
    });
    respond(code, full(body.to_string()))
}
