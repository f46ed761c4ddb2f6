//! The `Namer` service's calls and replies as Thrift messages: the
//! arguments struct `{1: req}` of each method, the result struct
//! `{0: success, 1: declared exception}`, and `TApplicationException`.

use super::protocol::{DecodeError, MessageHeader, Reader, Writer, message_type, ttype};
use super::types::{
    APP_INVALID_MESSAGE_TYPE, APP_PROTOCOL_ERROR, APP_UNKNOWN_METHOD, AddrReq,
    ApplicationException, BindReq, DelegateReq, DtabReq, ThriftStruct,
};

/// A method of the `Namer` service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `bind`.
    Bind,
    /// `addr`.
    Addr,
    /// `delegate`.
    Delegate,
    /// `dtab`.
    Dtab,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 4] = [Method::Bind, Method::Addr, Method::Delegate, Method::Dtab];

    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::Bind => "bind",
            Method::Addr => "addr",
            Method::Delegate => "delegate",
            Method::Dtab => "dtab",
        }
    }

    /// The method with this name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A call of the `Namer` service.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `bind(req)`.
    Bind(BindReq),
    /// `addr(req)`.
    Addr(AddrReq),
    /// `delegate(req)`.
    Delegate(DelegateReq),
    /// `dtab(req)`.
    Dtab(DtabReq),
}

impl Call {
    /// The method called.
    pub fn method(&self) -> Method {
        match self {
            Call::Bind(_) => Method::Bind,
            Call::Addr(_) => Method::Addr,
            Call::Delegate(_) => Method::Delegate,
            Call::Dtab(_) => Method::Dtab,
        }
    }
}

/// A message received by a server: its header, and the call, or the
/// `TApplicationException` to answer instead.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    /// The message header (method name, type, sequence id).
    pub header: MessageHeader,
    /// The call, or why it cannot be made.
    pub call: Result<Call, ApplicationException>,
}

/// Reads a message sent to a `Namer` server. A header that cannot be read
/// is an error (the connection cannot go on); an unknown method or
/// arguments that cannot be read give the exception to answer.
pub fn decode_call(bytes: &[u8]) -> Result<Incoming, DecodeError> {
    let mut r = Reader::new(bytes);
    let header = r.message_begin()?;
    if header.kind != message_type::CALL && header.kind != message_type::ONEWAY {
        let call = Err(ApplicationException {
            message: format!("message type {} is not a call", header.kind),
            kind: APP_INVALID_MESSAGE_TYPE,
        });
        return Ok(Incoming { header, call });
    }
    let Some(method) = Method::from_name(&header.name) else {
        // Finagle's upgrade probe (`__can__finagle__trace__v3__`) lands
        // here too: the exception tells it to speak plain Thrift.
        let call = Err(ApplicationException {
            message: format!("Invalid method name: '{}'", header.name),
            kind: APP_UNKNOWN_METHOD,
        });
        return Ok(Incoming { header, call });
    };
    let call = read_args(&mut r, method).map_err(|e| ApplicationException {
        message: format!("cannot read the arguments of {}: {e}", method.name()),
        kind: APP_PROTOCOL_ERROR,
    });
    Ok(Incoming { header, call })
}

fn read_args(r: &mut Reader<'_>, method: Method) -> Result<Call, DecodeError> {
    let at = r.position();
    let mut call = None;
    r.read_struct(|r, id, ty| {
        if (id, ty) != (1, ttype::STRUCT) {
            return Ok(false);
        }
        call = Some(match method {
            Method::Bind => Call::Bind(BindReq::read(r)?),
            Method::Addr => Call::Addr(AddrReq::read(r)?),
            Method::Delegate => Call::Delegate(DelegateReq::read(r)?),
            Method::Dtab => Call::Dtab(DtabReq::read(r)?),
        });
        Ok(true)
    })?;
    call.ok_or_else(|| DecodeError {
        offset: at,
        reason: format!("{} was called without its request", method.name()),
    })
}

/// The message that calls `call` with sequence id `seq_id`.
pub fn encode_call(seq_id: i32, call: &Call) -> Vec<u8> {
    let mut w = Writer::new();
    w.message_begin(call.method().name(), message_type::CALL, seq_id);
    w.field_begin(ttype::STRUCT, 1);
    match call {
        Call::Bind(req) => req.write(&mut w),
        Call::Addr(req) => req.write(&mut w),
        Call::Delegate(req) => req.write(&mut w),
        Call::Dtab(req) => req.write(&mut w),
    }
    w.field_stop();
    w.into_bytes()
}

/// Which field of a result struct a reply fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyField {
    /// Field 0: the method's answer.
    Success,
    /// Field 1: the method's declared exception.
    Exception,
}

/// The reply to `method`'s call `seq_id`: `value` in the result struct.
pub fn encode_reply(
    method: &str,
    seq_id: i32,
    field: ReplyField,
    value: &impl ThriftStruct,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.message_begin(method, message_type::REPLY, seq_id);
    let id = match field {
        ReplyField::Success => 0,
        ReplyField::Exception => 1,
    };
    w.field_begin(ttype::STRUCT, id);
    value.write(&mut w);
    w.field_stop();
    w.into_bytes()
}

/// The `TApplicationException` answer to call `seq_id` of `method`.
pub fn encode_exception(method: &str, seq_id: i32, e: &ApplicationException) -> Vec<u8> {
    let mut w = Writer::new();
    w.message_begin(method, message_type::EXCEPTION, seq_id);
    e.write(&mut w);
    w.into_bytes()
}

/// Why a reply could not be taken as the answer to a call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReplyError {
    /// The server answered with a `TApplicationException`.
    #[error("the server could not run the call: {} (TApplicationException type {})", .0.message, .0.kind)]
    Application(ApplicationException),
    /// The bytes are not a reply to this call.
    #[error("{0}")]
    Protocol(String),
}

impl From<DecodeError> for ReplyError {
    fn from(e: DecodeError) -> ReplyError {
        ReplyError::Protocol(format!("a reply that cannot be read: {e}"))
    }
}

/// Reads the reply to call `seq_id` of `method`: the answer, or the
/// declared exception.
pub fn decode_reply<T: ThriftStruct, E: ThriftStruct>(
    bytes: &[u8],
    method: Method,
    seq_id: i32,
) -> Result<Result<T, E>, ReplyError> {
    let mut r = Reader::new(bytes);
    let header = r.message_begin()?;
    if header.seq_id != seq_id || header.name != method.name() {
        return Err(ReplyError::Protocol(format!(
            "a reply to {} #{} where {} #{seq_id} was expected",
            header.name,
            header.seq_id,
            method.name()
        )));
    }
    match header.kind {
        message_type::REPLY => {}
        message_type::EXCEPTION => {
            return Err(ReplyError::Application(ApplicationException::read(&mut r)?));
        }
        other => {
            return Err(ReplyError::Protocol(format!(
                "message type {other} where a reply was expected"
            )));
        }
    }
    let mut answer = None;
    r.read_struct(|r, id, ty| {
        match (id, ty) {
            (0, ttype::STRUCT) => answer = Some(Ok(T::read(r)?)),
            (1, ttype::STRUCT) => answer = Some(Err(E::read(r)?)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    answer.ok_or_else(|| {
        ReplyError::Protocol(format!(
            "the reply to {} carries neither an answer nor an exception",
            method.name()
        ))
    })
}
