//! The structs, unions and exceptions of Linkerd's `namer.thrift`
//! (`namerd/idl/linkerd/namer.thrift`), with their binary encoding.
//!
//! Fields the IDL leaves at default requiredness are always written and
//! read as their empty value when absent, as Scrooge and thriftpy2 do;
//! `optional` fields are `Option`s. A union must carry exactly one known
//! field.

use std::collections::BTreeMap;

use super::protocol::{DecodeError, Reader, Writer, ttype};

/// A path on the wire: its labels as bytes (`typedef list<binary> Path`).
pub type TPath = Vec<Vec<u8>>;

/// An opaque stamp chosen by the server (`typedef binary Stamp`).
pub type Stamp = Vec<u8>;

/// A value with a binary encoding.
pub trait ThriftStruct: Sized {
    /// Writes the struct, ending with its stop byte.
    fn write(&self, w: &mut Writer);
    /// Reads the struct.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The struct's encoding on its own.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }

    /// Reads a struct from `bytes`, which must hold nothing else.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::read(&mut r)?;
        if r.remaining() > 0 {
            return Err(r.error(format!("{} bytes after the struct", r.remaining())));
        }
        Ok(value)
    }
}

fn write_string(w: &mut Writer, id: i16, v: &str) {
    w.field_begin(ttype::STRING, id);
    w.string(v);
}

fn write_binary(w: &mut Writer, id: i16, v: &[u8]) {
    w.field_begin(ttype::STRING, id);
    w.binary(v);
}

fn write_i32(w: &mut Writer, id: i16, v: i32) {
    w.field_begin(ttype::I32, id);
    w.i32(v);
}

fn write_path(w: &mut Writer, id: i16, path: &TPath) {
    w.field_begin(ttype::LIST, id);
    w.list_begin(ttype::STRING, path.len());
    for label in path {
        w.binary(label);
    }
}

fn write_ids(w: &mut Writer, id: i16, ids: &[i32]) {
    w.field_begin(ttype::LIST, id);
    w.list_begin(ttype::I32, ids.len());
    for id in ids {
        w.i32(*id);
    }
}

fn write_weighted(w: &mut Writer, id: i16, items: &[WeightedNodeId]) {
    w.field_begin(ttype::LIST, id);
    w.list_begin(ttype::STRUCT, items.len());
    for item in items {
        item.write(w);
    }
}

fn write_struct(w: &mut Writer, id: i16, v: &impl ThriftStruct) {
    w.field_begin(ttype::STRUCT, id);
    v.write(w);
}

fn write_void(w: &mut Writer, id: i16) {
    w.field_begin(ttype::STRUCT, id);
    w.field_stop();
}

fn read_path(r: &mut Reader<'_>) -> Result<TPath, DecodeError> {
    r.list(ttype::STRING, |r| Ok(r.binary()?.to_vec()))
}

fn read_ids(r: &mut Reader<'_>) -> Result<Vec<i32>, DecodeError> {
    r.list(ttype::I32, Reader::i32)
}

fn read_weighted(r: &mut Reader<'_>) -> Result<Vec<WeightedNodeId>, DecodeError> {
    r.list(ttype::STRUCT, WeightedNodeId::read)
}

fn read_void(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    r.read_struct(|_, _, _| Ok(false))
}

/// Reads a `map<i32, Node>`.
fn read_node_map<T: ThriftStruct>(r: &mut Reader<'_>) -> Result<BTreeMap<i32, T>, DecodeError> {
    let at = r.position();
    let (key, value, len) = r.map_begin()?;
    if len > 0 && (key != ttype::I32 || value != ttype::STRUCT) {
        return Err(DecodeError {
            offset: at,
            reason: format!("a map<{key}, {value}> where map<i32, struct> was expected"),
        });
    }
    let mut nodes = BTreeMap::new();
    for _ in 0..len {
        let id = r.i32()?;
        nodes.insert(id, T::read(r)?);
    }
    Ok(nodes)
}

fn write_node_map<T: ThriftStruct>(w: &mut Writer, id: i16, nodes: &BTreeMap<i32, T>) {
    w.field_begin(ttype::MAP, id);
    w.map_begin(ttype::I32, ttype::STRUCT, nodes.len());
    for (id, node) in nodes {
        w.i32(*id);
        node.write(w);
    }
}

/// Reads a union: `field` reads a known field and returns `Some`; the
/// union must have exactly one.
fn read_union<'a, T>(
    r: &mut Reader<'a>,
    name: &str,
    mut field: impl FnMut(&mut Reader<'a>, i16, u8) -> Result<Option<T>, DecodeError>,
) -> Result<T, DecodeError> {
    let at = r.position();
    let mut found: Option<T> = None;
    let mut count = 0;
    r.read_struct(|r, id, ty| {
        count += 1;
        match field(r, id, ty)? {
            Some(v) => {
                found = Some(v);
                Ok(true)
            }
            None => Ok(false),
        }
    })?;
    match (found, count) {
        (Some(v), 1) => Ok(v),
        (Some(_), n) => Err(DecodeError {
            offset: at,
            reason: format!("union {name} has {n} fields set, not one"),
        }),
        (None, 0) => Err(DecodeError {
            offset: at,
            reason: format!("union {name} has no field set"),
        }),
        (None, _) => Err(DecodeError {
            offset: at,
            reason: format!("union {name} has no field this side knows"),
        }),
    }
}

/// `struct NameRef`: a name, in a namespace, at a stamp.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NameRef {
    /// The stamp of the value the client has, or empty.
    pub stamp: Stamp,
    /// The name.
    pub name: TPath,
    /// The namespace.
    pub ns: String,
}

impl ThriftStruct for NameRef {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.stamp);
        write_path(w, 2, &self.name);
        write_string(w, 3, &self.ns);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = NameRef::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.stamp = r.binary()?.to_vec(),
                (2, ttype::LIST) => v.name = read_path(r)?,
                (3, ttype::STRING) => v.ns = r.string()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct BindReq`: bind a name through the namespace's dtab and `dtab`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BindReq {
    /// The request's own dtab, appended to the stored one (text).
    pub dtab: String,
    /// What to bind.
    pub name: NameRef,
    /// Who asks (ignored by namerd).
    pub client_id: TPath,
}

impl ThriftStruct for BindReq {
    fn write(&self, w: &mut Writer) {
        write_string(w, 1, &self.dtab);
        write_struct(w, 2, &self.name);
        write_path(w, 3, &self.client_id);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = BindReq::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.dtab = r.string()?,
                (2, ttype::STRUCT) => v.name = NameRef::read(r)?,
                (3, ttype::LIST) => v.client_id = read_path(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct BoundName`: a bound id and the residual path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoundName {
    /// The bound id (e.g. `/#/io.l5d.fs/web`).
    pub id: TPath,
    /// What the namer did not consume.
    pub residual: TPath,
}

impl ThriftStruct for BoundName {
    fn write(&self, w: &mut Writer) {
        write_path(w, 1, &self.id);
        write_path(w, 2, &self.residual);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = BoundName::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::LIST) => v.id = read_path(r)?,
                (2, ttype::LIST) => v.residual = read_path(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct WeightedNodeId`: a branch of a weighted split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightedNodeId {
    /// The branch's weight.
    pub weight: f64,
    /// The branch's node.
    pub id: i32,
}

impl ThriftStruct for WeightedNodeId {
    fn write(&self, w: &mut Writer) {
        w.field_begin(ttype::DOUBLE, 1);
        w.double(self.weight);
        write_i32(w, 2, self.id);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = WeightedNodeId::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::DOUBLE) => v.weight = r.double()?,
                (2, ttype::I32) => v.id = r.i32()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `union BoundNode`: one node of a bound tree.
#[derive(Clone, Debug, PartialEq)]
pub enum BoundNode {
    /// `~`.
    Neg,
    /// `$`.
    Empty,
    /// `!`.
    Fail,
    /// A bound name.
    Leaf(BoundName),
    /// Alternatives, by node id.
    Alt(Vec<i32>),
    /// A weighted split, by node id.
    Weighted(Vec<WeightedNodeId>),
}

impl ThriftStruct for BoundNode {
    fn write(&self, w: &mut Writer) {
        match self {
            BoundNode::Neg => write_void(w, 1),
            BoundNode::Empty => write_void(w, 2),
            BoundNode::Fail => write_void(w, 3),
            BoundNode::Leaf(name) => write_struct(w, 4, name),
            BoundNode::Alt(ids) => write_ids(w, 5, ids),
            BoundNode::Weighted(items) => write_weighted(w, 6, items),
        }
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_union(r, "BoundNode", |r, id, ty| {
            Ok(Some(match (id, ty) {
                (1, ttype::STRUCT) => read_void(r).map(|()| BoundNode::Neg)?,
                (2, ttype::STRUCT) => read_void(r).map(|()| BoundNode::Empty)?,
                (3, ttype::STRUCT) => read_void(r).map(|()| BoundNode::Fail)?,
                (4, ttype::STRUCT) => BoundNode::Leaf(BoundName::read(r)?),
                (5, ttype::LIST) => BoundNode::Alt(read_ids(r)?),
                (6, ttype::LIST) => BoundNode::Weighted(read_weighted(r)?),
                _ => return Ok(None),
            }))
        })
    }
}

/// `struct BoundTree`: a bound tree as a root and its other nodes by id.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundTree {
    /// The root.
    pub root: BoundNode,
    /// Every other node, by the id its parent names.
    pub nodes: BTreeMap<i32, BoundNode>,
}

impl ThriftStruct for BoundTree {
    fn write(&self, w: &mut Writer) {
        write_struct(w, 1, &self.root);
        write_node_map(w, 2, &self.nodes);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut root, mut nodes) = (None, BTreeMap::new());
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRUCT) => root = Some(BoundNode::read(r)?),
                (2, ttype::MAP) => nodes = read_node_map(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let root = root.ok_or_else(|| DecodeError {
            offset: at,
            reason: "BoundTree has no root".into(),
        })?;
        Ok(BoundTree { root, nodes })
    }
}

/// `struct Bound`: the answer to `bind`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    /// The stamp to send back to wait for the next change.
    pub stamp: Stamp,
    /// The bound tree.
    pub tree: BoundTree,
    /// The namespace.
    pub ns: String,
}

impl ThriftStruct for Bound {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.stamp);
        write_struct(w, 2, &self.tree);
        write_string(w, 3, &self.ns);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut stamp, mut tree, mut ns) = (Vec::new(), None, String::new());
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => stamp = r.binary()?.to_vec(),
                (2, ttype::STRUCT) => tree = Some(BoundTree::read(r)?),
                (3, ttype::STRING) => ns = r.string()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let tree = tree.ok_or_else(|| DecodeError {
            offset: at,
            reason: "Bound has no tree".into(),
        })?;
        Ok(Bound { stamp, tree, ns })
    }
}

/// `exception BindFailure`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BindFailure {
    /// Why binding failed.
    pub reason: String,
    /// Deprecated and ignored (Linkerd sends 0).
    pub retry_in_seconds: i32,
    /// The name asked for.
    pub name: NameRef,
    /// The namespace.
    pub ns: String,
}

impl ThriftStruct for BindFailure {
    fn write(&self, w: &mut Writer) {
        write_string(w, 1, &self.reason);
        write_i32(w, 2, self.retry_in_seconds);
        write_struct(w, 3, &self.name);
        write_string(w, 4, &self.ns);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = BindFailure::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.reason = r.string()?,
                (2, ttype::I32) => v.retry_in_seconds = r.i32()?,
                (3, ttype::STRUCT) => v.name = NameRef::read(r)?,
                (4, ttype::STRING) => v.ns = r.string()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct AddrReq`: the addresses of a bound id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddrReq {
    /// The bound id (in `name.name`) and the stamp.
    pub name: NameRef,
    /// Who asks (ignored by namerd).
    pub client_id: TPath,
}

impl ThriftStruct for AddrReq {
    fn write(&self, w: &mut Writer) {
        write_struct(w, 1, &self.name);
        write_path(w, 2, &self.client_id);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = AddrReq::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRUCT) => v.name = NameRef::read(r)?,
                (2, ttype::LIST) => v.client_id = read_path(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct AddrMeta`: what is known about an endpoint or a set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddrMeta {
    /// The `Host` or `:authority` to send.
    pub authority: Option<String>,
    /// The node the endpoint runs on.
    pub node_name: Option<String>,
    /// The endpoint's weight.
    pub endpoint_addr_weight: Option<f64>,
}

impl ThriftStruct for AddrMeta {
    fn write(&self, w: &mut Writer) {
        if let Some(v) = &self.authority {
            write_string(w, 1, v);
        }
        if let Some(v) = &self.node_name {
            write_string(w, 2, v);
        }
        if let Some(v) = self.endpoint_addr_weight {
            w.field_begin(ttype::DOUBLE, 3);
            w.double(v);
        }
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = AddrMeta::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.authority = Some(r.string()?),
                (2, ttype::STRING) => v.node_name = Some(r.string()?),
                (3, ttype::DOUBLE) => v.endpoint_addr_weight = Some(r.double()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct TransportAddress`: one endpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransportAddress {
    /// The IP address: 4 bytes (IPv4) or 16 (IPv6).
    pub ip: Vec<u8>,
    /// The port.
    pub port: i32,
    /// What is known about the endpoint.
    pub meta: Option<AddrMeta>,
}

impl ThriftStruct for TransportAddress {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.ip);
        write_i32(w, 2, self.port);
        if let Some(meta) = &self.meta {
            write_struct(w, 3, meta);
        }
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = TransportAddress::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.ip = r.binary()?.to_vec(),
                (2, ttype::I32) => v.port = r.i32()?,
                (3, ttype::STRUCT) => v.meta = Some(AddrMeta::read(r)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct BoundAddr`: a set of endpoints (`set<TransportAddress>`, kept
/// in the order received).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoundAddr {
    /// The endpoints.
    pub addresses: Vec<TransportAddress>,
    /// What is known about the set.
    pub meta: Option<AddrMeta>,
}

impl ThriftStruct for BoundAddr {
    fn write(&self, w: &mut Writer) {
        w.field_begin(ttype::SET, 1);
        w.list_begin(ttype::STRUCT, self.addresses.len());
        for a in &self.addresses {
            a.write(w);
        }
        if let Some(meta) = &self.meta {
            write_struct(w, 2, meta);
        }
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = BoundAddr::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::SET | ttype::LIST) => {
                    v.addresses = r.list(ttype::STRUCT, TransportAddress::read)?;
                }
                (2, ttype::STRUCT) => v.meta = Some(AddrMeta::read(r)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `union AddrVal`.
#[derive(Clone, Debug, PartialEq)]
pub enum AddrVal {
    /// These endpoints.
    Bound(BoundAddr),
    /// The id does not exist.
    Neg,
}

impl ThriftStruct for AddrVal {
    fn write(&self, w: &mut Writer) {
        match self {
            AddrVal::Bound(b) => write_struct(w, 1, b),
            AddrVal::Neg => write_void(w, 2),
        }
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_union(r, "AddrVal", |r, id, ty| {
            Ok(Some(match (id, ty) {
                (1, ttype::STRUCT) => AddrVal::Bound(BoundAddr::read(r)?),
                (2, ttype::STRUCT) => read_void(r).map(|()| AddrVal::Neg)?,
                _ => return Ok(None),
            }))
        })
    }
}

/// `struct Addr`: the answer to `addr`.
#[derive(Clone, Debug, PartialEq)]
pub struct Addr {
    /// The stamp to send back to wait for the next change.
    pub stamp: Stamp,
    /// The addresses.
    pub value: AddrVal,
}

impl ThriftStruct for Addr {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.stamp);
        write_struct(w, 2, &self.value);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut stamp, mut value) = (Vec::new(), None);
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => stamp = r.binary()?.to_vec(),
                (2, ttype::STRUCT) => value = Some(AddrVal::read(r)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let value = value.ok_or_else(|| DecodeError {
            offset: at,
            reason: "Addr has no value".into(),
        })?;
        Ok(Addr { stamp, value })
    }
}

/// `exception AddrFailure`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddrFailure {
    /// Why the addresses could not be found.
    pub reason: String,
    /// Deprecated and ignored (Linkerd sends 0).
    pub retry_in_seconds: i32,
    /// The id asked for.
    pub name: NameRef,
}

impl ThriftStruct for AddrFailure {
    fn write(&self, w: &mut Writer) {
        write_string(w, 1, &self.reason);
        write_i32(w, 2, self.retry_in_seconds);
        write_struct(w, 3, &self.name);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = AddrFailure::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.reason = r.string()?,
                (2, ttype::I32) => v.retry_in_seconds = r.i32()?,
                (3, ttype::STRUCT) => v.name = NameRef::read(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct Transformation`: a transformer rewrote a bound name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transformation {
    /// The name before the transformation.
    pub value: BoundName,
    /// The node of the tree after it.
    pub tree: i32,
}

impl ThriftStruct for Transformation {
    fn write(&self, w: &mut Writer) {
        write_struct(w, 1, &self.value);
        write_i32(w, 2, self.tree);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = Transformation::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRUCT) => v.value = BoundName::read(r)?,
                (2, ttype::I32) => v.tree = r.i32()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `union DelegateContents`: what a delegation node holds.
#[derive(Clone, Debug, PartialEq)]
pub enum DelegateContents {
    /// Resolution failed with this message.
    Error(String),
    /// `$`.
    Empty,
    /// `!`.
    Fail,
    /// `~`.
    Neg,
    /// Rewritten into the node with this id.
    Delegate(i32),
    /// A bound name.
    BoundLeaf(BoundName),
    /// A path (in a request: the path to explain).
    PathLeaf(TPath),
    /// Alternatives, by node id.
    Alt(Vec<i32>),
    /// A weighted split, by node id.
    Weighted(Vec<WeightedNodeId>),
    /// A transformer rewrote a bound name.
    Transformation(Transformation),
}

impl ThriftStruct for DelegateContents {
    fn write(&self, w: &mut Writer) {
        match self {
            DelegateContents::Error(e) => write_string(w, 1, e),
            DelegateContents::Empty => write_void(w, 2),
            DelegateContents::Fail => write_void(w, 3),
            DelegateContents::Neg => write_void(w, 4),
            DelegateContents::Delegate(id) => write_i32(w, 5, *id),
            DelegateContents::BoundLeaf(b) => write_struct(w, 6, b),
            DelegateContents::PathLeaf(p) => write_path(w, 7, p),
            DelegateContents::Alt(ids) => write_ids(w, 8, ids),
            DelegateContents::Weighted(items) => write_weighted(w, 9, items),
            DelegateContents::Transformation(t) => write_struct(w, 10, t),
        }
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_union(r, "DelegateContents", |r, id, ty| {
            Ok(Some(match (id, ty) {
                (1, ttype::STRING) => DelegateContents::Error(r.string()?),
                (2, ttype::STRUCT) => read_void(r).map(|()| DelegateContents::Empty)?,
                (3, ttype::STRUCT) => read_void(r).map(|()| DelegateContents::Fail)?,
                (4, ttype::STRUCT) => read_void(r).map(|()| DelegateContents::Neg)?,
                (5, ttype::I32) => DelegateContents::Delegate(r.i32()?),
                (6, ttype::STRUCT) => DelegateContents::BoundLeaf(BoundName::read(r)?),
                (7, ttype::LIST) => DelegateContents::PathLeaf(read_path(r)?),
                (8, ttype::LIST) => DelegateContents::Alt(read_ids(r)?),
                (9, ttype::LIST) => DelegateContents::Weighted(read_weighted(r)?),
                (10, ttype::STRUCT) => DelegateContents::Transformation(Transformation::read(r)?),
                _ => return Ok(None),
            }))
        })
    }
}

/// `struct DelegateNode`.
#[derive(Clone, Debug, PartialEq)]
pub struct DelegateNode {
    /// The path being resolved here.
    pub path: TPath,
    /// The dentry that led here (text), or a transformer's name.
    pub dentry: String,
    /// What the node holds.
    pub contents: DelegateContents,
}

impl ThriftStruct for DelegateNode {
    fn write(&self, w: &mut Writer) {
        write_path(w, 1, &self.path);
        write_string(w, 2, &self.dentry);
        write_struct(w, 3, &self.contents);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut path, mut dentry, mut contents) = (Vec::new(), String::new(), None);
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::LIST) => path = read_path(r)?,
                (2, ttype::STRING) => dentry = r.string()?,
                (3, ttype::STRUCT) => contents = Some(DelegateContents::read(r)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let contents = contents.ok_or_else(|| DecodeError {
            offset: at,
            reason: "DelegateNode has no contents".into(),
        })?;
        Ok(DelegateNode {
            path,
            dentry,
            contents,
        })
    }
}

/// `struct DelegateTree`: a root and its other nodes by id.
#[derive(Clone, Debug, PartialEq)]
pub struct DelegateTree {
    /// The root.
    pub root: DelegateNode,
    /// Every other node, by the id its parent names.
    pub nodes: BTreeMap<i32, DelegateNode>,
}

impl ThriftStruct for DelegateTree {
    fn write(&self, w: &mut Writer) {
        write_struct(w, 1, &self.root);
        write_node_map(w, 2, &self.nodes);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut root, mut nodes) = (None, BTreeMap::new());
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRUCT) => root = Some(DelegateNode::read(r)?),
                (2, ttype::MAP) => nodes = read_node_map(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let root = root.ok_or_else(|| DecodeError {
            offset: at,
            reason: "DelegateTree has no root".into(),
        })?;
        Ok(DelegateTree { root, nodes })
    }
}

/// `struct Delegation`: in a request, the path to explain (a tree whose
/// root is a path leaf); in the answer, the explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Delegation {
    /// Deprecated: requests send it empty.
    pub stamp: Stamp,
    /// The tree.
    pub tree: DelegateTree,
    /// The namespace.
    pub ns: String,
}

impl ThriftStruct for Delegation {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.stamp);
        write_struct(w, 2, &self.tree);
        write_string(w, 3, &self.ns);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut stamp, mut tree, mut ns) = (Vec::new(), None, String::new());
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => stamp = r.binary()?.to_vec(),
                (2, ttype::STRUCT) => tree = Some(DelegateTree::read(r)?),
                (3, ttype::STRING) => ns = r.string()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let tree = tree.ok_or_else(|| DecodeError {
            offset: at,
            reason: "Delegation has no tree".into(),
        })?;
        Ok(Delegation { stamp, tree, ns })
    }
}

/// `struct DelegateReq`: explain how a path resolves.
#[derive(Clone, Debug, PartialEq)]
pub struct DelegateReq {
    /// The request's own dtab, appended to the stored one (text).
    pub dtab: String,
    /// The namespace and the path (as the root path leaf).
    pub delegation: Delegation,
    /// Who asks (ignored by namerd).
    pub client_id: TPath,
}

impl ThriftStruct for DelegateReq {
    fn write(&self, w: &mut Writer) {
        write_string(w, 1, &self.dtab);
        write_struct(w, 2, &self.delegation);
        write_path(w, 3, &self.client_id);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let (mut dtab, mut delegation, mut client_id) = (String::new(), None, Vec::new());
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => dtab = r.string()?,
                (2, ttype::STRUCT) => delegation = Some(Delegation::read(r)?),
                (3, ttype::LIST) => client_id = read_path(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let delegation = delegation.ok_or_else(|| DecodeError {
            offset: at,
            reason: "DelegateReq has no delegation".into(),
        })?;
        Ok(DelegateReq {
            dtab,
            delegation,
            client_id,
        })
    }
}

/// An exception carrying only a reason.
macro_rules! reason_exception {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            /// What went wrong.
            pub reason: String,
        }

        impl ThriftStruct for $name {
            fn write(&self, w: &mut Writer) {
                write_string(w, 1, &self.reason);
                w.field_stop();
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let mut v = $name::default();
                r.read_struct(|r, id, ty| {
                    if (id, ty) == (1, ttype::STRING) {
                        v.reason = r.string()?;
                        return Ok(true);
                    }
                    Ok(false)
                })?;
                Ok(v)
            }
        }
    };
}

reason_exception!(
    /// `exception DelegationFailure`.
    DelegationFailure
);
reason_exception!(
    /// `exception DtabFailure`.
    DtabFailure
);

/// `struct DtabReq`: the dtab of a namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DtabReq {
    /// The stamp of the dtab the client has, or empty.
    pub stamp: Stamp,
    /// The namespace.
    pub ns: String,
    /// Who asks (ignored by namerd).
    pub client_id: TPath,
}

impl ThriftStruct for DtabReq {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.stamp);
        write_string(w, 2, &self.ns);
        write_path(w, 3, &self.client_id);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = DtabReq::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.stamp = r.binary()?.to_vec(),
                (2, ttype::STRING) => v.ns = r.string()?,
                (3, ttype::LIST) => v.client_id = read_path(r)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// `struct DtabRef`: the answer to `dtab`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DtabRef {
    /// The stamp to send back to wait for the next change.
    pub stamp: Stamp,
    /// The dtab (text).
    pub dtab: String,
}

impl ThriftStruct for DtabRef {
    fn write(&self, w: &mut Writer) {
        write_binary(w, 1, &self.stamp);
        write_string(w, 2, &self.dtab);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = DtabRef::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.stamp = r.binary()?.to_vec(),
                (2, ttype::STRING) => v.dtab = r.string()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}

/// A `TApplicationException`: the server could not run the call at all
/// (an unknown method, arguments it could not read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplicationException {
    /// What went wrong.
    pub message: String,
    /// One of the `APP_*` codes.
    pub kind: i32,
}

/// `TApplicationException` type: the method is not known.
pub const APP_UNKNOWN_METHOD: i32 = 1;
/// `TApplicationException` type: the message type is not a call.
pub const APP_INVALID_MESSAGE_TYPE: i32 = 2;
/// `TApplicationException` type: the server failed.
pub const APP_INTERNAL_ERROR: i32 = 6;
/// `TApplicationException` type: the arguments could not be read.
pub const APP_PROTOCOL_ERROR: i32 = 7;

impl ThriftStruct for ApplicationException {
    fn write(&self, w: &mut Writer) {
        write_string(w, 1, &self.message);
        write_i32(w, 2, self.kind);
        w.field_stop();
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = ApplicationException::default();
        r.read_struct(|r, id, ty| {
            match (id, ty) {
                (1, ttype::STRING) => v.message = r.string()?,
                (2, ttype::I32) => v.kind = r.i32()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(v)
    }
}
