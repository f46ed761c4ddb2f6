//! The ZooKeeper session of the `io.l5d.zk` store: opened on first use,
//! opened again after it expired, and a time limit on every call.

use std::future::Future;

use zookeeper_client as zk;

use super::Inner;
use crate::store::{StoreError, StoreResult};

impl Inner {
    pub(super) fn where_(&self) -> String {
        format!("ZooKeeper at {}", self.settings.connect_string)
    }

    pub(super) fn backend(&self, what: &str, e: zk::Error) -> StoreError {
        StoreError::Backend(format!("{}: {what}: {e}", self.where_()))
    }

    pub(super) fn acls(&self) -> zk::Acls<'_> {
        if self.settings.acls.is_empty() {
            zk::Acls::anyone_all()
        } else {
            zk::Acls::new(&self.settings.acls)
        }
    }

    /// Runs `call`, failing it after the call timeout.
    pub(super) async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let limit = self.settings.call_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Backend(format!(
                "{}: {what} timed out after {limit:?}",
                self.where_()
            ))),
        }
    }

    /// The live session, opening a new one if there is none or the last
    /// one has expired or closed.
    async fn session(&self) -> StoreResult<zk::Client> {
        let mut slot = self.session.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        let mut connector = zk::Client::connector()
            .with_session_timeout(self.settings.session_timeout)
            .with_fail_eagerly();
        if let Some((scheme, auth)) = &self.settings.auth {
            connector = connector.with_auth(scheme, auth);
        }
        let client = connector
            .connect(&self.settings.connect_string)
            .await
            .map_err(|e| self.backend("cannot open a session", e))?;
        tracing::info!(
            servers = %self.settings.connect_string,
            session = %client.session_id(),
            "ZooKeeper session opened"
        );
        tokio::spawn(log_session_states(
            self.settings.connect_string.clone(),
            client.state_watcher(),
        ));
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The session, if it is connected right now. While it reconnects,
    /// calls fail at once rather than queue: a queued write could still
    /// happen after its caller was told it failed.
    pub(super) async fn connected(&self) -> StoreResult<zk::Client> {
        let client = self.session().await?;
        match client.state() {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => Ok(client),
            state => Err(StoreError::Backend(format!(
                "{}: not connected ({state})",
                self.where_()
            ))),
        }
    }
}

async fn log_session_states(servers: String, mut states: zk::StateWatcher) {
    loop {
        let state = states.changed().await;
        match state {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                tracing::info!(%servers, %state, "ZooKeeper session connected");
            }
            _ => {
                tracing::warn!(
                    %servers,
                    %state,
                    "ZooKeeper session not connected; watches keep their last values"
                );
            }
        }
        if state.is_terminated() {
            return;
        }
    }
}
