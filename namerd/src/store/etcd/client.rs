//! The few etcd v3 calls the store makes, over one gRPC channel.
//!
//! The channel is made on first use and reconnects by itself after an
//! outage; HTTP/2 pings notice a dead server under a long-lived watch.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::etcdserverpb::kv_client::KvClient;
use super::etcdserverpb::watch_client::WatchClient;
use super::etcdserverpb::{self as pb, compare, request_op, watch_request};

/// What a failed call says: the gRPC status code and etcd's message.
pub(super) fn describe(status: &tonic::Status) -> String {
    let message = status.message();
    if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {message}", status.code())
    }
}

/// An etcd client: clones share the channel.
#[derive(Clone)]
pub(super) struct Client {
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
}

/// How often an idle connection is pinged.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

impl Client {
    /// A client of `endpoint` (`http://host:port`); it connects on its
    /// first call. Must run inside the runtime.
    pub(super) fn lazy(endpoint: &str, call_timeout: Duration) -> Result<Client, String> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| format!("invalid endpoint {endpoint}: {e}"))?
            .connect_timeout(call_timeout)
            .http2_keep_alive_interval(KEEP_ALIVE)
            .keep_alive_timeout(call_timeout)
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Client {
            kv: KvClient::new(channel.clone()),
            watch: WatchClient::new(channel),
        })
    }

    /// The key's current value, if any.
    pub(super) async fn get(&self, key: &str) -> Result<pb::RangeResponse, tonic::Status> {
        let request = pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        };
        Ok(self.kv.clone().range(request).await?.into_inner())
    }

    /// Every key that starts with `prefix`, without values.
    pub(super) async fn list_keys(&self, prefix: &str) -> Result<pb::RangeResponse, tonic::Status> {
        let request = pb::RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            keys_only: true,
            ..Default::default()
        };
        Ok(self.kv.clone().range(request).await?.into_inner())
    }

    /// Writes the key whatever it held.
    pub(super) async fn put(
        &self,
        key: &str,
        value: String,
    ) -> Result<pb::PutResponse, tonic::Status> {
        let request = put(key, value);
        Ok(self.kv.clone().put(request).await?.into_inner())
    }

    /// Runs a transaction.
    pub(super) async fn txn(&self, txn: pb::TxnRequest) -> Result<pb::TxnResponse, tonic::Status> {
        Ok(self.kv.clone().txn(txn).await?.into_inner())
    }

    /// Drops the history before `revision`.
    #[cfg(test)]
    pub(super) async fn compact(&self, revision: i64) -> Result<(), tonic::Status> {
        let request = pb::CompactionRequest {
            revision,
            physical: true,
        };
        self.kv.clone().compact(request).await?;
        Ok(())
    }

    /// Opens a watch on `key` (every key under it with `prefix`) from
    /// `start_revision` on, with progress notices.
    pub(super) async fn watch(
        &self,
        key: &str,
        prefix: bool,
        start_revision: i64,
    ) -> Result<tonic::Streaming<pb::WatchResponse>, tonic::Status> {
        let create = pb::WatchCreateRequest {
            key: key.as_bytes().to_vec(),
            range_end: if prefix {
                prefix_end(key.as_bytes())
            } else {
                Vec::new()
            },
            start_revision,
            progress_notify: true,
        };
        let request = pb::WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        };
        // The request stream stays open: etcd keeps a watch while its
        // stream lives, and dropping the answer stream cancels it.
        let requests = futures_util::StreamExt::chain(
            futures_util::stream::iter([request]),
            futures_util::stream::pending(),
        );
        Ok(self.watch.clone().watch(requests).await?.into_inner())
    }
}

/// The end of the key range that holds every key starting with `prefix`
/// (etcd's convention: the prefix with its last byte below 0xff plus one).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the key space.
    vec![0]
}

/// A put of `value` at `key`.
pub(super) fn put(key: &str, value: String) -> pb::PutRequest {
    pb::PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.into_bytes(),
        lease: 0,
    }
}

/// A transaction operation that writes `value` at `key`.
pub(super) fn put_op(key: &str, value: String) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestPut(put(key, value))),
    }
}

/// A transaction operation that reads whether `key` exists.
pub(super) fn exists_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestRange(pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            keys_only: true,
            ..Default::default()
        })),
    }
}

/// A transaction operation that deletes `key`.
pub(super) fn delete_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                range_end: Vec::new(),
            },
        )),
    }
}

/// A comparison of `key`'s create revision (0 when it does not exist).
pub(super) fn create_revision_is(
    key: &str,
    result: compare::CompareResult,
    revision: i64,
) -> pb::Compare {
    pb::Compare {
        result: result as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
    }
}

/// A comparison of `key`'s last modification revision.
pub(super) fn mod_revision_is(key: &str, revision: i64) -> pb::Compare {
    pb::Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(revision)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_last_byte_plus_one() {
        assert_eq!(prefix_end(b"/namerd/dtabs/"), b"/namerd/dtabs0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn failures_name_the_code() {
        let status = tonic::Status::unavailable("connection refused");
        assert_eq!(describe(&status), "Unavailable: connection refused");
        assert_eq!(describe(&tonic::Status::cancelled("")), "Cancelled");
    }
}
