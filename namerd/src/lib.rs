//! namerd: stores dtabs per namespace and serves bindings over HTTP.
