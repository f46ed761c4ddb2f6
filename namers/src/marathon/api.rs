//! The part of Marathon's v2 API the namer uses, and DC/OS authentication.
//!
//! `GET <uriPrefix>/v2/apps` lists the app ids; `GET
//! <uriPrefix>/v2/apps/<id>?embed=app.tasks` reads one app with its tasks.
//! Requests carry `Host: <host>`. With DC/OS service-account credentials a
//! token is got by posting a signed JWT to the login endpoint's path on the
//! same server, and sent as `Authorization: token=<token>`; a 401 gets a new
//! token and the request is made once more. With a basic credential it is
//! sent as `Authorization: Basic <credential>`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The largest answer read from Marathon.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How much of an error body goes into an error message.
const MAX_ERROR_TEXT: usize = 200;

/// How requests are authenticated.
pub(super) enum Auth {
    /// Not at all.
    None,
    /// `Authorization: Basic <credential>` (`MARATHON_HTTP_AUTH_CREDENTIAL`).
    Basic(String),
    /// DC/OS service-account login (`DCOS_SERVICE_ACCOUNT_CREDENTIAL`).
    Dcos(DcosLogin),
}

/// A DC/OS service account's login request, ready to send.
pub(super) struct DcosLogin {
    /// The path of the login endpoint (e.g. `/acs/api/v1/auth/login`).
    path: String,
    /// `{"uid":...,"token":<JWT>}`.
    body: String,
}

/// What `DCOS_SERVICE_ACCOUNT_CREDENTIAL` holds.
#[derive(Deserialize)]
struct DcosSecret {
    login_endpoint: Option<String>,
    private_key: Option<String>,
    scheme: Option<String>,
    uid: Option<String>,
}

impl DcosLogin {
    /// Reads the credential JSON and signs the login JWT (RS256, claim
    /// `{"uid":<uid>}`), as Linkerd did; anything missing or other than
    /// RS256 is refused, saying what.
    pub(super) fn from_secret(json: &str) -> Result<DcosLogin, String> {
        let secret: DcosSecret =
            serde_json::from_str(json).map_err(|e| format!("not a credential: {e}"))?;
        let (Some(endpoint), Some(key), Some(scheme), Some(uid)) = (
            secret.login_endpoint,
            secret.private_key,
            secret.scheme,
            secret.uid,
        ) else {
            return Err("login_endpoint, private_key, scheme and uid are all required".into());
        };
        if scheme != "RS256" {
            return Err(format!("scheme {scheme:?}: only RS256 is supported"));
        }
        let path = login_path(&endpoint)?;
        let token = sign_rs256(&serde_json::json!({ "uid": uid }).to_string(), &key)?;
        let body = serde_json::json!({ "uid": uid, "token": token }).to_string();
        Ok(DcosLogin { path, body })
    }
}

/// The path of an `http(s)://host[:port]/path` URL (Linkerd posts to it on
/// the Marathon server itself).
fn login_path(endpoint: &str) -> Result<String, String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| format!("login_endpoint {endpoint:?}: {e}"))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err(format!("login_endpoint {endpoint:?}: not an absolute URL"));
    }
    Ok(uri.path().to_string())
}

/// A compact JWT with header `{"alg":"RS256","typ":"JWT"}` and `claims`,
/// signed with the PEM private key `pem` (PKCS#1 or PKCS#8).
pub(super) fn sign_rs256(claims: &str, pem: &str) -> Result<String, String> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("private_key: not a PEM private key: {e}"))?;
    let pair = match &der {
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => return Err("private_key: not an RSA key".into()),
    }
    .map_err(|e| format!("private_key: not a usable RSA key: {e}"))?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims)
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "private_key: signing failed".to_string())?;
    Ok(format!("{signed}.{}", b64.encode(signature)))
}

/// One Marathon server, as the namer reaches it.
pub(super) struct Api {
    http: Client<HttpConnector, Full<Bytes>>,
    /// Where connections go (from `dst`, or `host` and `port`).
    connect: String,
    /// The `Host` header.
    host: String,
    /// `uriPrefix` followed by `/v2`.
    api_prefix: String,
    auth: Auth,
    /// The DC/OS token, once got.
    token: Mutex<Option<String>>,
    timeout: Duration,
}

/// An app's id, lower-cased, as a path (`/group/app`).
pub(super) type AppIds = BTreeSet<String>;

impl Api {
    pub(super) fn new(
        connect: String,
        host: String,
        uri_prefix: &str,
        auth: Auth,
        timeout: Duration,
    ) -> Api {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Api {
            http: Client::builder(TokioExecutor::new()).build(connector),
            connect,
            host,
            api_prefix: format!("{uri_prefix}/v2"),
            auth,
            token: Mutex::new(None),
            timeout,
        }
    }

    /// Every app id, lower-cased as Linkerd compared them.
    pub(super) async fn app_ids(&self) -> Result<AppIds, String> {
        let path = format!("{}/apps", self.api_prefix);
        let (status, body) = self.get(&path).await?;
        if status != StatusCode::OK {
            return Err(status_error(&path, status, &body));
        }
        parse_app_ids(&body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// The app's task endpoints (`None` when Marathon says it has no such
    /// app: 404), before host names are resolved.
    pub(super) async fn app_tasks(
        &self,
        app: &str,
        use_health_check: bool,
    ) -> Result<Option<Vec<(String, u16)>>, String> {
        let path = format!("{}/apps{app}?embed=app.tasks", self.api_prefix);
        let (status, body) = self.get(&path).await?;
        match status {
            StatusCode::OK => parse_app_tasks(&body, use_health_check)
                .map(Some)
                .map_err(|e| format!("GET {path}: {e}")),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(status_error(&path, other, &body)),
        }
    }

    /// A GET with the configured authentication.
    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), String> {
        match &self.auth {
            Auth::None => self.call(Method::GET, path, None, Bytes::new()).await,
            Auth::Basic(credential) => {
                let value = format!("Basic {credential}");
                self.call(Method::GET, path, Some(&value), Bytes::new())
                    .await
            }
            Auth::Dcos(login) => {
                // A rejected token may have expired: get a new one, once.
                for fresh in [false, true] {
                    let token = self.token(login, fresh).await?;
                    let value = format!("token={token}");
                    let answer = self
                        .call(Method::GET, path, Some(&value), Bytes::new())
                        .await?;
                    if answer.0 != StatusCode::UNAUTHORIZED || fresh {
                        return Ok(answer);
                    }
                }
                Err(format!("GET {path}: unauthorized"))
            }
        }
    }

    /// The DC/OS token, logging in if there is none yet or `fresh`.
    async fn token(&self, login: &DcosLogin, fresh: bool) -> Result<String, String> {
        let mut token = self.token.lock().await;
        if !fresh && let Some(token) = &*token {
            return Ok(token.clone());
        }
        *token = None;
        let body = Bytes::from(login.body.clone());
        let (status, answer) = self.call(Method::POST, &login.path, None, body).await?;
        if status != StatusCode::OK {
            return Err(format!(
                "DC/OS login: {}",
                status_error(&login.path, status, &answer)
            ));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
        }
        let got: Token = serde_json::from_slice(&answer)
            .map_err(|e| format!("DC/OS login: POST {}: {e}", login.path))?;
        let got = got
            .token
            .ok_or_else(|| format!("DC/OS login: POST {}: no token in the answer", login.path))?;
        *token = Some(got.clone());
        Ok(got)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let what = format!("{method} http://{}{path}", self.connect);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.connect))
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("{what}: {e}"))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{what}: reading the answer: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{what}: no answer within {:?}", self.timeout))?
    }
}

/// An error and its causes, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn status_error(path: &str, status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(MAX_ERROR_TEXT).collect();
    format!("GET {path}: {status}: {text}")
}

#[derive(Deserialize)]
struct AppsAnswer {
    apps: Option<Vec<App>>,
}

#[derive(Deserialize)]
struct AppAnswer {
    app: Option<App>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct App {
    id: Option<String>,
    ip_address: Option<AppIpAddress>,
    health_checks: Option<Vec<serde_json::Value>>,
    tasks: Option<Vec<Task>>,
}

#[derive(Deserialize)]
struct AppIpAddress {
    discovery: Option<Discovery>,
}

#[derive(Deserialize)]
struct Discovery {
    ports: Option<Vec<DiscoveryPort>>,
}

#[derive(Deserialize)]
struct DiscoveryPort {
    number: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Task {
    host: Option<String>,
    ports: Option<Vec<u16>>,
    ip_addresses: Option<Vec<TaskIpAddress>>,
    health_check_results: Option<Vec<HealthCheckResult>>,
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskIpAddress {
    ip_address: Option<String>,
}

#[derive(Deserialize)]
struct HealthCheckResult {
    alive: Option<bool>,
}

fn parse_app_ids(body: &[u8]) -> Result<AppIds, String> {
    let answer: AppsAnswer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(answer
        .apps
        .unwrap_or_default()
        .into_iter()
        .filter_map(|app| app.id)
        .map(|id| normalize_id(&id))
        .collect())
}

/// `/Group/App/` and `group/app` both become `/group/app`.
pub(super) fn normalize_id(id: &str) -> String {
    let labels: Vec<&str> = id.split('/').filter(|l| !l.is_empty()).collect();
    format!("/{}", labels.join("/")).to_lowercase()
}

/// Linkerd's rule: with `useHealthCheck`, a task counts when it is
/// `TASK_RUNNING` and at least as many of its health check results are
/// alive as the app has health checks.
fn healthy(task: &Task, checks: usize) -> bool {
    if task.state.as_deref() != Some("TASK_RUNNING") {
        return false;
    }
    if checks == 0 {
        return true;
    }
    let alive = task
        .health_check_results
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|r| r.alive == Some(true))
        .count();
    alive >= checks
}

/// The endpoints of an app: with an IP per task (the app's first discovery
/// port), each task's first IP address and that port; otherwise each
/// task's host and first port.
fn parse_app_tasks(body: &[u8], use_health_check: bool) -> Result<Vec<(String, u16)>, String> {
    let answer: AppAnswer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(app) = answer.app else {
        return Ok(Vec::new());
    };
    let checks = app.health_checks.as_ref().map_or(0, Vec::len);
    let discovery_port = app
        .ip_address
        .and_then(|a| a.discovery)
        .and_then(|d| d.ports)
        .and_then(|p| p.into_iter().next())
        .and_then(|p| p.number);
    let mut endpoints: Vec<(String, u16)> = app
        .tasks
        .unwrap_or_default()
        .into_iter()
        .filter(|task| !use_health_check || healthy(task, checks))
        .filter_map(|task| match discovery_port {
            Some(port) => task
                .ip_addresses?
                .into_iter()
                .next()?
                .ip_address
                .map(|ip| (ip, port)),
            None => Some((task.host?, *task.ports?.first()?)),
        })
        .collect();
    endpoints.sort();
    endpoints.dedup();
    Ok(endpoints)
}

/// The socket addresses of task endpoints, host names resolved (an
/// endpoint whose name does not resolve is left out, and logged).
pub(super) async fn resolve(endpoints: &[(String, u16)]) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for (host, port) in endpoints {
        if let Ok(ip) = host.parse::<IpAddr>() {
            addrs.push(SocketAddr::new(ip, *port));
            continue;
        }
        match tokio::net::lookup_host((host.as_str(), *port)).await {
            Ok(mut found) => addrs.extend(found.next()),
            Err(e) => {
                tracing::debug!(namer = "io.l5d.marathon", %host, "task host does not resolve: {e}")
            }
        }
    }
    addrs.sort();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ids_are_lower_cased_paths() {
        let ids = parse_app_ids(br#"{"apps":[{"id":"/Web"},{"id":"/group/api/"},{}]}"#).unwrap();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["/group/api", "/web"]);
        assert!(parse_app_ids(b"nope").is_err());
    }

    #[test]
    fn tasks_give_host_and_first_port_or_ip_per_task() {
        let body = br#"{"app":{"id":"/web","healthChecks":[{},{}],"tasks":[
            {"host":"10.0.0.1","ports":[31000,31001],"state":"TASK_RUNNING",
             "healthCheckResults":[{"alive":true},{"alive":true}]},
            {"host":"10.0.0.2","ports":[31002],"state":"TASK_RUNNING",
             "healthCheckResults":[{"alive":true},{"alive":false}]},
            {"host":"10.0.0.3","ports":[],"state":"TASK_RUNNING"},
            {"host":"10.0.0.4","ports":[31004],"state":"TASK_STAGING"}]}}"#;
        let all = parse_app_tasks(body, false).unwrap();
        assert_eq!(
            all,
            [
                ("10.0.0.1".to_string(), 31000),
                ("10.0.0.2".to_string(), 31002),
                ("10.0.0.4".to_string(), 31004)
            ]
        );
        let healthy = parse_app_tasks(body, true).unwrap();
        assert_eq!(healthy, [("10.0.0.1".to_string(), 31000)]);

        let ip_per_task = br#"{"app":{"id":"/web","ipAddress":{"discovery":{"ports":[{"number":8080,"name":"http"}]}},
            "tasks":[{"host":"agent-1","ports":[],"ipAddresses":[{"ipAddress":"9.0.0.1"}],"state":"TASK_RUNNING"}]}}"#;
        assert_eq!(
            parse_app_tasks(ip_per_task, true).unwrap(),
            [("9.0.0.1".to_string(), 8080)]
        );
    }

    #[test]
    fn dcos_credentials_are_checked_and_signed() {
        let err = DcosLogin::from_secret("{}").err().unwrap();
        assert!(err.contains("are all required"), "{err}");
        let err = DcosLogin::from_secret(
            r#"{"login_endpoint":"https://leader.mesos/acs/api/v1/auth/login","private_key":"x","scheme":"HS256","uid":"u"}"#,
        )
        .err()
        .unwrap();
        assert!(err.contains("only RS256"), "{err}");
        let err = DcosLogin::from_secret(
            r#"{"login_endpoint":"https://leader.mesos/acs/api/v1/auth/login","private_key":"x","scheme":"RS256","uid":"u"}"#,
        )
        .err()
        .unwrap();
        assert!(err.starts_with("private_key: "), "{err}");
        assert_eq!(
            login_path("https://leader.mesos/acs/api/v1/auth/login").unwrap(),
            "/acs/api/v1/auth/login"
        );
        assert!(login_path("/relative").is_err());
    }
}
